"""The command class of `council oracle` and `council deliberate`: `-o KEY VALUE`, `llm` habits.

Typer has no option of two values repeated (`list[tuple[str, str]]`), so the
command gives `--option` two values after typer built it, and hands the pairs
over as they were typed. And a habit from `llm` that parses here as something
else gets an error that says what the flag means here.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import typer
from typer import _click

from council.cli.usage import CouncilCommand
from council.errors import EXIT_USAGE

__all__ = ["AskCommand"]

# `-s` is --synthesize here (a flag); in `llm` it is --system TEXT.
_SYNTHESIZE = ("-s", "--synthesize")


def _pairs(_param: Any, _ctx: Any, value: Any) -> list[tuple[str, str]] | None:
    """`-o KEY VALUE ...` as the parser read it: a list of (key, value), or None."""
    return [(str(key), str(item)) for key, item in value] if value else None


def _used_synthesize_flag(args: list[str]) -> bool:
    """Whether -s/--synthesize (or -s in a cluster such as -qs) came before any `--`."""
    for arg in args:
        if arg == "--":
            return False
        if arg in _SYNTHESIZE or (arg.startswith("-") and not arg.startswith("--") and "s" in arg):
            return True
    return False


class AskCommand(CouncilCommand):
    """A typer command whose `--option` takes KEY VALUE, and that knows `llm`'s `-s`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.name == "option":
                param.nargs = 2
                param.metavar = "KEY VALUE"
                # typer would coerce each pair to one string; the parser's pairs are kept.
                param.process_value = types.MethodType(_pairs, param)  # type: ignore[method-assign]

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        typed = list(args)
        try:
            return super().parse_args(ctx, args)
        except _click.exceptions.UsageError as error:
            extra = "unexpected extra argument" in error.message
            has_synthesize = any(p.name == "synthesize" for p in self.params)
            if extra and has_synthesize and _used_synthesize_flag(typed):
                # One line, as every council error: the usage box would bury the point.
                sys.stderr.write(
                    "council: error: -s means --synthesize here (a flag, so the text after it "
                    'became the question); for a system prompt use --system "...", '
                    "and put the question last\n"
                )
                raise typer.Exit(EXIT_USAGE) from None
            raise
