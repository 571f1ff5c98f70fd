"""The `council` command line: flags in, a call to the application layer, errors -> exit codes.

One module per group of commands; importing them registers their commands on
the app. Each imports only typer and light council modules at the top, so that
`council --help` stays fast.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading

from council.cli import ask, catalogs, records, setup  # noqa: F401 - registers the commands
from council.cli.base import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except SystemExit as done:
        _exit(done.code)
    _exit(0)


def _exit(code: object) -> None:
    """End the process at once, without taking the interpreter apart.

    Freeing every object of every module one by one (openai's and pydantic's
    thousands of classes) takes 0.1-0.15 s, all of it after the answer was printed.
    Nothing is lost by skipping it: a command returns only once its work is done
    (the history writer joined, the SDK client and the embedded server closed); its
    output is flushed here and exit handlers still run. Anything unusual (output that
    cannot be flushed, a thread that would still be waited for, an exit message)
    takes Python's ordinary way out instead.
    """
    if code is None:
        code = 0
    if not isinstance(code, int) or isinstance(code, bool):
        raise SystemExit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        raise SystemExit(code) from None
    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon for t in threading.enumerate()):
        raise SystemExit(code)
    atexit._run_exitfuncs()
    os._exit(code & 0xFF)
