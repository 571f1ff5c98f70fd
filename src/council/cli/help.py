"""How every `--help` reads: no type clutter on flags, defaults without parentheses,
help texts taken literally, done once for every command.

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
from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

__all__ = ["CouncilGroup", "literal"]

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
        command.__class__ = _CouncilCommand


def _tidied(help_option: Any) -> Any:
    """The help option, tidied too: click makes it only when it is first asked for."""
    if help_option is not None:
        _tidy_parameter(help_option)
    return help_option


# Subclasses of typer's own, with methods only (a mixin would change the layout, and
# an object's class can be swapped only for one of the same layout).
class _CouncilCommand(TyperCommand):
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

    def get_help_option(self, ctx: Any) -> Any:
        return _tidied(super().get_help_option(ctx))
