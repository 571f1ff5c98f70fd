"""Reading a file council was pointed at: regular files only, and never more than a cap.

A file's size from `stat` cannot be trusted: a device (`/dev/zero`) or a pipe says
0 and then never ends, and opening a FIFO with no writer blocks for ever. So the
file is opened without blocking, refused unless it is a regular file, and read up
to `limit + 1` bytes: one byte more than the caller accepts is enough to know the
file is too big, whatever it claims.

    data = read_limited(path, limit=200_000)   # OSError, NotARegularFile
    if len(data) > 200_000: ...                # too big
"""

from __future__ import annotations

import os
import select
import stat
from collections.abc import Callable
from pathlib import Path

__all__ = ["NotARegularFile", "file_kind", "read_limited"]

_CHUNK = 64 * 1024
# Seconds a named pipe may stay without a writer before the caller is told it waits.
PIPE_PATIENCE = 2.0


class NotARegularFile(OSError):
    """The path is a directory, a FIFO, a device or a socket: council reads only plain files."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__(f"{path} is {kind}, not a regular file")
        self.path = path
        self.kind = kind
        self.strerror = f"{kind}, not a regular file"


def file_kind(mode: int) -> str:
    """What a file of this `st_mode` is, in words ("a named pipe (FIFO)", ...)."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def read_limited(
    path: Path,
    limit: int,
    *,
    pipes: bool = False,
    waiting: Callable[[], None] | None = None,
) -> bytes:
    """At most `limit + 1` bytes of the regular file at `path` (symlinks followed).

    With `pipes`, a pipe is read too (capped the same way): the user named it on the
    command line (`-c <(git diff)`, `-c /dev/stdin`, a `mkfifo` pipe), unlike a file
    found in a repository. A named pipe no writer has opened yet is waited for, as
    `cat` waits (`waiting` is called first, when nothing came within PIPE_PATIENCE
    seconds). Raises NotARegularFile for anything else, and OSError
    (FileNotFoundError for a broken symlink too) when it cannot be opened or read.
    """
    # O_NONBLOCK: opening a FIFO must not wait for a writer (regular files ignore it).
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if pipes and stat.S_ISFIFO(mode):
            _wait_for_writer(fd, waiting)
            os.set_blocking(fd, True)  # wait for the writer's data, as `cat` would
        elif not stat.S_ISREG(mode):
            raise NotARegularFile(path, file_kind(mode))
        parts: list[bytes] = []
        left = limit + 1
        while left > 0:
            part = os.read(fd, min(left, _CHUNK))
            if not part:
                break
            parts.append(part)
            left -= len(part)
        return b"".join(parts)
    finally:
        os.close(fd)


def _wait_for_writer(fd: int, waiting: Callable[[], None] | None) -> None:
    """Until the pipe `fd` (opened without blocking) has data, or a writer came and went.

    A read of a FIFO no writer opened yet ends at once with nothing, so it is waited
    on first (its readiness is what says a writer came). Windows has no FIFO files.
    """
    if os.name == "nt":
        return
    ready, _, _ = select.select([fd], [], [], PIPE_PATIENCE)
    if not ready:
        if waiting is not None:
            waiting()
        select.select([fd], [], [])
