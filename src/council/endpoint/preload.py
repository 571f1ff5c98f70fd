"""Import the SDK and the HTTP transport on a thread while a run does what needs neither.

A run that talks to a model pays for `import openai` before its first request; the
settings, personas, inputs and plan it reads meanwhile need no SDK. A thread importing
it then overlaps the two wherever either waits (files, the history's SQLite), and the
run's own `import openai` later finds the module done or waits for the thread to finish it.
The thread also asks the stdlib what the SDK's first client will ask it about the machine,
which on Linux spawns `uname`: a wait better spent while the run still reads its files.
"""

from __future__ import annotations

import importlib
import sys
import threading

__all__ = ["import_sdk_meanwhile"]

# What every call imports before its first request: the SDK, then the transport that
# httpx imports only when the first client is built.
SDK_MODULES = ("openai", "httpcore2", "h11", "anyio")

_started = threading.Event()


def import_sdk_meanwhile() -> None:
    """Start importing the SDK on a daemon thread, once per process."""
    if _started.is_set() or "openai" in sys.modules:
        return
    _started.set()
    threading.Thread(target=_import, name="council-import-sdk", daemon=True).start()


def _import() -> None:
    _ask_platform()
    for name in SDK_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # the run imports it again and reports what failed
            return


def _ask_platform() -> None:
    """Ask the stdlib what the SDK's first client asks it (its `X-Stainless-OS` header).

    `platform.platform()` runs `uname -p` in a child process on Linux, and the OS release
    is a file: waits that the stdlib caches for the whole process. Asked here, the wait
    overlaps the run's own work; asked when the first client is built, a process is
    spawned and waited for before the first request can leave.
    """
    import platform

    try:
        platform.platform()
        platform.freedesktop_os_release()
    except Exception:  # the SDK asks again and copes (OSError: no os-release file)
        return
