"""A lean HTTP/1.1 transport for plain-http endpoints: asyncio streams and h11.

httpx2's own transport (httpcore2 on anyio) costs about 2.6-2.8 ms of CPU per streamed
call: a cancel scope and a timer per read, a context manager per event, and a pool that
re-sorts every waiting request each time a response ends. A council of 100 pays that
before its last answer is read. This transport does the same work with one connection
object per request: h11 frames the bytes (the same parser httpcore2 uses), asyncio's
streams carry them, and an asyncio timeout guards each wait.

It keeps what the client relies on:
- a keep-alive pool: at most `max_connections` requests at once (a request over it waits
  up to the pool timeout), at most `max_keepalive_connections` idle connections, each
  dropped after `keepalive_expiry` seconds or once the server closed it;
- the request's connect, read, write and pool timeouts, raised as httpx2's exceptions
  (ConnectTimeout, ReadTimeout, WriteTimeout, PoolTimeout), and failures as ConnectError,
  ReadError, WriteError, RemoteProtocolError and LocalProtocolError, so the SDK and
  `errors.py` see exactly what httpx2's transport raises;
- a streamed response body; content-length, chunked and close-delimited bodies (h11);
- a response closed before its end, or a request cancelled, closes its connection, so
  the server sees the client go and stops generating.

Only plain http is spoken: no TLS and no proxy. `lean_mounts` mounts it for one endpoint's
origin, and only when no proxy from the environment applies to its host; everything else
(https, proxied hosts, a redirect elsewhere) keeps httpx2's transport.
"""

from __future__ import annotations

import asyncio
import select
import time
import urllib.request
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import h11
import httpx2

__all__ = ["LeanTransport", "lean_mounts", "proxied"]

# Bytes asked of the socket per read (as httpcore2 asks).
READ_SIZE = 64 * 1024


def proxied(host: str) -> bool:
    """Whether a proxy from the environment may apply to plain-http requests to `host`.

    httpx2 reads the same variables (`urllib.request.getproxies`); its NO_PROXY rules
    differ from urllib's in details, so only the cases both agree on count as not
    proxied: no http or all proxy set, or NO_PROXY naming `*` or exactly this host.
    """
    proxies = urllib.request.getproxies()
    if not (proxies.get("http") or proxies.get("all")):
        return False
    exempt = {name.strip().lower() for name in proxies.get("no", "").split(",")}
    return not ("*" in exempt or host.lower().strip("[]") in exempt)


