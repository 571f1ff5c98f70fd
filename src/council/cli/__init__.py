"""The `council` command line: flags in, a call to the application layer, errors -> exit codes.

One module per group of commands; importing them registers their commands on
the app. Each imports only typer and light council modules at the top, so that
`council --help` stays fast.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import threading

# Importing typer with the cyclic garbage collector off (see _collect_later); only for
# this import when council is used as a library (tests).
_collecting = gc.isenabled()
gc.disable()
from council.cli import ask, batch, catalogs, eval, judge, records, setup  # noqa: E402, F401 - registers the commands
from council.cli.base import app  # noqa: E402

if _collecting:
    gc.enable()

__all__ = ["app", "main"]

# However a command goes, the garbage collector is back this long after it started.
GC_BACK_AFTER = 2.0


def main() -> None:
    """Console-script entry point (and `python -m council`): messages say `council`."""
    _collect_later()
    try:
        app(prog_name="council")
    except SystemExit as done:
        _exit(done.code)
    _exit(0)


def _collect_later() -> None:
    """No cyclic garbage collection while a command imports what it needs.

    Importing openai, pydantic and typer makes a million objects, and the collector
    scans them again and again as they come: about a tenth of the time before the
    first request. Nothing those imports make is garbage worth collecting. A run
    turns it back on (after gc.freeze, so that it never scans them again) once its
    imports are done (`app.run`); a timer turns it back on for any other command.
    """
    gc.disable()
    timer = threading.Timer(GC_BACK_AFTER, gc.enable)
    timer.daemon = True
    timer.start()


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
