"""Listings that fit the terminal: one row a line, the long text trimmed, never the row broken.

    width = terminal_width()                 # None when stdout is no terminal: lines as they are
    say(fit_row("6742a1  2026-12-07  ", question, "", width))
    keep = fit_columns(widths, PRIORITY, width, gap=1)   # the columns that fit, in order
    shown_path(persona.source)              # "(built-in) judge.yaml", ".council/...", "~/..."

A terminal wraps a line wider than itself into two broken ones; so in a terminal
(its width as `shutil` sees it, `COLUMNS` first) the text a row can spare (a
question, a description) is cut with "…", and a table drops its least useful
columns. Piped, nothing is cut: a program reads whole lines.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from council.config.paths import builtin_dir

__all__ = [
    "BUILT_IN",
    "fit_columns",
    "fit_row",
    "shown_path",
    "shown_where",
    "terminal_width",
    "wrapped",
]

BUILT_IN = "(built-in)"
# Narrower than this, a trimmed text says nothing: the row is cut at its end instead.
MIN_TEXT = 12


def terminal_width() -> int | None:
    """Columns of the terminal stdout is, or None when it is not one."""
    try:
        if not sys.stdout.isatty():
            return None
    except (AttributeError, ValueError):  # replaced or closed
        return None
    return max(20, shutil.get_terminal_size().columns)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def fit_row(left: str, text: str, right: str, width: int | None) -> str:
    """`left + text + right`, with `text` trimmed so the row is at most `width` wide."""
    if width is None:
        return left + text + right
    room = width - len(left) - len(right)
    if room >= min(MIN_TEXT, len(text)):
        return left + _cut(text, room) + right
    return _cut(left + _cut(text, MIN_TEXT) + right, width)


def wrapped(text: str, width: int | None, indent: str = "  ") -> list[str]:
    """`text` (one line) as lines at most `width` wide, broken at words, the later ones
    indented like the first plus `indent`; as it is when `width` is None or it fits."""
    if width is None or len(text) <= width:
        return [text]
    import textwrap

    lead = text[: len(text) - len(text.lstrip(" "))]
    return textwrap.wrap(
        text,
        width,
        initial_indent="",
        subsequent_indent=lead + indent,
        break_on_hyphens=False,
        break_long_words=True,
    ) or [text]


def fit_columns(
    widths: Sequence[int], priority: Sequence[int], width: int | None, gap: int
) -> list[int]:
    """The indices of the columns to show, in their order: the most useful ones that fit.

    `widths`: each column's width; `priority`: column indices, most useful first;
    `gap`: the space between two columns. None: no terminal, every column.
    """
    if width is None:
        return list(range(len(widths)))
    kept: list[int] = []
    for index in priority:
        trial = [*kept, index]
        if sum(widths[i] for i in trial) + gap * (len(trial) - 1) <= width or not kept:
            kept = trial
    return sorted(kept)


def _builtin_dirs() -> list[Path]:
    return [builtin_dir(kind).resolve() for kind in ("personas", "presets")]


def shown_path(path: str | Path | None) -> str:
    """A file as a person wants it: `(built-in) judge.yaml` for one shipped with council,
    relative to the current directory under it, `~/...` under the home directory."""
    if path is None:
        return BUILT_IN
    resolved = Path(path).expanduser()
    try:
        resolved = resolved.resolve()
    except (OSError, RuntimeError):
        return str(path)
    for directory in _builtin_dirs():
        if resolved.is_relative_to(directory):
            return f"{BUILT_IN} {resolved.relative_to(directory)}"
    for where, prefix in ((Path.cwd, ""), (Path.home, "~/")):
        try:
            base = where().resolve()
        except (OSError, RuntimeError, KeyError):  # no such directory, or no home at all
            continue
        if resolved.is_relative_to(base) and resolved != base:
            return prefix + str(resolved.relative_to(base))
    return str(path)


def shown_where(where: str) -> str:
    """`PATH:LINE` (where a value was set) with its path as `shown_path` shows it."""
    path, colon, line = where.rpartition(":")
    if colon and line.isdigit() and path:
        return f"{shown_path(path)}:{line}"
    return shown_path(where) if where.startswith(("/", "~")) else where
