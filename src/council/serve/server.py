"""uvicorn running the server's app: the listening line, signals, the grace period, exit code.

The socket is bound and listening before the "listening on" line is printed (port 0:
a free one, named in that line), so that a client, a test or a script can connect as
soon as it reads the line. SIGTERM (and Ctrl-C) stop the server: no new connection
is taken, councils running get up to the grace period to finish, the rest are
cancelled and recorded, and the command exits 0 (130 for Ctrl-C).
"""

from __future__ import annotations

import signal
import socket
import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

import uvicorn

from council.errors import EXIT_INTERRUPTED
from council.serve.app import Extra, Service, build_app

__all__ = ["extras_for", "run_server"]


def extras_for(service: Service, host: str = "127.0.0.1") -> list[Extra]:
    """The other apps `council serve` mounts beside the OpenAI routes: the MCP tools at
    `/mcp` (streamable HTTP), on the same endpoint settings and history choice.

    The one place to add a surface: return its `Extra` (routes and lifespan). `host` is
    the address served: on loopback the MCP SDK also refuses other sites' Host/Origin.
    """
    from council.serve.mcp_http import mcp_http
    from council.serve.mcp_run import McpSettings

    given = service.councils.settings
    settings = McpSettings(
        endpoint=given.get("endpoint"),
        base_url=given.get("base_url"),
        model=given.get("model"),
        no_history=not service.councils.history,
    )
    http = mcp_http(settings, host=host)
    return [Extra(routes=http.routes, lifespan=http.lifespan)]


class _Server(uvicorn.Server):
    """uvicorn's server, saying once on stderr that it is stopping, and how long it waits."""

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[int], None]) -> None:
        super().__init__(config)
        self.on_stop = on_stop

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit:
            self.on_stop(sig)
        super().handle_exit(sig, frame)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (IPv6 when the host is one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def run_server(
    service: Service,
    sock: socket.socket,
    *,
    say: Callable[[str], None],
    ready: str,
    extras: Sequence[Extra] | None = None,
) -> int:
    """Say `ready`, then serve on `sock` until a signal stops the server; the exit code."""
    if extras is None:
        extras = extras_for(service, host=str(sock.getsockname()[0]))
    app = build_app(service, extras=extras)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=service.grace,
        # Small councils of chat UIs keep connections open: the default 5 s is fine,
        # and the server's own streams carry no keep-alive pings to time out.
        timeout_keep_alive=5,
    )
    stopped_by: list[int] = []

    def on_stop(sig: int) -> None:
        stopped_by.append(sig)
        running = len(service.runs.tasks)
        say(
            f"council serve: stopping; {running} council{'s' if running != 1 else ''} "
            f"running get up to {service.grace:g} s to finish (--grace)"
        )

    server = _Server(config, on_stop)

    def early(signum: int, frame: Any) -> None:
        # A signal before uvicorn took its own handlers (a client may send one as soon as
        # it reads the ready line) stops the server as it starts. uvicorn also raises the
        # signal that stopped it again once it is done, under these handlers: already
        # noted then, so the command decides its exit code (0 for SIGTERM) rather than
        # the default handler (killed by SIGTERM).
        if not server.should_exit:
            on_stop(signum)
            server.should_exit = True

    previous = {s: signal.signal(s, early) for s in (signal.SIGTERM, signal.SIGINT)}
    say(ready)
    try:
        server.run(sockets=[sock])
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sock.close()
    if not server.started:
        return 1
    return EXIT_INTERRUPTED if stopped_by and stopped_by[0] == signal.SIGINT else 0


# What a run needs that the first request would otherwise import (the SDK alone takes
# about a second): loaded before the server listens, so that no request waits for it.
ENGINE_MODULES = (
    "council.engine.oracle",
    "council.engine.deliberation",
    "council.endpoint.client",
    "council.app.run_context",
)


def _load_engine() -> None:
    import importlib

    for name in ENGINE_MODULES:
        importlib.import_module(name)


def listening_line(host: str, sock: socket.socket, *, keyed: bool) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}/v1"
    key = " (clients send the key as a bearer token)" if keyed else ""
    return f"council serve: listening on {base}{key}; stop with Ctrl-C or SIGTERM"


def write_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    import ipaddress

    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_council(
    *,
    host: str,
    port: int,
    api_key_env: str | None,
    settings: dict[str, Any],
    max_runs: int,
    max_queue: int,
    deadline: float | None,
    grace: float,
    max_body: int,
    record: bool,
) -> int:
    """`council serve`: check the key and bind, say where it listens, serve; the exit code."""
    import os

    from council.errors import UsageError
    from council.serve.councils import COUNCIL_ID, Councils
    from council.serve.runs import Runs

    api_key = None
    if api_key_env is not None:
        api_key = os.environ.get(api_key_env, "")
        if not api_key.strip():
            raise UsageError(
                f"--api-key-env {api_key_env}: ${api_key_env} is not set or empty",
                f"export {api_key_env}=<a long random key> and give it to the clients",
            )
    elif not is_loopback(host):
        raise UsageError(
            f"--host {host} lets other machines in: it needs a key",
            "add --api-key-env VAR (a variable holding the key clients must send), "
            "or serve on 127.0.0.1",
        )
    councils = Councils(settings, history=record)
    # The user's own council is checked before the server listens: a missing key or a
    # broken config is one line now rather than a 500 on every request.
    from council.serve.protocol import ApiError

    try:
        councils.resolve_now(COUNCIL_ID)
    except ApiError as error:
        prefix = f"council '{COUNCIL_ID}' cannot run: "
        raise UsageError(error.message.removeprefix(prefix)) from None
    _load_engine()
    runs = Runs(max_runs=max_runs, max_queue=max_queue, deadline=deadline)
    service = Service(councils=councils, runs=runs, api_key=api_key, max_body=max_body, grace=grace)
    try:
        sock = bind(host, port)
    except OSError as error:
        raise UsageError(
            f"cannot listen on {host}:{port}: {error.strerror or error}",
            "pick another --port (0: any free one), or stop what uses it",
        ) from None
    ready = listening_line(host, sock, keyed=api_key is not None)
    try:
        return run_server(service, sock, say=write_stderr, ready=ready)
    finally:
        councils.close()  # the embedded model's servers the councils kept
