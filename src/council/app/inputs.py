"""Reading what the user asks: the query (argument or stdin), `--context` files, piped input.

Standard input is the question when no question argument is given (or it is `-`),
and context when there is one (`git diff | council oracle "Review this"`, or
`-c -` explicitly). Unasked, it is read only when it is a pipe or a regular
file: a terminal is never waited on, and `/dev/null` or a closed stdin (what CI
and scripts have) attach nothing. `--no-stdin` turns the unasked read off.

All are capped, and read no further than the cap (plus one byte, to know): a
question on stdin or a `--context` file can be endless (`/dev/zero`). Text that is
not valid UTF-8 is decoded with U+FFFD for each bad sequence, and a one-line warning
says so: refusing would lose a long piped question over one stray Latin-1 byte,
and the models read the rest perfectly well.
"""

from __future__ import annotations

import os
import re
import select
import stat
import sys
from pathlib import Path
from typing import TextIO

from council.config.reading import NotARegularFile, read_limited
from council.engine.model import Attachment
from council.errors import UsageError
from council.render.format import count_label

__all__ = [
    "MAX_CONTEXT_BYTES_PER_FILE",
    "MAX_CONTEXT_BYTES_TOTAL",
    "MAX_QUESTION_BYTES",
    "STDIN_NAME",
    "looks_binary",
    "read_context_files",
    "read_inputs",
    "read_query",
    "stdin_kind",
]

# Big enough for a long source file or a design doc, small enough that a
# mistaken `--context build.log` fails here instead of as a 400 or a large bill.
MAX_CONTEXT_BYTES_PER_FILE = 200_000
MAX_CONTEXT_BYTES_TOTAL = 500_000
# The question itself (argument or stdin, in UTF-8 bytes): as much as one context file.
MAX_QUESTION_BYTES = MAX_CONTEXT_BYTES_PER_FILE
# What standard input is called where it is attached as context (`-c -`, or piped).
STDIN_NAME = "stdin"
# Seconds an open pipe may stay silent before a note says council is waiting on it.
STDIN_PATIENCE = 2.0

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


def read_query(argument: str | None, stdin: TextIO | None = None, command: str = "oracle") -> str:
    """The query from the argument, or from stdin when the argument is `-`."""
    if argument is None:
        raise UsageError(
            "no question given",
            f'pass it as an argument, e.g. council {command} "Is X a good idea?"',
        )
    if argument == "-":
        kind = stdin_kind(stdin)
        if kind == "terminal":
            raise UsageError(
                "'-' reads the question from stdin, but stdin is a terminal", "pipe it in"
            )
        if kind is None and (stdin or sys.stdin) is None:
            raise UsageError("'-' reads the question from stdin, but stdin is closed", "pipe it in")
        data = _read_stdin(stdin, MAX_QUESTION_BYTES)
        if len(data) > MAX_QUESTION_BYTES:
            raise UsageError(
                f"the question on stdin is over the {MAX_QUESTION_BYTES:,} byte limit",
                "give the question as an argument: piped input is then attached as context",
            )
        text = _decode(data, "the question on stdin")
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


def looks_binary(data: bytes) -> bool:
    """Whether text council was given is no text (a NUL in its first 8 KiB), as git judges."""
    return b"\x00" in data[:8192]


def _read_context_file(path: Path) -> bytes:
    def waiting() -> None:
        sys.stderr.write(f"council: waiting for --context {path} (a pipe) to be written\n")
        sys.stderr.flush()

    try:
        data = read_limited(path, MAX_CONTEXT_BYTES_PER_FILE, pipes=True, waiting=waiting)
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


def read_context_files(
    paths: list[Path], stdin: TextIO | None = None, piped: bytes | None = None
) -> list[Attachment]:
    """Read each `--context` file as text, refusing binary, missing and oversized files.

    Only regular files and pipes are read (a device is refused), each no further
    than its cap; bytes that are not UTF-8 become U+FFFD, with a warning. `-` is
    standard input, attached as "stdin"; `piped` is standard input read unasked,
    attached after the files and counted in the same total.
    """
    sources: list[tuple[str, bytes]] = []
    for path in paths:
        if str(path) == "-":
            data = _read_stdin_context(stdin)
            if data.strip():
                sources.append((STDIN_NAME, data))
            else:
                _warn("-c -: standard input is empty; nothing attached")
            continue
        # The path goes to the model with the text: a name that is not UTF-8 is shown as such.
        name = str(path).encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
        data = _read_context_file(path)
        if not data.strip():
            _warn(f"--context {name} is empty; nothing attached")
            continue
        sources.append((name, data))
    if piped is not None:
        sources.append((STDIN_NAME, piped))
    attachments: list[Attachment] = []
    total = 0
    for name, data in sources:
        what = "standard input" if name == STDIN_NAME else f"--context {name}"
        total += len(data)
        if total > MAX_CONTEXT_BYTES_TOTAL:
            raise UsageError(
                f"--context files add up to over {MAX_CONTEXT_BYTES_TOTAL:,} bytes",
                "attach fewer or smaller files",
            )
        if looks_binary(data):
            hint = (
                "pipe text only, or --no-stdin" if name == STDIN_NAME else "attach text files only"
            )
            raise UsageError(f"{what}: looks binary", hint)
        attachments.append(Attachment(path=name, text=_decode(data, what)))
    return attachments


