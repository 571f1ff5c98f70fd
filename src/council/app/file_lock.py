"""One writer per file: an exclusive lock held for the life of a run, and who holds it.

    fd = open_locked(Path("out.jsonl"))   # created 0600; HeldElsewhere(pid) if taken
    ...                                   # read and write through fd only
    os.close(fd)                          # the lock goes with the last descriptor

POSIX record locks (`fcntl`, F_SETLK): the kernel drops one when its process ends,
however it ends, and F_GETLK says which process holds one, so a refusal can name it
(`flock` cannot). A record lock also goes when its process closes *any* descriptor
of the file, so the holder reads and rewrites the file through the locked one only.

A file replaced by rename while a second process waited for its lock leaves that
process holding the old, unlinked file: the lock counts only once the path still
names the locked file, else the new one is opened and locked instead.

Windows has no `fcntl`, and some network file systems refuse locks: there the file
is written unlocked.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import sys
from pathlib import Path

__all__ = ["HeldElsewhere", "open_locked"]

# struct flock as the kernel lays it out, by platform (l_type, l_whence, l_start, l_len, l_pid).
_FLOCK_LAYOUTS = {"linux": "hhqqi", "darwin": "qqihh", "freebsd": "qqihhi"}
_ATTEMPTS = 5  # a file renamed over again and again between open and lock: give up


class HeldElsewhere(OSError):
    """Another process holds the file's lock; `pid` names it when the platform says."""

    def __init__(self, path: Path, pid: int | None) -> None:
        super().__init__(f"{path} is locked by another process")
        self.path = path
        self.pid = pid


def _holder(fd: int) -> int | None:
    """The pid holding a write lock on `fd`'s file (None: nobody, or it cannot be known)."""
    import fcntl

    layout = next((v for k, v in _FLOCK_LAYOUTS.items() if sys.platform.startswith(k)), None)
    if layout is None:
        return None
    if layout.startswith("hh"):
        query = struct.pack(layout, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
    else:
        query = struct.pack(layout, 0, 0, 0, fcntl.F_WRLCK, os.SEEK_SET, *([0] * (len(layout) - 5)))
    try:
        # Room beyond the struct: the kernel's may be padded past what struct packs.
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, query + bytes(32))
    except OSError:
        return None
    fields = struct.unpack_from(layout, answer)
    kind, pid = (fields[0], fields[4]) if layout.startswith("hh") else (fields[3], fields[2])
    return pid if kind != fcntl.F_UNLCK and pid > 0 else None


def _lock(fd: int, path: Path) -> None:
    import fcntl

    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EAGAIN):
            raise HeldElsewhere(path, _holder(fd)) from None
        # No locks on this file system (ENOLCK on some NFS mounts): written unlocked,
        # as before, rather than refused for a writer that may not exist.


def open_locked(path: Path) -> int:
    """A read-write, appending descriptor of `path` (created 0600), its lock taken.

    Raises HeldElsewhere when another process holds it, OSError when it cannot be opened.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    for _ in range(_ATTEMPTS):
        fd = os.open(path, flags, 0o600)
        if sys.platform == "win32":
            return fd
        try:
            _lock(fd, path)
            with contextlib.suppress(FileNotFoundError):
                if os.path.samestat(os.fstat(fd), os.stat(path)):
                    return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # renamed over (compacted) while this process waited: lock the new one
    raise HeldElsewhere(path, None)
