"""How council's command line presents itself: every `--help`, and its usage errors.

Help: no type clutter on flags, defaults from the one defaults table inline, help
texts taken literally, done once for every command. Usage errors (a misspelt
command, an unknown option, an extra argument) are one line on stderr like every
other error, with "did you mean" (the nearest first), instead of typer's box.

Typer shows each option with a type (`--json <bool>`, `<int>`, `<list[Path]>`),
wraps a default given as text in parentheses, and reads help texts as rich markup,
so "needs council[local]" loses its "[local]". Every app is a `CouncilTyper`, whose
groups are `CouncilGroup`s and whose commands are `CouncilCommand`s (typer's
`cls=`); each tidies the parameters it is built with: a flag shows no type, a value
a plain word (INTEGER, NUMBER, PATH, TEXT) unless it names its own metavar, and
every help text is escaped for rich. A number's range is checked by `at_least`
(typer would print it as `[x>=1]`), and said in words in the option's help.

Usage errors: council reads the command line itself first (`cli/argv.py`) and names
an unknown option, an option short of its values and extra arguments in its own
words; whatever else typer refuses (a value of the wrong type, a missing argument)
is typer's message, in council's one line.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from council.cli.argv import Problem, closest, read_command_line
from council.errors import EXIT_USAGE
from council.render.safe_text import strip_controls

__all__ = [
    "CouncilCommand",
    "CouncilGroup",
    "CouncilTyper",
    "at_least",
    "command_named",
    "literal",
    "print_error",
    "usage_error",
]

# The commands whose one argument is a question: an unquoted one arrives as many.
QUESTION_COMMANDS = ("oracle", "deliberate")

# rich's own pattern for a markup tag (rich.markup.escape), copied so that building
# the command tree, which every run does, need not import rich.
_MARKUP_TAG = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")


def literal(text: str) -> str:
    """`text` as rich will print it: every "[word]" shown, none taken as a style."""

    def escape(match: re.Match[str]) -> str:
        backslashes, tag = match.groups()
        return f"{backslashes}{backslashes}\\{tag}"

    escaped = _MARKUP_TAG.sub(escape, text)
    if escaped.endswith("\\") and not escaped.endswith("\\\\"):
        escaped += "\\"
    return escaped


_TYPE_WORDS = {"int": "INTEGER", "float": "NUMBER", "Path": "PATH", "str": "TEXT"}


def _type_word(param: Any) -> str:
    """A plain word for what a value is, for an option that names no metavar of its own."""
    bare = param.bare_type()  # "int", "list[Path]", ...
    return _TYPE_WORDS.get(bare.removeprefix("list[").removesuffix("]"), "TEXT")


def at_least(low: int) -> Callable[[Any], Any]:
    """An option callback refusing a number below `low`, in the words typer would use.

    Usage (say the range in the help too):
        typer.Option("--limit", help="Most runs to list (at least 1).", callback=at_least(1))
    """

    def check(value: Any) -> Any:
        if value is not None and value < low:
            raise typer.BadParameter(f"Input should be greater than or equal to {low}")
        return value

    return check


# Typer has no hook for the class of a parameter (typer.Option and typer.Argument take
# no `cls`), and an argument always shows its type (`QUESTION <str>`); nothing public
# changes that. So this is the one shim left: an argument is given a subclass that
# only shows no type. `tests/test_help.py` checks every command's help for clutter.
class _PlainArgument(TyperArgument):
    """An argument shown by its name (QUESTION, NAME) alone: the name says what it is."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return ""


def _tidy_parameter(param: Any) -> None:
    if getattr(param, "_council_tidy", False):
        return
    param._council_tidy = True
    if param.param_type_name == "option":
        if param.is_flag or param.count:
            param.metavar = ""  # typer shows an option's metavar in place of its type
        elif param.metavar is None:
            param.metavar = _type_word(param)
    elif type(param) is TyperArgument:
        param.__class__ = _PlainArgument
    help_text = literal(getattr(param, "help", None) or "")
    if isinstance(param.show_default, str):
        # In the help text, so that it wraps with it (typer gives a default a line of
        # its own where it does not fit, and puts it in parentheses).
        help_text += f" [dim]{literal(f'[default: {param.show_default}]')}[/dim]"
        param.show_default = False
    param.help = help_text.strip() or None


def _tidy_command(command: Any) -> None:
    """A command's own texts taken literally (its parameters: `get_params`)."""
    if command.help:
        command.help = literal(command.help)
    if command.short_help:
        command.short_help = literal(command.short_help)
    if command.epilog:
        command.epilog = literal(command.epilog)


def print_error(message: str) -> None:
    """The one line every error of council's is: `council: error: what; what to do`."""
    sys.stderr.write(f"council: error: {strip_controls(message)}\n")
    sys.stderr.flush()


def usage_error(message: str) -> NoReturn:
    """Say a usage error in one line and end with the usage exit code."""
    print_error(message)
    raise typer.Exit(EXIT_USAGE)


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return text[:1].lower() + text[1:]


def _see(ctx: Any) -> str:
    return f"see '{ctx.command_path} -h'"


def _problem_line(problem: Problem, ctx: Any) -> str:
    if problem.kind == "unknown":
        guesses = closest(problem.option, problem.known)
        if guesses:
            return f"no such option {problem.option}; did you mean {' or '.join(guesses)}?"
        return f"no such option {problem.option}; {_see(ctx)}"
    if problem.kind == "flag":
        return f"option '{problem.option}' does not take a value; {_see(ctx)}"
    needs = "an argument" if problem.values == 1 else f"{problem.values} arguments"
    return f"option '{problem.option}' requires {needs}; {_see(ctx)}"


