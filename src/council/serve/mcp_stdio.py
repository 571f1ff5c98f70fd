"""`council mcp`: council's MCP server on standard input and output.

    run_stdio(McpSettings(...))    # until the client closes stdin, or a stop signal

The SDK serves the protocol from its own copies of the standard streams and points
file descriptors 0 and 1 at /dev/null and stderr while it runs, so a stray print
(or a child process's output) cannot break the protocol.
"""

import asyncio
import contextlib
import os
import signal
import sys
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer

from council.serve.mcp_run import McpSettings
from council.serve.mcp_server import build_server

__all__ = ["run_stdio"]

# Signals that end the server as a closed stdin does (clients send SIGTERM on quitting).
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))
# How long councils cancelled by a stop signal get to close their calls and be recorded.
STOP_GRACE = 10.0


def run_stdio(settings: McpSettings) -> None:
    """Serve the tools on standard input and output until the client closes them.

    SIGTERM or SIGHUP ends it too: councils still running are cancelled (their model
    calls closed) and recorded as interrupted, with what had finished; then the process
    exits 0.
    """
    running: set[asyncio.Task[Any]] = set()
    anyio.run(_serve_stdio, build_server(settings, running), running)


async def _serve_stdio(server: MCPServer, running: set[asyncio.Task[Any]]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
    serving = asyncio.ensure_future(server.run_stdio_async())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if serving.done():
        stopping.cancel()
        return serving.result()
    for task in list(running):
        task.cancel()
    if running:
        await asyncio.wait(set(running), timeout=STOP_GRACE)
    # The SDK reads stdin on a thread that only a line or end of file frees: the process
    # ends here, its councils recorded (their recorders are closed by now).
    sys.stderr.flush()
    os._exit(0)
