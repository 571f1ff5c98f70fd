"""The command class of `council oracle` and `council deliberate`: `-o KEY VALUE`, `llm` habits.

Typer has no option of two values repeated (`list[tuple[str, str]]`), so the
command reads `-o KEY VALUE` itself (cli/argv.py hands the parser each pair as one
value) and `pairs` turns them back into the pairs as typed. And a habit from `llm`
that parses here as something else gets an error that says what the flag means here.
"""

from __future__ import annotations

from typing import Any

from council.cli.argv import PAIR_SEPARATOR
from council.cli.usage import CouncilCommand

__all__ = ["AskCommand", "pairs"]

# `-s` is --synthesize here (a flag); in `llm` it is --system TEXT.
_SYNTHESIZE = ("-s", "--synthesize")


def pairs(value: list[str] | None) -> list[tuple[str, str]] | None:
    """`-o KEY VALUE ...` as typed: a list of (key, value), or None (the option's callback)."""
    if not value:
        return None
    return [(key, item) for key, _, item in (v.partition(PAIR_SEPARATOR) for v in value)]


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

    pair_options = ("option",)

    def extra_arguments_line(self, ctx: Any, typed: list[str], extra: list[str]) -> str:
        has_synthesize = any(p.name == "synthesize" for p in self.params)
        if has_synthesize and _used_synthesize_flag(typed):
            # One line, as every council error: the usage box would bury the point.
            return (
                "-s means --synthesize here (a flag, so the text after it became the "
                'question); for a system prompt use --system "...", and put the question last'
            )
        return super().extra_arguments_line(ctx, typed, extra)
