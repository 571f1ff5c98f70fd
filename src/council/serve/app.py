"""The starlette application: `/v1/models`, `/v1/chat/completions`, and mounted apps.

`build_app(service, extras=...)` is the seam for other surfaces of the same server
(`/mcp`, mounted by `council serve`): each `Extra` brings its routes (a starlette
`Mount` at its path, say) and optionally a lifespan (an async context manager
factory, entered when the server starts and left when it stops, inside the
server's own). Every route, mounted ones included, is behind the same bearer
check and body cap.

The chat endpoint is a plain ASGI app rather than a starlette response: it
watches the client's connection for the whole run (a streamed response that has
sent nothing for a while still learns at once that its client went away) and
cancels the council's calls the moment it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from council.endpoint.redact import redact
from council.errors import CouncilError
from council.serve.chunks import (
    Narrator,
    answer_text,
    chunk,
    completion,
    council_object,
    sse,
)
from council.serve.councils import Councils
from council.serve.protocol import ApiError, ChatCall, read_chat_call
from council.serve.runs import CouncilRun, Runs, usage_of

__all__ = ["DEFAULT_MAX_BODY", "Extra", "Service", "build_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# A chat request's body: 1 MiB holds a long conversation; a bigger one is refused (413).
DEFAULT_MAX_BODY = 1024 * 1024


@dataclass
class Service:
    """What every route of the server shares: the councils, the runs, the key, the caps."""

    councils: Councils
    runs: Runs
    # The bearer token every request must carry (None: no check, loopback only).
    api_key: str | None = None
    max_body: int = DEFAULT_MAX_BODY
    # Seconds running councils get to finish when the server is told to stop.
    grace: float = 10.0
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass(frozen=True)
class Extra:
    """Another app served by the same server: its routes and its lifespan (or None)."""

    routes: Sequence[BaseRoute] = ()
    lifespan: Callable[[], contextlib.AbstractAsyncContextManager[Any]] | None = None


def build_app(service: Service, *, extras: Sequence[Extra] = ()) -> Any:
    """The server's ASGI app: the OpenAI routes and the extras, behind the key and body cap."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for extra in extras:
                if extra.lifespan is not None:
                    await stack.enter_async_context(extra.lifespan())
            try:
                yield
            finally:
                # uvicorn gave running requests the grace period and cancelled the rest;
                # any council still going ends here, and is recorded.
                await service.runs.close()

    routes: list[BaseRoute] = [
        Route("/v1/models", _models(service), methods=["GET"]),
        Route("/v1/models/{model:path}", _model(service), methods=["GET"]),
        Route("/v1/chat/completions", ChatCompletions(service), methods=["POST"]),
    ]
    for extra in extras:
        routes.extend(extra.routes)
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_exception_handler(404, _not_found)
    app.add_exception_handler(405, _not_allowed)
    app.add_exception_handler(Exception, _server_error)
    return Guard(app, api_key=service.api_key, max_body=service.max_body)


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return _error_response(ApiError(404, f"no such route: {request.url.path}", code="not_found"))


async def _not_allowed(request: Request, exc: Exception) -> JSONResponse:
    return _error_response(ApiError(405, f"{request.method} is not allowed on {request.url.path}"))


