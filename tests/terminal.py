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

__all__ = ["ANSI", "Screen", "Terminal", "plain"]

# CSI and OSC sequences, and the other lone escapes rich writes to a terminal.
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


def plain(raw: str) -> str:
    return ANSI.sub("", raw).replace("\r", "")


def _take_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """`council ARGS` with stdin, stdout and stderr on one pseudo-terminal of rows×cols.

    Usage:
        with Terminal(["deliberate", "q"], rows=40, cols=100) as term:
            term.wait_for(lambda screen: "answer" in screen)
            code = term.finish()
    """

    def __init__(
        self,
        args: list[str],
        *,
        rows: int,
        cols: int,
        env: dict[str, str] | None = None,
        controlling: bool = False,
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
            # The terminal as the process's controlling one: a Ctrl-C typed at it is
            # SIGINT to the process group, echoed "^C", as in a shell.
            preexec_fn=_take_terminal if controlling else None,
        )
        self.rows, self.cols = rows, cols
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

    def screen(self) -> list[str]:
        """What is on the screen and above it (scrolled off) now, as a terminal shows it."""
        screen = Screen(self.rows, self.cols)
        screen.feed(self.raw)
        return screen.lines()


_SEQUENCE = re.compile(r"\x1b\[([0-9;?]*)([ -/]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b(.)")


class Screen:
    """A small VT100 screen: enough of it for what rich and a tty write (text with
    auto-wrap at the last column, CR, LF, backspace, cursor moves, erasing in a line
    or the display); lines that scroll off the top are kept above it."""

    def __init__(self, rows: int, cols: int) -> None:
        self.rows, self.cols = rows, cols
        self.scrolled: list[str] = []
        self.grid = [[" "] * cols for _ in range(rows)]
        self.row = self.col = 0
        self.pending_wrap = False  # at the last column: the next character wraps first

    def _line_feed(self) -> None:
        if self.row == self.rows - 1:
            self.scrolled.append("".join(self.grid.pop(0)).rstrip())
            self.grid.append([" "] * self.cols)
        else:
            self.row += 1

    def _put(self, char: str) -> None:
        if self.pending_wrap:
            self.col, self.pending_wrap = 0, False
            self._line_feed()
        self.grid[self.row][self.col] = char
        if self.col == self.cols - 1:
            self.pending_wrap = True
        else:
            self.col += 1

    def _control(self, params: str, final: str) -> None:
        numbers = [int(n) if n.isdigit() else 0 for n in params.lstrip("?").split(";")]
        n = numbers[0] if numbers else 0
        self.pending_wrap = False if final in "ABCDGHJKf" else self.pending_wrap
        if final == "A":
            self.row = max(0, self.row - max(1, n))
        elif final == "B":
            self.row = min(self.rows - 1, self.row + max(1, n))
        elif final == "C":
            self.col = min(self.cols - 1, self.col + max(1, n))
        elif final == "D":
            self.col = max(0, self.col - max(1, n))
        elif final == "G":
            self.col = min(self.cols - 1, max(1, n) - 1)
        elif final in "Hf":
            row, col = [*numbers, 0, 0][:2]
            self.row, self.col = min(self.rows, max(1, row)) - 1, min(self.cols, max(1, col)) - 1
        elif final == "K":
            start, end = {0: (self.col, self.cols), 1: (0, self.col + 1)}.get(n, (0, self.cols))
            self.grid[self.row][start:end] = [" "] * (end - start)
        elif final == "J":
            rows = range(self.row + 1, self.rows) if n == 0 else range(self.rows)
            if n == 0:
                self.grid[self.row][self.col :] = [" "] * (self.cols - self.col)
            for row in rows:
                self.grid[row] = [" "] * self.cols

    def feed(self, text: str) -> None:
        position = 0
        while position < len(text):
            match = _SEQUENCE.match(text, position)
            if match is not None:
                if match.group(3) is not None:
                    self._control(match.group(1), match.group(3))
                position = match.end()
                continue
            char = text[position]
            position += 1
            if char == "\r":
                self.col, self.pending_wrap = 0, False
            elif char == "\n":
                self.pending_wrap = False
                self._line_feed()
            elif char == "\b":
                self.col, self.pending_wrap = max(0, self.col - 1), False
            elif char >= " ":
                self._put(char)

    def lines(self) -> list[str]:
        shown = ["".join(row).rstrip() for row in self.grid]
        while shown and not shown[-1]:
            shown.pop()
        return self.scrolled + shown