@contextmanager
def _typer_errors_in_one_line(ctx: Any) -> Iterator[None]:
    """Typer's usage errors (a bad value, a missing argument) as council's one line."""
    try:
        yield
    except typer.TyperException as error:
        if error.exit_code != EXIT_USAGE:
            raise
        usage_error(f"{_sentence(error.format_message())}; {_see(ctx)}")


class _CouncilParsing:
    """What `CouncilCommand` and `CouncilGroup` share: tidied parameters, one-line errors."""

    # The options (by `param.name`) that take KEY VALUE, repeatable (cli/command.py).
    pair_options: tuple[str, ...] = ()
    params: list[Any]
    no_args_is_help: bool
    allow_interspersed_args: bool

    def _tidy(self) -> None:
        _tidy_command(self)

    def get_params(self, ctx: Any) -> list[Any]:
        # Tidied as they are listed: the help option is made only when first asked for,
        # and typer adds --install-completion/--show-completion after building the group.
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            _tidy_parameter(param)
        return params

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if ctx.resilient_parsing:  # shell completion: no errors, no rewriting
            return super().parse_args(ctx, args)  # type: ignore[misc]
        if not args and self.no_args_is_help:
            # A bare group: its help, and the usage exit code (as typer has it).
            text = ctx.get_help()  # rich prints it as it is made
            if text:
                typer.echo(text)
            raise typer.Exit(EXIT_USAGE)
        reading = read_command_line(
            self.get_params(ctx),  # type: ignore[attr-defined]
            args,
            interspersed=ctx.allow_interspersed_args,
            ignore_unknown=ctx.ignore_unknown_options,
            pairs=self.pair_options,
        )
        if reading.problem is not None:
            usage_error(_problem_line(reading.problem, ctx))
        own_extras = not ctx.allow_extra_args
        ctx.allow_extra_args = True  # extra arguments are said below, in council's words
        with _typer_errors_in_one_line(ctx):
            rest = super().parse_args(ctx, reading.args)  # type: ignore[misc]
        if own_extras and ctx.args:
            usage_error(self.extra_arguments_line(ctx, args, ctx.args))
        return rest

    def extra_arguments_line(self, ctx: Any, typed: list[str], extra: list[str]) -> str:
        """What to say of arguments past the command's last (`typed`: the command line)."""
        if ctx.command.name in QUESTION_COMMANDS:
            words = " ".join(w for w in (ctx.params.get("query"), *extra) if w)
            return f'the question must be one argument; quote it: {ctx.command_path} "{words}"'
        return f"unexpected extra arguments: {' '.join(extra)}; {_see(ctx)}"


class CouncilCommand(_CouncilParsing, TyperCommand):
    """A command of council's: every command of a `CouncilTyper` app."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tidy()


class CouncilGroup(_CouncilParsing, TyperGroup):
    """A group of council's commands (the root app, `personas`, `history`...)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tidy()

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name = args[0] if args else ""
        if (
            not ctx.resilient_parsing
            and not name.startswith("-")
            and self.get_command(ctx, name) is None
        ):
            guesses = closest(name, self.list_commands(ctx))
            if guesses:
                quoted = " or ".join(repr(guess) for guess in guesses)
                usage_error(f"no such command {name!r}; did you mean {quoted}?")
            usage_error(f"no such command {name!r}; {_see(ctx)}")
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        # A group run without its command ("Missing command"), in one line too.
        with _typer_errors_in_one_line(ctx):
            return super().invoke(ctx)


class CouncilTyper(typer.Typer):
    """A Typer app whose group is a `CouncilGroup` and whose commands are `CouncilCommand`s.

    Usage:
        app = CouncilTyper(help="...")
        @app.command()          # a CouncilCommand; cls= still picks another
    """

    def __init__(self, *args: Any, cls: type[TyperGroup] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, cls=cls or CouncilGroup, **kwargs)

    def command(self, *args: Any, cls: type[TyperCommand] | None = None, **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or CouncilCommand, **kwargs)

    @contextmanager
    def only_the_command(self, args: Sequence[str]) -> Iterator[None]:
        """While it runs, the app is built with only the command that `args` name.

        Typer builds a click command for every command of the app before it reads the
        command line: some 35-45 ms of CPU (signatures, type hints, parameters) for
        council's 28 commands, which a run pays before its first request. Built for the
        one it runs, the command parses, helps and fails as it does in the whole app.
        The whole app is built where more of it shows: no command named yet, an option
        of the app's before it (--help, --version, completion's), a group's command,
        a name that is no command (its "did you mean"), and shell completion.
        """
        registered = self.registered_commands
        name = command_named(args)
        chosen = [c for c in registered if name is not None and c.name == name]
        if len(chosen) != 1:
            yield
            return
        groups = self.registered_groups
        self.registered_commands, self.registered_groups = chosen, []
        try:
            yield
        finally:
            self.registered_commands, self.registered_groups = registered, groups


# The root app's own options that take no value and change nothing of a command's
# (base.py's `main_options`); any other option before the command builds the whole app.
_APP_FLAGS = frozenset({"--debug"})
# Set when the shell asks typer to complete a command line: every command is built then.
_COMPLETION_VARIABLE = "_COUNCIL_COMPLETE"


def command_named(args: Sequence[str]) -> str | None:
    """The command that a command line names, after any of the app's flags that change
    nothing of a command's; None if anything else comes before it, or if the shell is
    completing it (the whole app is built then)."""
    if _COMPLETION_VARIABLE in os.environ:
        return None
    for arg in args:
        if arg not in _APP_FLAGS:
            return None if arg.startswith("-") else arg
    return None