async def _server_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug of the server's own: OpenAI's shape all the same (uvicorn logs the traceback)."""
    message = f"council serve failed: {type(exc).__name__}: {redact(str(exc))}; please report it"
    return _error_response(ApiError(500, message, type="server_error"))


def _error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


async def _send_error(send: Send, error: ApiError) -> None:
    response = _error_response(error)
    await response({"type": "http"}, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


def _models(service: Service) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def models(request: Request) -> JSONResponse:
        ids = await asyncio.to_thread(service.councils.ids)
        data = [_model_entry(service, name) for name in ids]
        return JSONResponse({"object": "list", "data": data})

    return models


def _model(service: Service) -> Callable[[Request], Awaitable[JSONResponse]]:
    """`GET /v1/models/ID` (the SDK's `models.retrieve`): the model, or 404."""

    async def model(request: Request) -> JSONResponse:
        name = request.path_params["model"]
        if name not in await asyncio.to_thread(service.councils.ids):
            return _error_response(
                ApiError(404, f"The model '{name}' does not exist", code="model_not_found")
            )
        return JSONResponse(_model_entry(service, name))

    return model


def _model_entry(service: Service, name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": service.created, "owned_by": "council"}


class Guard:
    """Every request: the bearer token (compared in constant time) and the body cap."""

    def __init__(self, app: Any, *, api_key: str | None, max_body: int) -> None:
        self.app = app
        self.key = f"Bearer {api_key}".encode() if api_key else None
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self.key is not None:
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.key):
                await _send_error(
                    send,
                    ApiError(
                        401,
                        "missing or wrong API key: send the server's key as "
                        "'Authorization: Bearer KEY'",
                        code="invalid_api_key",
                    ),
                )
                return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await _send_error(send, too_large(self.max_body))
            return
        received = 0

        async def counted() -> Message:
            # A body sent without its length (chunked) is cut off at the cap: the app
            # reads the client as gone (the chat endpoint counts too, and answers 413).
            nonlocal received
            if received > self.max_body:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


def too_large(cap: int) -> ApiError:
    return ApiError(
        413,
        f"the request body is larger than this server takes ({cap} bytes)",
        code="request_too_large",
    )


async def read_body(receive: Receive, cap: int) -> bytes | None:
    """The request's body; None when the client went away first; 413 past `cap` bytes."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if size > cap:
                raise too_large(cap)
            return None
        body = message.get("body", b"")
        size += len(body)
        if size > cap:
            raise too_large(cap)
        parts.append(body)
        if not message.get("more_body"):
            return b"".join(parts)


class ChatCompletions:
    """`POST /v1/chat/completions`: one council run, streamed or as one completion."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            raw = await read_body(receive, self.service.max_body)
            if raw is None:
                return
            call = read_chat_call(raw)
            council = await self.service.councils.resolve(call.model)
            try:
                stream = council.stream(call)
            except CouncilError as error:
                raise ApiError(400, error.one_line()) from None
            async with self.service.runs.admitted():
                run = self.service.runs.start(council, stream)
                await self._answer(call, run, receive, send)
        except ApiError as error:
            await _send_error(send, error)

    async def _answer(self, call: ChatCall, run: CouncilRun, receive: Receive, send: Send) -> None:
        assert run.task is not None
        gone = asyncio.Event()
        watcher = asyncio.get_running_loop().create_task(_watch(receive, run, gone))
        try:
            if call.stream:
                await _stream(call, run, send, gone)
            else:
                await run.task
                if not gone.is_set():
                    await _whole(call, run, send)
        except asyncio.CancelledError:
            # The server is stopping past its grace period: the council ends, recorded.
            run.task.cancel()
            await asyncio.wait([run.task])
            raise
        finally:
            watcher.cancel()


async def _watch(receive: Receive, run: CouncilRun, gone: asyncio.Event) -> None:
    """The client went away: every call of its council is cancelled at once."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            if run.task is not None:
                run.task.cancel()
            return


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def failure(run: CouncilRun) -> ApiError | None:
    """What the client is told instead of an answer: 504 past the deadline, 502 when every
    member failed (their errors quoted, keys masked); None when there is an answer."""
    if run.timed_out:
        return ApiError(
            504,
            f"the council did not finish within {run.deadline:g} s (--deadline)",
            type="timeout",
            code="timeout",
        )
    if run.result is not None and answer_text(run.result).strip():
        return None
    if run.cancelled:
        return ApiError(503, "the server is stopping; ask again", type="server_error")
    failures = run.failures
    kinds = {f.error_kind for f in failures}
    quoted = "; ".join(f"{f.persona} ({f.error_kind}): {redact(f.message)}" for f in failures)
    if kinds == {"timeout"}:
        return ApiError(504, f"every member timed out: {quoted}", type="timeout", code="timeout")
    return ApiError(
        502,
        f"every member failed: {quoted}" if quoted else "the council gave no answer",
        type="upstream_error",
        code="upstream_failed",
    )


async def _whole(call: ChatCall, run: CouncilRun, send: Send) -> None:
    error = failure(run)
    if error is not None:
        await _send_error(send, error)
        return
    result = run.result
    assert result is not None  # failure() said there is an answer
    body = completion(
        _completion_id(),
        call.model,
        int(time.time()),
        answer_text(result),
        usage_of(run.usage),
        council_object(result, run.council.mode),
    )
    await JSONResponse(body)({"type": "http"}, _nothing, send)


async def _stream(call: ChatCall, run: CouncilRun, send: Send, gone: asyncio.Event) -> None:
    assert run.task is not None
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
            ],
        }
    )
    created = int(time.time())
    completion_id = _completion_id()

    async def piece(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> None:
        data = chunk(completion_id, call.model, created, delta, finish, **extra)
        await send({"type": "http.response.body", "body": sse(data), "more_body": True})

    await piece({"role": "assistant", "content": ""})
    narrator = Narrator(run.council.deliberates)
    async for event in run.stream():
        if gone.is_set():
            break
        for kind, text in narrator.pieces(event):
            key = "content" if kind == "content" else "reasoning_content"
            await piece({key: text})
    await asyncio.wait([run.task])
    if gone.is_set():
        return
    error = failure(run)
    if error is not None:
        # Headers went out long ago: the error is the stream's last event, as OpenAI sends it.
        body = sse(error.body())
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return
    result = run.result
    assert result is not None  # failure() said there is an answer
    if not narrator.content_sent:
        await piece({"content": answer_text(result)})
    await piece(
        {},
        "stop",
        usage=usage_of(run.usage),
        council=council_object(result, run.council.mode),
    )
    await send({"type": "http.response.body", "body": sse("[DONE]"), "more_body": False})
