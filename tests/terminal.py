"""A pseudo-terminal running `council`, for tests of what a person sees and types."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from typing import Self

__all__ = ["ANSI", "Terminal", "plain"]

# CSI and OSC sequences, and the other lone escapes rich writes to a terminal.
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


def plain(raw: str) -> str:
    return ANSI.sub("", raw).replace("\r", "")


class Terminal:
    """`council ARGS` with stdin, stdout and stderr on one pseudo-terminal of rows×cols.

    Usage:
        with Terminal(["deliberate", "q"], rows=40, cols=100) as term:
            term.wait_for(lambda screen: "answer" in screen)
            code = term.finish()
    """

    def __init__(
        self, args: list[str], *, rows: int, cols: int, env: dict[str, str] | None = None
    ) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")},
            **(env or {}),
        }
        env["TERM"] = "xterm-256color"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "council.cli", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.master = master
        self._chunks: list[bytes] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every writer of the terminal has gone
                data = b""
            with self._changed:
                if data:
                    self._chunks.append(data)
                else:
                    self._chunks.append(b"")  # the end, as a marker
                self._changed.notify_all()
            if not data:
                return

    @property
    def raw(self) -> str:
        with self._changed:
            return b"".join(self._chunks).decode("utf-8", "replace")

    def wait_for(self, ready: Callable[[str], bool], timeout: float = 20.0) -> str:
        """What the terminal has shown (ANSI stripped), once `ready` says it is enough."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                seen = plain(b"".join(self._chunks).decode("utf-8", "replace"))
                if ready(seen):
                    return seen
                left = deadline - time.monotonic()
                if left <= 0 or (self._chunks and self._chunks[-1] == b""):
                    raise AssertionError(f"the terminal never showed it; it showed:\n{seen}")
                self._changed.wait(left)

    def type(self, text: str) -> None:
        """Type `text` at the terminal, as a person at its keyboard would."""
        os.write(self.master, text.encode("utf-8"))

    def finish(self) -> int:
        code = self.process.wait(timeout=30)
        self._reader.join(timeout=10)
        return code

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=10)
        os.close(self.master)
