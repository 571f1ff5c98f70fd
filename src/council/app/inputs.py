"""Reading what the user asks: the query (argument or stdin) and `--context` files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from council.engine.model import Attachment
from council.errors import UsageError

__all__ = [
    "MAX_CONTEXT_BYTES_PER_FILE",
    "MAX_CONTEXT_BYTES_TOTAL",
    "read_context_files",
    "read_query",
]

# Big enough for a long source file or a design doc, small enough that a
# mistaken `--context build.log` fails here instead of as a 400 or a large bill.
MAX_CONTEXT_BYTES_PER_FILE = 200_000
MAX_CONTEXT_BYTES_TOTAL = 500_000


def read_query(argument: str | None, stdin: TextIO | None = None) -> str:
    """The query from the argument, or from stdin when the argument is `-`."""
    if argument is None:
        raise UsageError(
            "no question given", 'pass it as an argument, e.g. council oracle "Is X a good idea?"'
        )
    if argument == "-":
        stream = stdin or sys.stdin
        if stream.isatty():
            raise UsageError(
                "'-' reads the question from stdin, but stdin is a terminal", "pipe it in"
            )
        text = stream.read()
    else:
        text = argument
    if not text.strip():
        raise UsageError(
            "the question is empty", "give a question as an argument or on stdin with '-'"
        )
    return text.strip()


def read_context_files(paths: list[Path]) -> list[Attachment]:
    """Read each `--context` file as UTF-8 text, refusing binary, missing and oversized files."""
    attachments: list[Attachment] = []
    total = 0
    for path in paths:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise UsageError(f"--context {path}: no such file", "check the path") from None
        except IsADirectoryError:
            raise UsageError(
                f"--context {path}: is a directory", "attach files one by one"
            ) from None
        except OSError as exc:
            raise UsageError(f"--context {path}: cannot read ({exc.strerror})") from None
        if len(data) > MAX_CONTEXT_BYTES_PER_FILE:
            raise UsageError(
                f"--context {path}: {len(data):,} bytes is over the "
                f"{MAX_CONTEXT_BYTES_PER_FILE:,} byte limit per file",
                "attach the relevant part (e.g. with head, sed or grep) instead",
            )
        total += len(data)
        if total > MAX_CONTEXT_BYTES_TOTAL:
            raise UsageError(
                f"--context files add up to over {MAX_CONTEXT_BYTES_TOTAL:,} bytes",
                "attach fewer or smaller files",
            )
        if b"\x00" in data[:8192]:
            raise UsageError(f"--context {path}: looks binary", "attach text files only")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(
                f"--context {path}: is not UTF-8 text", "convert it to UTF-8 or attach a text file"
            ) from None
        attachments.append(Attachment(path=str(path), text=text))
    return attachments
