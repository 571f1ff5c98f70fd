"""How council's command line presents itself: every `--help`, and click's usage errors.

Help: no type clutter on flags, defaults from the one defaults table inline, help
texts taken literally, done once for every command. Usage errors (a misspelt
command, an unknown option, an extra argument) are one line on stderr like every
other error, with "did you mean" where click has a guess, instead of typer's box.

Typer shows each option with a type (`--json <bool>`, `<int range> [x>=1]`,
`<list[Path]>`), wraps a default given as text in parentheses, and reads help texts
as rich markup, so "needs council[local]" loses its "[local]". `CouncilGroup` is the
root app's class; when click builds the command tree it tidies every command below
it, its own sub-groups' included: a flag shows no type, a value a plain word
(INTEGER, NUMBER, PATH, TEXT) unless it names its own metavar, a number's range is
said in words in its help, and every help text is escaped for rich.

Typer has no hook for the class of a parameter (`typer.Option` takes no `cls`), so
each parameter is given a subclass that only changes how it is displayed.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError, NoSuchOption
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from council.render.safe_text import strip_controls

__all__ = ["CouncilCommand", "CouncilGroup", "literal", "print_error", "usage_error_line"]

# The commands whose one argument is a question: an unquoted one arrives as many.
QUESTION_COMMANDS = ("oracle", "deliberate")
_EXTRA_ARGUMENTS = re.compile(r"Got unexpected extra argument(?:\(s\)|s)? \((.*)\)", re.DOTALL)

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
    described = param.type_descriptor
    if described.is_choice and described.choices:
        return "|".join(str(getattr(c, "value", c)) for c in described.choices)
    if described.is_path or described.is_file:
        return "PATH"
    bare = param.bare_type()  # "int", "list[Path]", ...
    return _TYPE_WORDS.get(bare.removeprefix("list[").removesuffix("]"), "TEXT")


def _range_words(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{low} to {high}"
    return f"at least {low}" if low is not None else f"at most {high}"


class _PlainOption(TyperOption):
    """An option shown without a type when it is a flag, its range in words."""

    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return ""
        return self.metavar if self.metavar is not None else _type_word(self)

    def _get_number_range_help_str(self) -> str | None:
        return None  # said in words in the help text (`_tidy_parameter`)


class _PlainArgument(TyperArgument):
    """An argument shown by its name (QUESTION, NAME) alone: the name says what it is."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return ""


def _tidy_parameter(param: Any) -> None:
    if getattr(param, "_council_tidy", False):
        return
    param._council_tidy = True
    notes = []
    if type(param) is TyperOption:
        param.__class__ = _PlainOption
        low, high = param.min, param.max
        if (low is not None or high is not None) and not (param.count and low == 0):
            notes.append(_range_words(low, high))
    elif type(param) is TyperArgument:
        param.__class__ = _PlainArgument
    help_text = literal(getattr(param, "help", None) or "")
    if notes:
        help_text += f" ({'; '.join(notes)})"
    if isinstance(param.show_default, str):
        # In the help text, so that it wraps with it (typer gives a default a line of
        # its own where it does not fit, and puts it in parentheses).
        help_text += f" [dim]{literal(f'[default: {param.show_default}]')}[/dim]"
        param.show_default = False
    param.help = help_text.strip() or None


def _tidy_command(command: Any) -> None:
    if getattr(command, "_council_tidy", False):
        return
    command._council_tidy = True
    if command.help:
        command.help = literal(command.help)
    if command.short_help:
        command.short_help = literal(command.short_help)
    if command.epilog:
        command.epilog = literal(command.epilog)
    for param in command.params:
        _tidy_parameter(param)
    if isinstance(command, TyperGroup):
        if type(command) is TyperGroup:
            command.__class__ = CouncilGroup
        for sub in command.commands.values():
            _tidy_command(sub)
    elif type(command) is TyperCommand:
        command.__class__ = CouncilCommand


def _tidied(help_option: Any) -> Any:
    """The help option, tidied too: click makes it only when it is first asked for."""
    if help_option is not None:
        _tidy_parameter(help_option)
    return help_option


# Subclasses of typer's own, with methods only (a mixin would change the layout, and
# an object's class can be swapped only for one of the same layout).
class CouncilCommand(TyperCommand):
    """A command of council's (any command below `CouncilGroup`)."""

    def get_help_option(self, ctx: Any) -> Any:
        return _tidied(super().get_help_option(ctx))


class CouncilGroup(TyperGroup):
    """The root app's group: every command, option and help text below it tidied for
    `--help` (see the module's docstring).

    Usage:
        app = typer.Typer(cls=CouncilGroup)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _tidy_command(self)

    # Where click raises its usage errors: parsing this group's own arguments, and
    # resolving and parsing a command below it.
    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _one_line_usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _one_line_usage_errors():
            return super().invoke(ctx)

    def get_help_option(self, ctx: Any) -> Any:
        return _tidied(super().get_help_option(ctx))


def print_error(message: str) -> None:
    """The one line every error of council's is: `council: error: what; what to do`."""
    sys.stderr.write(f"council: error: {strip_controls(message)}\n")
    sys.stderr.flush()


@contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    try:
        yield
    except NoArgsIsHelpError:
        raise  # a bare group: typer prints its help
    except ClickException as error:
        print_error(usage_error_line(error))
        raise typer.Exit(error.exit_code) from None


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return text[:1].lower() + text[1:]


def usage_error_line(error: ClickException) -> str:
    """Click's message as council's one line: what went wrong; what to do."""
    ctx = getattr(error, "ctx", None)
    path = ctx.command_path if ctx is not None else "council"
    see = f"see '{path} -h'"
    if isinstance(error, NoSuchOption):
        guesses = sorted(error.possibilities or [])
        if guesses:
            return f"no such option {error.option_name}; did you mean {' or '.join(guesses)}?"
        return f"no such option {error.option_name}; {see}"
    message = error.format_message()
    extra = _EXTRA_ARGUMENTS.fullmatch(message.strip())
    if extra is not None:
        command = ctx.command.name if ctx is not None else None
        if command in QUESTION_COMMANDS and ctx is not None:
            words = " ".join(w for w in (ctx.params.get("query"), extra.group(1)) if w)
            return f'the question must be one argument; quote it: {path} "{words}"'
        return f"unexpected extra arguments: {extra.group(1)}; {see}"
    first, _, rest = message.partition(". ")
    if rest:  # "No such command 'oracel'. Did you mean 'oracle'?"
        return f"{_sentence(first)}; {_sentence(rest)}"
    return f"{_sentence(message)}; {see}"
