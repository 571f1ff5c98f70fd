"""Whether a recorded run is still going: a lock its process holds for as long as it runs.

A run's row says `running` from its start until it ends, and still says so after a
crash or a `kill -9`. To tell a live run from a dead one (`deliberate --resume` of a
live run would ask its calls a second time), the process holds an exclusive OS lock
on `history.running/<run id>.lock` next to the history file while it runs. The kernel
releases the lock when the process ends, however it ends; so a lock that can be
taken means nobody runs it. No pid to be reused by another program, no heartbeat
to write while the database may be locked.

    lock = RunLock.hold(history_path, run_id)   # None if another process holds it
    RunLock.held(history_path, run_id)          # True while that process lives
    lock.release()

POSIX `flock`, Windows `msvcrt.locking`. Where the lock cannot be made (a read-only
directory), liveness is unknown and a run counts as not running.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from council.store.db import private_directory

__all__ = ["RunLock"]


def _lock_path(history_path: Path, run_id: str) -> Path:
    safe = "".join(c for c in run_id if c.isalnum()) or "run"
    return history_path.with_name(f"{history_path.stem}.running") / f"{safe}.lock"


def _try_lock(fd: int) -> bool:
    """Take the lock on `fd` without waiting; False if another process has it."""
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_UN)


def _names(path: Path, fd: int) -> bool:
    """Whether `path` still names the file open as `fd` (it was not removed meanwhile)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


class RunLock:
    """The lock one process holds on one run while it goes."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def hold(cls, history_path: Path, run_id: str) -> RunLock | None:
        """Take the run's lock; None if another process holds it, or it cannot be made.

        Taking it is the check: of two processes that ask at once, one gets it. A lock
        file removed (released, or tidied by `held`) between this process's open and
        its lock is not the run's lock any more: the one the path names now is taken.
        """
        path = _lock_path(history_path, run_id)
        for _ in range(5):
            try:
                private_directory(path.parent)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                return None
            if not _try_lock(fd):
                os.close(fd)
                return None
            if _names(path, fd):
                with contextlib.suppress(OSError):  # for a person looking: who holds it
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{os.getpid()}\n".encode())
                return cls(fd, path)
            _unlock(fd)
            os.close(fd)
        return None

    @staticmethod
    def held(history_path: Path, run_id: str) -> bool:
        """Whether a live process holds the run's lock (its run is still going)."""
        path = _lock_path(history_path, run_id)
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return False  # never locked here, or released and removed
        try:
            if not _try_lock(fd):
                return True
            _unlock(fd)  # left behind by a process that died: tidy it away
            with contextlib.suppress(OSError):
                path.unlink()
            return False
        finally:
            os.close(fd)

    def release(self) -> None:
        """Let go of the run (it ended) and remove its lock file."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()  # first: a checker that opens it after this finds nothing
        _unlock(self._fd)
        os.close(self._fd)
        self._fd = None
