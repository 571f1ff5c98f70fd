"""The `council` command line: flags in, a call to the application layer, errors -> exit codes.

One module per group of commands; importing them registers their commands on
the app. Each imports only typer and light council modules at the top, so that
`council --help` stays fast. `main` imports only the module of the command that the
command line names (`COMMAND_MODULES`); `council.cli.app` is the whole app.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from council.cli.usage import CouncilTyper

__all__ = ["app", "main"]

# The code `main` ends the process with, once the exit handlers have run; None when
# council.cli is imported as a library (nothing changes then).
_exit_code: int | None = None


def _end_now() -> None:
    """The process's last exit handler: end it without taking the interpreter apart.

    Freeing every object of every module one by one (openai's and pydantic's
    thousands of classes) takes 0.1-0.2 s, all of it after the answer was printed.
    Python's own way out has run by now: non-daemon threads were joined, and every
    exit handler registered after this one (they run last registered first; this one
    is registered as council.cli is imported, before its imports) ran. The output is
    flushed here, and the process ends with its code (os._exit, as documented: no
    cleanup left to do). Output that cannot be flushed takes Python's ordinary way out.
    """
    if _exit_code is None:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(_exit_code)


atexit.register(_end_now)

# The modules that register the commands, in the order `council --help` lists them.
MODULES = ("ask", "batch", "catalogs", "eval", "judge", "keys", "mcp", "records", "serve", "setup")
# The module of each command of the root app's own (a group's commands need the whole
# app). A command missing here still runs: the whole app is imported for it.
COMMAND_MODULES = {
    "oracle": "ask",
    "deliberate": "ask",
    "resume": "ask",
    "batch": "batch",
    "init": "catalogs",
    "eval": "eval",
    "judge": "judge",
    "mcp": "mcp",
    "show": "records",
    "stats": "records",
    "serve": "serve",
    "models": "setup",
}

# However a command goes, the garbage collector is back this long after it started.
GC_BACK_AFTER = 2.0


def main() -> None:
    """Console-script entry point (and `python -m council`): messages say `council`."""
    _collect_later()
    app = _app_for(sys.argv[1:])
    try:
        with app.only_the_command(sys.argv[1:]):
            app(prog_name="council")
    except SystemExit as done:
        _exit(done.code)
    _exit(0)


def __getattr__(name: str) -> Any:
    """`council.cli.app`: the whole app, every command registered (imported when asked)."""
    if name == "app":
        return _whole_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _app_for(args: list[str]) -> CouncilTyper:
    """The app with at least the command that `args` name registered.

    Importing every command module costs a run some 6-11 ms of CPU before its first
    request (their imports, and the signatures their options are built from). A command
    of the root app's own needs only its module; anything else (help, a group's command,
    a misspelt name) gets the whole app, as `CouncilTyper.only_the_command` builds it.
    """
    from council.cli.base import app
    from council.cli.usage import command_named

    module = COMMAND_MODULES.get(command_named(args) or "")
    if module is None:
        return _whole_app()
    importlib.import_module(f"{__name__}.{module}")
    return app


def _whole_app() -> CouncilTyper:
    """The root app with every module's commands, listed in `MODULES`' order whichever
    module came first (`main` may have imported one already)."""
    from council.cli.base import app

    for module in MODULES:
        importlib.import_module(f"{__name__}.{module}")
    order = {f"{__name__}.{module}": place for place, module in enumerate(MODULES)}
    app.registered_commands.sort(
        key=lambda command: order.get(getattr(command.callback, "__module__", ""), len(order))
    )
    return app


def _collect_later() -> None:
    """No cyclic garbage collection while a command imports what it needs.

    Importing openai and pydantic makes a million objects, and the collector scans
    them again and again as they come: 0.07-0.1 s of CPU before the first request.
    Nothing those imports make is garbage worth collecting. A run turns it back on
    (after gc.freeze, so that it never scans them again) once its imports are done
    (`app.run`); a timer turns it back on for any other command.
    """
    gc.disable()
    timer = threading.Timer(GC_BACK_AFTER, gc.enable)
    timer.daemon = True
    timer.start()


def _exit(code: object) -> None:
    """Exit the ordinary way with `code`; an integer one ends the process at the last
    exit handler (`_end_now`), any other (an exit message) is Python's to handle."""
    global _exit_code
    if code is None:
        code = 0
    if isinstance(code, int) and not isinstance(code, bool):
        _exit_code = code & 0xFF
    raise SystemExit(code)