def stdin_kind(stream: TextIO | None = None) -> str | None:
    """What standard input is: "pipe", "file", "terminal", "other" (a device such as
    /dev/null, a socket) or None (closed, or not backed by a file descriptor)."""
    stream = stream if stream is not None else sys.stdin
    if stream is None:  # Python found fd 0 closed at start-up
        return None
    try:
        fd = stream.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError):  # closed, or a StringIO
        return None
    if stat.S_ISFIFO(mode):
        return "pipe"
    if stat.S_ISREG(mode):
        return "file"
    return "terminal" if os.isatty(fd) else "other"


def _read_stdin(stream: TextIO | None, limit: int, unasked: bool = False) -> bytes:
    """Up to `limit + 1` bytes of standard input (its bytes, or a text stream's UTF-8).

    A pipe with nothing in it yet after STDIN_PATIENCE seconds gets a note on
    stderr before the read waits on: a writer that never closes it would otherwise
    hang council without a word.
    """
    stream = stream if stream is not None else sys.stdin
    if stdin_kind(stream) == "pipe" and not _ready(stream.fileno()):
        skip = "; --no-stdin not to read it" if unasked else ""
        sys.stderr.write(f"council: waiting for standard input (an open pipe){skip}\n")
        sys.stderr.flush()
    raw = getattr(stream, "buffer", None)
    if raw is not None:
        return bytes(raw.read(limit + 1))
    text = stream.read(limit + 1)  # a text stream with no bytes under it (a StringIO)
    return text.encode("utf-8", errors="surrogateescape")[: limit + 1]


def _ready(fd: int) -> bool:
    """Whether the pipe `fd` has data (or its end) within STDIN_PATIENCE; True where unknown."""
    if os.name == "nt":  # select() takes sockets only there
        return True
    ready, _, _ = select.select([fd], [], [], STDIN_PATIENCE)
    return bool(ready)


def _read_stdin_context(stream: TextIO | None) -> bytes:
    """`-c -`: standard input, whatever it is, but never a terminal or a closed one."""
    kind = stdin_kind(stream)
    if kind == "terminal":
        raise UsageError("-c - attaches standard input, but it is a terminal", "pipe the text in")
    if kind is None and (stream or sys.stdin) is None:
        raise UsageError("-c - attaches standard input, but it is closed", "pipe the text in")
    data = _read_stdin(stream, MAX_CONTEXT_BYTES_PER_FILE)
    if len(data) > MAX_CONTEXT_BYTES_PER_FILE:
        raise _stdin_too_big()
    return data


def _stdin_too_big() -> UsageError:
    return UsageError(
        f"standard input is over the {MAX_CONTEXT_BYTES_PER_FILE:,} byte limit for context",
        "pipe in the relevant part (e.g. with head, sed or grep), or --no-stdin to ignore it",
    )


def _read_piped(stream: TextIO | None) -> bytes | None:
    """Standard input given unasked with a question: read if a pipe or a file, else None."""
    if stdin_kind(stream) not in ("pipe", "file"):
        return None
    data = _read_stdin(stream, MAX_CONTEXT_BYTES_PER_FILE, unasked=True)
    if len(data) > MAX_CONTEXT_BYTES_PER_FILE:
        raise _stdin_too_big()
    return data if data.strip() else None


def _amount(data: bytes) -> str:
    """ "1,234 lines (56 KB)": how much was piped, for the note that says so."""
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    size = len(data)
    shown = count_label(size, "byte") if size < 1000 else f"{size / 1000:,.0f} KB"
    return f"{count_label(lines, 'line')} ({shown})"


def _looks_like_a_question(path: Path) -> bool:
    """A `-c` value that names no file and reads like words: the question, misplaced."""
    text = str(path)
    return text != "-" and not path.exists() and (" " in text.strip() or text.endswith("?"))


def read_inputs(
    query: str | None,
    context: list[Path],
    *,
    use_stdin: bool = True,
    command: str = "oracle",
    stdin: TextIO | None = None,
) -> tuple[str, list[Attachment]]:
    """The question and the attachments: `--context` files, `-c -`, and piped input.

    With no question argument, piped standard input is the question; with one, it
    is attached as context (a one-line note on stderr says how much). `use_stdin`
    False (`--no-stdin`) leaves standard input unread unless `-` asks for it.
    """
    for path in context:
        if _looks_like_a_question(path) and (query is None or " " in str(path)):
            raise UsageError(
                f"-c attaches a file; {str(path)!r} is not one",
                "put the question last, after the options",
            )
    asked = sum(str(p) == "-" for p in context)
    if asked > 1:
        raise UsageError("-c - is given twice", "standard input can be attached once")
    if asked and query == "-":
        raise UsageError(
            "both the question (-) and -c - read standard input", "give the question as text"
        )
    if asked and not use_stdin:
        raise UsageError("-c - reads standard input, and --no-stdin says not to", "drop one")
    if query is None and use_stdin and stdin_kind(stdin) in ("pipe", "file"):
        query = "-"  # `echo "Ship it?" | council oracle`: the pipe holds the question
    question = read_query(query, stdin, command)
    piped = None
    if query != "-" and not asked and use_stdin:
        piped = _read_piped(stdin)
    attachments = read_context_files(context, stdin, piped)
    if piped is not None:
        sys.stderr.write(
            f"council: attached {_amount(piped)} from standard input as context; "
            "--no-stdin to ignore it\n"
        )
    return question, attachments