def lean_mounts(base_url: str, limits: httpx2.Limits) -> dict[str, httpx2.AsyncBaseTransport]:
    """The HTTP client's `mounts` for an endpoint: the lean transport for its plain-http
    origin when no proxy applies to it, else none (httpx2's transport for everything)."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname or proxied(parts.hostname):
        return {}
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    port = f":{parts.port}" if parts.port else ""
    return {f"http://{host}{port}": LeanTransport(limits)}


class _Connection:
    """One TCP connection and its h11 state."""

    __slots__ = ("h11", "idle_since", "origin", "reader", "writer")

    def __init__(
        self, origin: tuple[str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.origin = origin
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.idle_since = 0.0

    def open(self) -> bool:
        """Not closed by either side, nor anything to read: an idle connection the server
        closed has its EOF waiting, seen by the event loop or not yet (one poll, as
        httpcore2 makes, so that a server's keep-alive timeout is not a failed call)."""
        if self.writer.is_closing() or self.reader.at_eof():
            return False
        sock = self.writer.get_extra_info("socket")
        if sock is None:
            return True
        try:
            if hasattr(select, "poll"):
                poller = select.poll()
                poller.register(sock.fileno(), select.POLLIN)
                return not poller.poll(0)
            return not select.select([sock], [], [], 0)[0]
        except (OSError, ValueError):
            return False

    def close(self) -> None:
        # Not awaited: the FIN goes out after what is buffered, and a cancelled task
        # must not wait for it.
        self.writer.close()

    async def read(self, request: httpx2.Request, timeout: float | None) -> bytes:
        try:
            if timeout is None:
                return await self.reader.read(READ_SIZE)
            async with asyncio.timeout(timeout):
                return await self.reader.read(READ_SIZE)
        except TimeoutError:
            raise httpx2.ReadTimeout("timed out reading", request=request) from None
        except OSError as exc:
            raise httpx2.ReadError(str(exc) or type(exc).__name__, request=request) from exc

    async def send(self, request: httpx2.Request, timeout: float | None) -> None:
        """The request's head and body, framed by h11: a chat call's in one write, a large
        upload's in pieces of about READ_SIZE, each waited for while the socket is full."""
        h = self.h11
        try:
            pending = [
                h.send(
                    h11.Request(
                        method=request.method,
                        target=request.url.raw_path,
                        headers=request.headers.raw,
                    )
                )
            ]
            size = 0
            async for part in request.stream:  # type: ignore[union-attr]
                if part:
                    pending.append(h.send(h11.Data(data=part)))
                    size += len(part)
                    if size >= READ_SIZE:
                        await self._write(pending, request, timeout)
                        pending, size = [], 0
            pending.append(h.send(h11.EndOfMessage()))
        except h11.LocalProtocolError as exc:
            raise httpx2.LocalProtocolError(str(exc)) from exc
        await self._write(pending, request, timeout)

    async def _write(
        self, parts: list[bytes], request: httpx2.Request, timeout: float | None
    ) -> None:
        writer = self.writer
        try:
            writer.write(b"".join(parts))
            if writer.transport.get_write_buffer_size():  # the socket did not take it all
                async with asyncio.timeout(timeout):
                    await writer.drain()
        except TimeoutError:
            raise httpx2.WriteTimeout("timed out writing", request=request) from None
        except OSError as exc:
            raise httpx2.WriteError(str(exc) or type(exc).__name__, request=request) from exc

    async def head(self, request: httpx2.Request, timeout: float | None) -> h11.Response:
        """The response's status line and headers (informational responses skipped)."""
        h = self.h11
        try:
            while True:
                event = h.next_event()
                if event is h11.NEED_DATA:
                    data = await self.read(request, timeout)
                    if not data and h.their_state is h11.SEND_RESPONSE:
                        raise httpx2.RemoteProtocolError(
                            "Server disconnected without sending a response.", request=request
                        )
                    h.receive_data(data)
                elif isinstance(event, h11.Response):
                    return event
                elif not isinstance(event, h11.InformationalResponse):
                    raise httpx2.RemoteProtocolError(
                        f"unexpected {type(event).__name__} before the response", request=request
                    )
        except h11.RemoteProtocolError as exc:
            raise httpx2.RemoteProtocolError(str(exc), request=request) from exc


class _Body(httpx2.AsyncByteStream):
    """A response's body as it arrives: what one read brought, in one piece."""

    def __init__(
        self,
        transport: LeanTransport,
        connection: _Connection,
        request: httpx2.Request,
        timeout: float | None,
    ) -> None:
        self._transport = transport
        self._connection = connection
        self._request = request
        self._timeout = timeout
        self._ended = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection, request = self._connection, self._request
        h = connection.h11
        parts: list[bytes] = []
        try:
            while not self._ended:
                try:
                    event = h.next_event()
                except h11.RemoteProtocolError:
                    if parts:  # what came before the broken part is handed on first
                        yield b"".join(parts)
                    raise
                if type(event) is h11.Data:
                    parts.append(event.data)
                elif event is h11.NEED_DATA:
                    if parts:
                        yield b"".join(parts)
                        parts = []
                    h.receive_data(await connection.read(request, self._timeout))
                elif type(event) is h11.EndOfMessage:
                    self._end(reuse=True)
                    if parts:
                        yield b"".join(parts)
                    return
                else:
                    raise httpx2.RemoteProtocolError(
                        f"unexpected {type(event).__name__} in the response body", request=request
                    )
        except h11.RemoteProtocolError as exc:
            raise httpx2.RemoteProtocolError(str(exc), request=request) from exc

    def _end(self, *, reuse: bool) -> None:
        if not self._ended:
            self._ended = True
            self._transport._release(self._connection, reuse=reuse)

    async def aclose(self) -> None:
        # Before its end the connection is closed: the rest of the body is not read,
        # and the server learns that nobody listens any more.
        self._end(reuse=False)


class LeanTransport(httpx2.AsyncBaseTransport):
    """httpx2's transport interface over asyncio streams and h11; see the module doc."""

    def __init__(self, limits: httpx2.Limits) -> None:
        self._slots = asyncio.Semaphore(limits.max_connections) if limits.max_connections else None
        self._max_idle = limits.max_keepalive_connections
        self._expiry = limits.keepalive_expiry
        self._idle: list[_Connection] = []  # most recently used last
        self._active: set[_Connection] = set()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        if url.scheme != "http":
            raise httpx2.UnsupportedProtocol(
                f"the lean transport speaks plain http, not {url.scheme}"
            )
        timeouts = request.extensions.get("timeout") or {}
        await self._slot(request, timeouts.get("pool"))
        connection: _Connection | None = None
        try:
            origin = (url.raw_host.decode("ascii"), url.port or 80)
            connection = self._reuse(origin) or await self._connect(
                origin, request, timeouts.get("connect")
            )
            self._active.add(connection)
            await connection.send(request, timeouts.get("write"))
            head = await connection.head(request, timeouts.get("read"))
        except BaseException:  # a failure or a cancel: the connection is in an unknown state
            if connection is not None:
                self._active.discard(connection)
                connection.close()
            if self._slots is not None:
                self._slots.release()
            raise
        return httpx2.Response(
            status_code=head.status_code,
            headers=head.headers.raw_items(),
            stream=_Body(self, connection, request, timeouts.get("read")),
            extensions={"http_version": b"HTTP/" + head.http_version, "reason_phrase": head.reason},
        )

    async def _slot(self, request: httpx2.Request, timeout: float | None) -> None:
        slots = self._slots
        if slots is None:
            return
        if not slots.locked():
            await slots.acquire()  # free: returns without suspending
            return
        try:
            async with asyncio.timeout(timeout):
                await slots.acquire()
        except TimeoutError:
            raise httpx2.PoolTimeout(
                "timed out waiting for a connection", request=request
            ) from None

    def _reuse(self, origin: tuple[str, int]) -> _Connection | None:
        now = time.monotonic()
        expiry = self._expiry
        while self._idle:
            # The most recent first: it is the least likely to have been closed.
            for i in range(len(self._idle) - 1, -1, -1):
                if self._idle[i].origin == origin:
                    connection = self._idle.pop(i)
                    break
            else:
                return None
            if connection.open() and (expiry is None or now - connection.idle_since < expiry):
                return connection
            connection.close()
        return None

    async def _connect(
        self, origin: tuple[str, int], request: httpx2.Request, timeout: float | None
    ) -> _Connection:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(*origin, limit=READ_SIZE)
        except TimeoutError:
            raise httpx2.ConnectTimeout("timed out connecting", request=request) from None
        except OSError as exc:
            raise httpx2.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        return _Connection(origin, reader, writer)

    def _release(self, connection: _Connection, *, reuse: bool) -> None:
        """A request ended: its connection is kept for the next one when both sides may
        go on, else closed; its slot is free."""
        self._active.discard(connection)
        if self._slots is not None:
            self._slots.release()
        h = connection.h11
        if reuse and h.our_state is h11.DONE and h.their_state is h11.DONE and connection.open():
            h.start_next_cycle()
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
            while len(self._idle) > (self._max_idle if self._max_idle is not None else 1 << 30):
                self._idle.pop(0).close()
        else:
            connection.close()

    async def aclose(self) -> None:
        for connection in [*self._idle, *self._active]:
            connection.close()
        self._idle.clear()
        self._active.clear()
