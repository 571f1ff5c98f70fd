"""What to do when whoever reads council's stdout goes away (`council history | head -1`).

Light on purpose: the CLI's error handler imports it for a broken pipe.

    try:
        sys.stdout.write(text)
    except BrokenPipeError:
        stdout_gone()      # and carry on quietly: the reader has what it wanted
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys

__all__ = ["is_gone", "stdout_gone"]


def is_gone(error: BaseException) -> bool:
    """Whether writing failed because the reader left: a closed pipe, or a hung-up terminal."""
    return isinstance(error, BrokenPipeError) or (
        isinstance(error, OSError) and error.errno == errno.EIO
    )


def stdout_gone() -> None:
    """Point stdout at the null device, so nothing writes to the closed pipe again.

    Python's own advice for a BrokenPipeError: what is still buffered would fail once
    more when the interpreter flushes stdout on exit, with a message and exit code 120.
    """
    # Not a real file (a test's captured stdout): there is no descriptor to redirect.
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
