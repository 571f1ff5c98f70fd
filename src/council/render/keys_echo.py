"""The terminal's echo of Ctrl-C ("^C") turned off while a live view is drawn.

A live view redraws its lines in place: it moves the cursor up as many lines as it
drew, and clears them. The terminal echoes a Ctrl-C as "^C" where the cursor is,
at the end of the view's last line; a view as wide as the terminal makes those two
characters wrap onto a new line, and the view's last clearing then starts one line
too low, leaving its top border on the screen above what the run prints next.
With ECHOCTL off the terminal echoes nothing for it; Ctrl-C still interrupts.

    with QuietControlKeys():        # on stdin's terminal, if it is one
        ... the live view ...       # the setting is put back however this ends
"""

from __future__ import annotations

import contextlib
import sys
from types import TracebackType
from typing import Any

__all__ = ["QuietControlKeys"]


class QuietControlKeys:
    """Clears ECHOCTL on stdin's terminal for the life of a `with` block (POSIX only)."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self._saved: list[Any] | None = None

    def __enter__(self) -> QuietControlKeys:
        try:
            import termios

            fd = sys.stdin.fileno()
            if not sys.stdin.isatty():
                return self
            saved = termios.tcgetattr(fd)
            if not saved[3] & termios.ECHOCTL:
                return self
            quiet = [*saved]
            quiet[3] = saved[3] & ~termios.ECHOCTL
            termios.tcsetattr(fd, termios.TCSANOW, quiet)
        except (ImportError, AttributeError, ValueError, OSError):
            return self  # no terminal to speak of (Windows, a closed or replaced stdin)
        self._fd, self._saved = fd, saved
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is None or self._saved is None:
            return
        import termios

        with contextlib.suppress(OSError, ValueError):  # the terminal went away meanwhile
            termios.tcsetattr(self._fd, termios.TCSANOW, self._saved)
        self._fd = self._saved = None
