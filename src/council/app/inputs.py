"""Reading what the user asks: the query (argument or stdin) and `--context` files.

Both are capped, and read no further than the cap (plus one byte, to know): a
question on stdin or a `--context` file can be endless (`/dev/zero`). Text that is
not valid UTF-8 is decoded with U+FFFD for each bad sequence, and a one-line warning
says so: refusing would lose a long piped question over one stray Latin-1 byte,
and the models read the rest perfectly well.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TextIO

from council.config.reading import NotARegularFile, read_limited
from council.engine.model import Attachment
from council.errors import UsageError

__all__ = [
    "MAX_CONTEXT_BYTES_PER_FILE",
    "MAX_CONTEXT_BYTES_TOTAL",
    "MAX_QUESTION_BYTES",
    "read_context_files",
    "read_query",
]

# Big enough for a long source file or a design doc, small enough that a
# mistaken `--context build.log` fails here instead of as a 400 or a large bill.
MAX_CONTEXT_BYTES_PER_FILE = 200_000
MAX_CONTEXT_BYTES_TOTAL = 500_000
# The question itself (argument or stdin, in UTF-8 bytes): as much as one context file.
MAX_QUESTION_BYTES = MAX_CONTEXT_BYTES_PER_FILE

# Python hands over command-line bytes that are not UTF-8 as lone surrogates
# (surrogateescape); no valid text contains one.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _warn(message: str) -> None:
    sys.stderr.write(f"council: warning: {message}\n")


def _decode(data: bytes, what: str) -> str:
    """`data` as UTF-8, with U+FFFD for what is not (and a warning naming `what`)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        _warn(f"{what} is not valid UTF-8; the bytes that are not were replaced with U+FFFD (�)")
        return data.decode("utf-8", errors="replace")


def _from_argument(text: str) -> str:
    """A command-line argument as text: undecodable bytes (lone surrogates) become U+FFFD."""
    if not _SURROGATE.search(text):
        return text
    try:
        data = text.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:  # a surrogate surrogateescape did not make: no bytes behind it
        _warn("the question is not valid text; the bad characters were replaced with U+FFFD (�)")
        return _SURROGATE.sub("\ufffd", text)
    return _decode(data, "the question")


def _too_long(what: str) -> UsageError:
    return UsageError(
        f"{what} over the {MAX_QUESTION_BYTES:,} byte limit",
        "ask it shorter, and attach the material with --context FILE "
        f"(up to {MAX_CONTEXT_BYTES_TOTAL:,} bytes in all)",
    )


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
        raw = getattr(stream, "buffer", None)
        if raw is not None:
            data = raw.read(MAX_QUESTION_BYTES + 1)
            if len(data) > MAX_QUESTION_BYTES:
                raise _too_long("the question on stdin is")
            text = _decode(data, "the question on stdin")
        else:  # a text stream with no bytes under it (a StringIO)
            text = stream.read(MAX_QUESTION_BYTES + 1)
            if len(text.encode("utf-8", errors="surrogatepass")) > MAX_QUESTION_BYTES:
                raise _too_long("the question on stdin is")
    else:
        text = _from_argument(argument)
        size = len(text.encode("utf-8"))
        if size > MAX_QUESTION_BYTES:
            raise _too_long(f"the question is {size:,} bytes,")
    if not text.strip():
        raise UsageError(
            "the question is empty", "give a question as an argument or on stdin with '-'"
        )
    return text.strip()


def _read_context_file(path: Path) -> bytes:
    try:
        data = read_limited(path, MAX_CONTEXT_BYTES_PER_FILE, pipes=True)
    except FileNotFoundError:
        raise UsageError(f"--context {path}: no such file", "check the path") from None
    except NotARegularFile as exc:
        hint = "attach files one by one" if exc.kind == "a directory" else "attach a text file"
        raise UsageError(f"--context {path}: is {exc.kind}, not a regular file", hint) from None
    except OSError as exc:
        raise UsageError(f"--context {path}: cannot read ({exc.strerror})") from None
    if len(data) > MAX_CONTEXT_BYTES_PER_FILE:
        raise UsageError(
            f"--context {path}: is over the {MAX_CONTEXT_BYTES_PER_FILE:,} byte limit per file",
            "attach the relevant part (e.g. with head, sed or grep) instead",
        )
    return data


def read_context_files(paths: list[Path]) -> list[Attachment]:
    """Read each `--context` file as text, refusing binary, missing and oversized files.

    Only regular files and pipes are read (a device is refused), each no further
    than its cap; bytes that are not UTF-8 become U+FFFD, with a warning.
    """
    attachments: list[Attachment] = []
    total = 0
    for path in paths:
        data = _read_context_file(path)
        total += len(data)
        if total > MAX_CONTEXT_BYTES_TOTAL:
            raise UsageError(
                f"--context files add up to over {MAX_CONTEXT_BYTES_TOTAL:,} bytes",
                "attach fewer or smaller files",
            )
        if b"\x00" in data[:8192]:
            raise UsageError(f"--context {path}: looks binary", "attach text files only")
        text = _decode(data, f"--context {path}")
        # The path goes to the model with the text: a name that is not UTF-8 is shown as such.
        name = str(path).encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
        attachments.append(Attachment(path=name, text=text))
    return attachments
