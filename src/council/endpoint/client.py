"""Talks to the OpenAI-compatible endpoint; the only module that imports openai.

One `AsyncOpenAI` client per endpoint per run, with the SDK's own retries off:
council retries itself (tenacity: exponential backoff with full jitter, at least
`Retry-After` when the server sends a usable one) on 429, 5xx, connection errors,
timeouts and broken streams, and never on other 4xx. Every call has three limits:
a connect timeout, a first-token timeout (per attempt: until the first token of
any kind, reasoning or answer, so a model that thinks for long before answering
is not cut off while its tokens flow) and a total deadline (the whole call,
retries included; time spent waiting for a slot does not count; an answer still
streaming at the deadline is kept as it is, finish reason DEADLINE_CUT). The endpoint's
limiter (`limiter.py`, shared by every call to the endpoint in the process)
decides how many calls are in flight and which goes next; a call the server
turns away (429, 503, a reset or an interrupted stream while others ran) waits
for a slot and is sent again without using up `--retries`, at most
MAX_RESENDS times. Rate-limit headers on every response pause the endpoint when
a quota runs out. Calls stream, so cancelling one closes its connection and the
server stops generating; a caller that needs no tokens as they come (`council
batch`) may ask for the whole answer at once (`stream=False`): the same limits,
retries and validation, no first-token limit and no time to first token.

`complete` is total: it returns a StreamResult or raises a CallError (or
CancelledError), whatever the server sent or a library raised. What comes back
is validated in `stream.py`; a streamed request answered with one plain JSON
completion is read as one, and a body that is neither (a captive portal's HTML)
fails at once with kind `not_api`.

Endpoints differ, so the client degrades instead of failing: if `stream_options`
or `response_format` is rejected it asks again without it (a refused JSON schema
is first asked one step lower: `formats.py`; a caller asking for JSON must read
replies leniently), and missing token usage is reported as None
(unknown), never as zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
import re
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlsplit

import httpx2
import openai

from council.config.endpoint_settings import EndpointSettings
from council.endpoint.body import chat_body
from council.endpoint.caps import CALL_CAPS, Caps, EventTooLarge, cap_events
from council.endpoint.describe import probe_slots, probe_window
from council.endpoint.errors import CallError, classify, one_line, rate_limit_wait, rejected_fields
from council.endpoint.formats import FormatLadder, field_unknown, says_form_refused
from council.endpoint.lean_transport import lean_mounts
from council.endpoint.limiter import HEAD, EndpointLimiter, Ticket, limiter_for
from council.endpoint.redact import remember_key
from council.endpoint.redirects import refuse_cross_origin
from council.endpoint.sse import EventReader
from council.endpoint.stream import Piece, ShapeError, StreamReader

if TYPE_CHECKING:
    from types import TracebackType

    from tenacity import RetryCallState

__all__ = [
    "DEADLINE_CUT",
    "CallError",
    "CallObserver",
    "ChatRequest",
    "EndpointClient",
    "StreamResult",
]

# Backoff between retries: full jitter over an exponentially growing window.
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 20.0
# A server's Retry-After is honoured, but one asking for more than this is
# treated as "not now": the call fails instead of sleeping for minutes.
MAX_RETRY_AFTER = 120.0
# Request bodies are small; a write that takes this long means a dead peer.
WRITE_TIMEOUT = 30.0
# Optional request fields that some endpoints reject with a 400: on such a
# rejection the field is dropped for the rest of the run and the call re-sent.
OPTIONAL_FIELDS = ("stream_options", "response_format")
# Idle connections kept for reuse (a council's next round); see _http_client.
KEEPALIVE = 16
# How long the end of a stream's body is waited for after [DONE] (as the SDK does).
DRAIN_TIMEOUT = 0.1
# Re-sends of one call after the server turned it away (not counted as retries).
MAX_RESENDS = 10
# The finish reason of an answer cut by council at the call's deadline (`--timeout`):
# what streamed until then is kept, marked as cut, as "length" marks max_tokens.
DEADLINE_CUT = "deadline"
# What a rejection is called where a limit change says why.
REJECTION_NAMES = {
    "rate_limited": "429 answer",
    "server_error": "503 answer",
    "connection": "connection reset",
    "truncated": "interrupted stream",
}


class ChatRequest(Protocol):
    """What the client reads from a call to send it (the engine's CallSpec is one).

    `temperature`/`max_tokens`/`response_format` None: not sent (the endpoint's default).
    `persona` and `round` go out as headers, so a proxy's logs can tell calls apart.
    """

    @property
    def persona(self) -> str: ...
    @property
    def round(self) -> int: ...
    @property
    def model(self) -> str: ...
    @property
    def messages(self) -> Sequence[Mapping[str, str]]: ...
    @property
    def temperature(self) -> float | None: ...
    @property
    def max_tokens(self) -> int | None: ...
    @property
    def response_format(self) -> Mapping[str, Any] | None: ...


@dataclass(frozen=True)
class StreamResult:
    """What a completed stream gave: the text, usage (None when not reported), timing.

    `ttft` is seconds from sending the successful attempt to its first token of any
    kind (reasoning or answer); `retries` counts the attempts before it.
    `reasoning` is what a reasoning model streamed apart from its answer (None:
    none). `finish_reason` is the server's ("stop", "length", "content_filter", ...);
    None only for a plain JSON completion that did not say. `queued` is the seconds
    the call waited for a slot; `resends` how often it was sent again after the
    server turned it away.
    """

    text: str
    tokens_in: int | None
    tokens_out: int | None
    ttft: float | None
    finish_reason: str | None
    retries: int
    reasoning: str | None = None
    queued: float = 0.0
    resends: int = 0
    cost_usd: float | None = None  # the server's own price of the call (usage.cost); None: none
    tokens_cached: int | None = None  # of tokens_in, from the server's prompt cache; None: unsaid


class CallObserver(Protocol):
    """What a call reports while it runs; the engine turns these into events.

    `on_start` is called once, when the call gets a slot: its deadline (and its
    latency, for whoever measures it) runs from then. `on_first_token` comes with
    the first token of an attempt, reasoning or answer; `on_reasoning` and
    `on_delta` bring the reasoning and the answer's text, never mixed.
    """

    def on_start(self) -> None: ...
    def on_first_token(self, ttft: float) -> None: ...
    def on_reasoning(self, text: str) -> None: ...
    def on_delta(self, text: str) -> None: ...
    def on_retry(self, attempt: int, error: CallError, wait: float) -> None: ...


class _CallState:
    """Bookkeeping shared by the attempts of one call."""

    def __init__(self, priority: int, stream: bool = True) -> None:
        self.stream = stream  # False: the whole answer in one JSON completion
        self.started_at: float | None = None
        self.deadline: float | None = None  # time.monotonic() by which the call must end
        self.attempts = 0
        self.priority = priority
        self.queued = 0.0  # seconds spent waiting for a slot
        self.resends = 0


class _StopPastDeadline:
    """Stop retrying when the next sleep would end past the call's deadline (a tenacity
    stop condition)."""

    def __init__(self, state: _CallState) -> None:
        self.state = state

    def __call__(self, retry_state: RetryCallState) -> bool:
        if self.state.deadline is None:
            return False
        return time.monotonic() + retry_state.upcoming_sleep >= self.state.deadline


def _backoff(retry_state: RetryCallState) -> float:
    """Full-jitter exponential backoff, but never sooner than the server's Retry-After."""
    window = min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** (retry_state.attempt_number - 1))
    wait = random.uniform(0, window)
    error = retry_state.outcome.exception() if retry_state.outcome else None
    if isinstance(error, CallError) and error.retry_after is not None:
        # A little jitter on top, so that calls told the same thing don't return in lockstep.
        wait = error.retry_after + random.uniform(0, min(1.0, 0.1 * error.retry_after))
    return wait


def _report_retry(observer: CallObserver, retry_state: RetryCallState) -> None:
    error = retry_state.outcome.exception() if retry_state.outcome else None
    if isinstance(error, CallError):
        observer.on_retry(retry_state.attempt_number, error, retry_state.upcoming_sleep)


def _retryable(exc: BaseException) -> bool:
    if not isinstance(exc, CallError) or not exc.retryable:
        return False
    return exc.retry_after is None or exc.retry_after <= MAX_RETRY_AFTER


def _http_client(base_url: str) -> Any:
    """The SDK's HTTP client, keeping fewer idle connections; for plain-http endpoints,
    without loading the CA store.

    Every response that ends makes the connection pool probe each idle connection's
    socket (one system call each), so with the SDK's 100 kept alive, a council of 100
    paid about 5,000 probes as its answers ended, most of its overhead after the last
    answer. KEEPALIVE idle connections are enough for a council to reuse between rounds.

    Loading the system's certificates costs 20-40 ms per run, the whole overhead
    budget of a small council against a local server. A plain-http endpoint never
    uses TLS, so it gets a bare context that verifies against no CA at all: should
    TLS somehow be used (a redirect to https), verification fails closed.

    A POST redirected to another origin fails (`redirects.py`): the question stays here.

    A plain-http endpoint's own origin is served by the lean transport
    (`lean_transport.py`, half the CPU per call of httpx2's) unless a proxy from the
    environment applies to it; anything else keeps httpx2's transport.
    """
    limits = httpx2.Limits(
        max_connections=openai.DEFAULT_CONNECTION_LIMITS.max_connections,
        max_keepalive_connections=KEEPALIVE,
    )
    hooks = {"response": [refuse_cross_origin, cap_events]}
    if urlsplit(base_url).scheme != "http":
        return openai.DefaultAsyncHttpxClient(limits=limits, event_hooks=hooks)
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, hostname checked, no CAs
    mounts = lean_mounts(base_url, limits)
    return openai.DefaultAsyncHttpxClient(
        verify=bare, limits=limits, event_hooks=hooks, mounts=mounts
    )


def build_client(
    settings: EndpointSettings, *, read_timeout: float | None = None, http_client: Any = None
) -> Any:
    """The `AsyncOpenAI` for an endpoint: its URL, key, headers and timeouts, no SDK retries.

    `read_timeout` None: the first-token timeout (a streamed call's wait for data).
    `http_client` None: a new one (see _http_client).
    """
    s = settings
    remember_key(s.api_key)  # masked in whatever a server says back (redact.py)
    return openai.AsyncOpenAI(
        api_key=s.key_for_client,
        base_url=s.base_url,
        max_retries=0,  # council's own retry policy is the only one
        timeout=openai.Timeout(
            s.timeout,
            connect=s.connect_timeout,
            read=s.first_token_timeout if read_timeout is None else read_timeout,
            write=WRITE_TIMEOUT,
        ),
        http_client=http_client or _http_client(s.base_url),
        default_headers=s.headers or None,
    )


def _error_from(response: Any) -> openai.APIStatusError:
    """A response of status 400 or more, read, as the SDK raises it (its body, its message)."""
    message = f"Error code: {response.status_code}"
    body: object = response.text.strip()
    try:
        body = json.loads(str(body))
    except ValueError:
        pass
    else:
        inner = body.get("error", body) if isinstance(body, dict) else None
        detail = inner.get("message") if isinstance(inner, dict) else None
        if isinstance(detail, str) and detail:
            message += f" - {detail}"
        body = inner if isinstance(body, dict) else body  # the SDK hands over the inner error
    return openai.APIStatusError(message, response=response, body=body)


class EndpointClient:
    """Streaming chat calls to one endpoint, with retries, deadlines and a concurrency cap.

    Usage:
        async with EndpointClient(settings, max_concurrency=8) as client:
            result = await client.complete(request, observer, priority=0)

    `stream=False` makes the client ask every call for its whole answer at once unless
    the call says otherwise (`council batch`: nobody reads its tokens as they come).
    `max_concurrency` is the ceiling of the endpoint's limiter (the process's one for
    this base URL and key variable). `complete` returns a StreamResult or raises
    CallError (with `.retries` set); a cancelled call raises CancelledError after
    closing its stream.
    """

    def __init__(
        self,
        settings: EndpointSettings,
        max_concurrency: int,
        limiter: EndpointLimiter | None = None,
        *,
        stream: bool = True,
    ) -> None:
        self.settings = settings
        self.max_concurrency = max_concurrency
        self.stream = stream  # how a call is asked unless it says itself (False: whole)
        self.limiter = limiter or limiter_for(
            settings.host,
            settings.base_url,
            settings.api_key_env,
            settings.model,
            max_concurrency,
            fixed=settings.local_model_path is not None,
        )
        self._dropped_fields: set[str] = set()  # rejected: never sent again this run
        self._accepted_fields: set[str] = set()  # sent in a call that answered
        self.formats = FormatLadder()  # how JSON is asked of this endpoint (formats.py)
        self._client: openai.AsyncOpenAI | None = None
        self._http: Any = None  # the SDK client's HTTP client: chat calls are sent on it
        self._chat_url: Any = None
        self._headers: dict[str, str] = {}
        self._key_sent = settings.api_key is not None  # else a placeholder goes: no key
        self._windows: dict[str, asyncio.Future[int | None]] = {}  # probed, per model
        self._slots: asyncio.Future[int | None] | None = None  # asked once, before any call

    async def stated_window(self, model: str) -> int | None:
        """The context window the server states for `model`; asked once per run, None if not."""
        assert self._client is not None, "use EndpointClient as an async context manager"
        if model not in self._windows:
            probe = probe_window(self._client, self.settings.base_url, model)
            self._windows[model] = asyncio.ensure_future(probe)
        return await asyncio.shield(self._windows[model])

    async def _ask_slots(self) -> None:
        """Before the first call: the slots the server states, unless an earlier run kept
        the answer (the limiter never sends more at once)."""
        limiter = self.limiter
        if limiter.fixed or limiter.learned.slots is not None:
            return
        assert self._client is not None, "use EndpointClient as an async context manager"
        if self._slots is None:
            self._slots = asyncio.ensure_future(probe_slots(self._client, self.settings.base_url))
        stated = await asyncio.shield(self._slots)
        if stated is not None and limiter.learned.slots is None:
            limiter.stated(stated)

    async def __aenter__(self) -> EndpointClient:
        self._http = _http_client(self.settings.base_url)
        client = self._client = build_client(self.settings, http_client=self._http)
        # What the SDK would send with a chat call, worked out once, not per call.
        base = client.base_url
        self._chat_url = base.copy_with(raw_path=base.raw_path + b"chat/completions")
        sent = {**client.auth_headers, **client.default_headers}
        self._headers = {k: v for k, v in sent.items() if isinstance(v, str)}  # Omit: not sent
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for probe in [*self._windows.values(), *([self._slots] if self._slots else [])]:
            probe.cancel()
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def list_models(self) -> list[str]:
        """The model ids the endpoint lists (GET /models); CallError when it cannot."""
        assert self._client is not None, "use EndpointClient as an async context manager"
        try:
            page = await self._client.models.list()
        except Exception as exc:
            raise classify(exc, self.settings.host, key_sent=self._key_sent) from None
        return sorted(model.id for model in page.data)

    async def complete(
        self,
        call: ChatRequest,
        observer: CallObserver,
        priority: int = 0,
        *,
        stream: bool | None = None,
    ) -> StreamResult:
        """One call; lower `priority` numbers take a free slot first (retries take the head).

        `stream=False` asks for the whole answer in one JSON completion (None: the
        request's own `stream` attribute if it has one, else the client's). Such a call
        has no first-token limit (only the connect timeout and the total deadline),
        its StreamResult has `ttft` None, and its observer gets no `on_first_token`:
        `on_reasoning` and `on_delta` come once each, with the whole text. What the
        server sends is validated as strictly as a stream, and limits, retries,
        re-sends and errors are those of a streamed call, but for an interrupted
        stream, which it cannot have.
        """
        if stream is None:
            stream = bool(getattr(call, "stream", self.stream))
        await self._ask_slots()
        state = _CallState(priority, stream)
        try:
            try:
                return await self._attempt(call, observer, state)
            except CallError as error:
                if not _retryable(error):
                    raise
                failed = error
            return await self._retried(call, observer, state, failed)
        except CallError as error:
            error.retries = max(0, state.attempts - 1 - state.resends)
            error.queued = state.queued
            raise

    async def _retried(
        self, call: ChatRequest, observer: CallObserver, state: _CallState, failed: CallError
    ) -> StreamResult:
        """The attempts after a first one that failed in a way worth retrying.

        Tenacity's loop, whose first attempt is that failure, raised again: its policy
        (attempts, backoff, Retry-After, the deadline, the retry reported) sees the
        attempts it would have seen running the first one itself. Only a call that
        needs a retry pays for tenacity: its import (some 10 ms before a run's first
        request) and its loop.
        """
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, stop_any

        retrying = AsyncRetrying(
            stop=stop_any(stop_after_attempt(self.settings.retries + 1), _StopPastDeadline(state)),
            wait=_backoff,
            retry=retry_if_exception(_retryable),
            before_sleep=lambda retry_state: _report_retry(observer, retry_state),
            reraise=True,
            sleep=asyncio.sleep,
        )
        first: CallError | None = failed
        async for attempt in retrying:
            with attempt:
                if first is not None:
                    error, first = first, None
                    raise error
                return await self._attempt(call, observer, state)
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _optional_fields(self, call: ChatRequest, stream: bool = True) -> set[str]:
        fields = set(OPTIONAL_FIELDS) - self._dropped_fields
        if call.response_format is None:
            fields.discard("response_format")
        if not stream:
            fields.discard("stream_options")  # a whole completion carries its usage anyway
        return fields

    async def _attempt(
        self, call: ChatRequest, observer: CallObserver, state: _CallState
    ) -> StreamResult:
        """One attempt, as a StreamResult or a CallError: nothing else leaves it.

        An attempt the server turns away is sent again here, after a slot is free
        again: a rejection says the endpoint is full, not that the call is wrong.
        """
        # A retried call waits at the head of the queue: its deadline is running.
        priority = state.priority if state.attempts == 0 else HEAD
        reserved: Ticket | None = None
        while True:
            ticket = await self.limiter.wait(reserved or self.limiter.reserve(priority))
            reserved = None
            state.queued += ticket.queued
            try:
                result = await self._send(call, observer, state, ticket)
            except CallError as error:
                reason = self._rejection(error)
                if reason is None or state.resends >= MAX_RESENDS:
                    self.limiter.release_quietly(ticket)
                    raise
                state.resends += 1
                priority = HEAD
                wait = 0.0
                if error.retry_after is not None:
                    wait = error.retry_after  # the whole endpoint waits, not just this call
                    self.limiter.pause(wait)
                elif error.kind in ("rate_limited", "server_error"):
                    # Turned away without being told when to come back: back off
                    # (this call only), so that a quota is not hammered.
                    window = BACKOFF_INITIAL * 2 ** (state.resends - 1)
                    wait = random.uniform(0.01, min(BACKOFF_MAX, window))
                if not wait or error.retry_after is not None:
                    # First in line for the next slot, before this one goes to anyone else.
                    reserved = self.limiter.reserve(HEAD)
                self.limiter.release(ticket, rejected=True, reason=reason)
                observer.on_retry(state.attempts, error, wait)
                if reserved is None:
                    await asyncio.sleep(wait)
                continue
            except BaseException:
                self.limiter.release_quietly(ticket)
                raise
            self.limiter.release(ticket)
            return dataclasses.replace(result, queued=state.queued, resends=state.resends)

    def _rejection(self, error: CallError) -> str | None:
        """What the server turning a call away is called; None when the error is no rejection.

        A reset or an interrupted stream is one only while other calls were in flight:
        alone, it is an error like any other.
        """
        if error.retry_after is not None and error.retry_after > MAX_RETRY_AFTER:
            return None  # "not now": fails as an error
        if error.kind == "rate_limited":
            return REJECTION_NAMES["rate_limited"]
        if error.kind == "server_error" and error.status == 503:
            return REJECTION_NAMES["server_error"]
        if error.kind in ("connection", "truncated") and self.limiter.in_flight > 1:
            return REJECTION_NAMES[error.kind]
        return None

    async def _send(
        self, call: ChatRequest, observer: CallObserver, state: _CallState, ticket: Ticket
    ) -> StreamResult:
        now = time.monotonic()
        if state.started_at is None:
            # The deadline runs from the moment the call gets a slot, so
            # calls queued behind the limit are not punished.
            state.started_at = now
            state.deadline = now + self.settings.timeout
            observer.on_start()
        elif state.deadline is not None:
            state.deadline += ticket.queued  # nor is a re-sent or retried call
        state.attempts += 1
        if state.deadline is not None and now >= state.deadline:
            raise self._deadline_error()
        # Optional fields left out of this attempt only: a 400 saying that some
        # field is unknown, without naming it, may be about any of those not yet
        # seen working; asked once without them, they stay dropped if it works.
        left_out: set[str] = set()
        while True:
            fields = self._optional_fields(call, state.stream) - left_out
            asked = self.formats.effective(call.response_format)
            try:
                result = await self._stream(call, observer, state, fields, ticket)
            except openai.APIStatusError as exc:
                self._read_limits(exc.response.headers if exc.response is not None else None)
                refused = says_form_refused(exc.status_code, exc.body, asked)
                if "response_format" in fields and refused and self.formats.refused(asked):
                    continue  # a schema this server words its refusal of: one step lower
                rejected = rejected_fields(exc, fields)
                unproven = fields - self._accepted_fields
                if rejected:
                    # A refused JSON schema is asked one step lower (formats.py) before
                    # the field goes; anything else is dropped for the rest of the run.
                    stepped = "response_format" in rejected and not field_unknown(exc.body)
                    if stepped and self.formats.refused(asked):
                        rejected.discard("response_format")
                    self._dropped_fields.update(rejected)
                    continue
                if rejected is None and unproven and not left_out:
                    left_out = unproven  # once: without them, does it work?
                    continue
                raise classify(exc, self.settings.host, key_sent=self._key_sent) from None
            except (openai.APIError, CallError) as exc:
                raise classify(exc, self.settings.host, key_sent=self._key_sent) from None
            except Exception as exc:  # transport errors the SDK did not wrap, and bugs
                raise classify(exc, self.settings.host) from exc
            self._accepted_fields.update(fields)
            self._dropped_fields.update(left_out)  # it worked without them
            return result

    def _read_limits(self, headers: Any) -> None:
        """An exhausted quota in the rate-limit headers: new calls wait for its reset."""
        wait = rate_limit_wait(headers)
        if wait is not None and wait <= MAX_RETRY_AFTER:
            self.limiter.pause(wait)

    def _deadline_error(self) -> CallError:
        return CallError(
            "timeout", f"no complete answer within the {self.settings.timeout:g}s deadline"
        )

    def _body(self, call: ChatRequest, fields: set[str], stream: bool = True) -> dict[str, Any]:
        body = chat_body(call, fields, stream=stream)
        if "response_format" in body:
            asked = self.formats.effective(call.response_format)
            if asked is None:
                del body["response_format"]
            else:
                body["response_format"] = asked
        if not stream:
            body["stream"] = False  # said, not implied: some servers stream by default
        return body

    def _protocol_error(self, what: str) -> CallError:
        return CallError(
            "protocol",
            f"{self.settings.host} broke the chat completion format: {what}",
            retryable=True,
        )

    async def _stream(
        self,
        call: ChatRequest,
        observer: CallObserver,
        state: _CallState,
        fields: set[str],
        ticket: Ticket,
    ) -> StreamResult:
        if self._client is None:
            raise RuntimeError("use EndpointClient as an async context manager")
        if state.deadline is None:
            raise RuntimeError("an attempt must start before it streams")
        body = self._body(call, fields, state.stream)
        # Lets proxies' logs (and council's fake server) tell the personas apart.
        # Percent-encoded: a member of a council of models is "critic · gpt-4o", and a
        # header is ASCII.
        persona = quote(call.persona, safe=" /@:+,()")
        headers = {"X-Council-Persona": persona, "X-Council-Round": str(call.round)}

        host = self.settings.host
        loop = asyncio.get_running_loop()
        sent_at = time.monotonic()
        total_at = loop.time() + (state.deadline - sent_at)
        first_token_at = min(total_at, loop.time() + self.settings.first_token_timeout)
        timeout = self._client.timeout
        if not state.stream:
            # Nothing comes before the whole answer: no first-token limit, in this
            # process or in the SDK's read timeout (which is the first-token limit).
            first_token_at = total_at
            s = self.settings
            wait = max(0.001, state.deadline - sent_at)
            timeout = openai.Timeout(
                wait, connect=s.connect_timeout, read=wait, write=WRITE_TIMEOUT
            )
        reader = StreamReader()
        caps = Caps.for_max_tokens(call.max_tokens)
        ttft: float | None = None
        whole = False  # a plain JSON completion: complete even without a finish reason

        def report(piece: Piece) -> None:
            nonlocal ttft
            if ttft is None and state.stream and (piece.text or piece.reasoning):
                # A token of reasoning is a token: the model is working, the
                # connection is alive, and the first-token limit has done its job.
                ttft = time.monotonic() - sent_at
                first_token_limit.reschedule(None)
                observer.on_first_token(ttft)
            if piece.reasoning:
                observer.on_reasoning(piece.reasoning)
            if piece.text:
                observer.on_delta(piece.text)

        capping = CALL_CAPS.set(caps)  # read by cap_events, on this task, for this response
        try:
            async with asyncio.timeout_at(total_at) as total_limit:
                async with asyncio.timeout_at(first_token_at) as first_token_limit:
                    response = await self._post(body, headers, timeout)
                    try:
                        self._read_limits(response.headers)  # before the next call goes
                        media = _media_type(response.headers.get("content-type"))
                        if media == "application/json" or media.endswith("+json"):
                            whole = True  # the server ignored stream: true
                            report(await self._read_completion(response, reader, caps))
                        elif media not in ("", "text/event-stream"):
                            raise CallError(
                                "not_api",
                                f"{self.settings.host} did not answer like an "
                                f"OpenAI-compatible API: {media}",
                            )
                        else:
                            await self._read_events(response, reader, report, caps)
                    finally:
                        await response.aclose()
                    report(reader.end())
        except TimeoutError:
            if total_limit.expired() and state.stream and reader.text.strip():
                # Text was still coming at the deadline: it is the answer, marked as cut
                # there (as max_tokens marks one), rather than lost with the call.
                report(reader.end())
                return self._result(reader, state, ttft, DEADLINE_CUT)
            if total_limit.expired() or not state.stream:
                raise self._deadline_error() from None
            raise CallError(
                "first_token_timeout",
                f"no first token from {self.settings.host} within "
                f"{self.settings.first_token_timeout:g}s",
                retryable=True,
            ) from None
        except ShapeError as exc:
            raise self._protocol_error(str(exc)) from None
        except EventTooLarge:
            raise CallError("too_large", caps.too_large(host, "event")) from None
        finally:
            CALL_CAPS.reset(capping)
        if reader.finish_reason is None and not whole:
            raise CallError(
                "truncated",
                f"{self.settings.host} ended the stream before the answer was complete",
                retryable=True,
            )
        if not reader.text.strip():
            raise self._empty_error(reader)
        return self._result(reader, state, ttft, reader.finish_reason)

    def _result(
        self, reader: StreamReader, state: _CallState, ttft: float | None, finish: str | None
    ) -> StreamResult:
        return StreamResult(
            text=reader.text,
            tokens_in=reader.tokens_in,
            tokens_out=reader.tokens_out,
            ttft=ttft,
            finish_reason=finish,
            retries=state.attempts - 1 - state.resends,  # re-sends are not retries
            reasoning=reader.reasoning or None,
            cost_usd=reader.cost_usd,
            tokens_cached=reader.tokens_cached,
        )

    async def _post(self, body: dict[str, Any], headers: dict[str, str], timeout: Any) -> Any:
        """Send a chat request on the SDK client's own HTTP client; its response, streaming.

        What the SDK's `post` sends (its URL, headers and key, its JSON) and raises (its
        errors for a status of 400 or more, a timeout, a connection that failed), without
        its per-request machinery (options models, copies, hooks): about 1,500 function
        calls, some 0.5 ms of CPU, per call, which a council of 100 pays before its last
        request leaves.
        """
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        request = self._http.build_request(
            "POST",
            self._chat_url,
            content=content.encode(),
            headers={**self._headers, **headers},
            timeout=timeout,
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx2.TimeoutException as exc:
            raise openai.APITimeoutError(request=request) from exc
        except (httpx2.RequestError, OSError) as exc:
            raise openai.APIConnectionError(request=request) from exc
        if response.status_code >= 400:
            try:
                await response.aread()
            except (httpx2.RequestError, OSError) as exc:
                raise openai.APIConnectionError(request=request) from exc
            finally:
                await response.aclose()
            raise _error_from(response)
        return response

    async def _read_events(
        self,
        response: Any,
        reader: StreamReader,
        report: Callable[[Piece], None],
        caps: Caps,
    ) -> None:
        """A stream's events, each chunk validated and reported as it comes.

        Read from the response's bytes (`sse.py`), not through the SDK's stream class:
        the same events, errors and exceptions, at half the CPU per call.
        """
        events = EventReader(response.request)
        body = response.aiter_bytes()
        try:
            async for data in body:
                try:
                    chunks = events.feed(data)
                except ValueError as exc:  # not JSON, or not UTF-8
                    raise self._protocol_error(f"an event is not JSON ({exc})") from None
                for chunk in chunks:
                    report(reader.feed(chunk))
                if reader.size > caps.answer_chars:  # an endless answer
                    raise CallError("too_large", caps.too_large(self.settings.host, "answer"))
                if events.done:
                    break
            if events.done:
                # The rest of the body (its last chunk) is read, so that the connection
                # is kept for the next call; a server that sends more after [DONE] is
                # not waited for.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(DRAIN_TIMEOUT):
                        async for _ in body:
                            pass
        except httpx2.TimeoutException as exc:  # as the SDK's stream class raises them
            raise openai.APITimeoutError(request=response.request) from exc
        except (httpx2.RequestError, OSError) as exc:
            raise openai.APIConnectionError(request=response.request) from exc
        finally:
            await body.aclose()

    async def _read_completion(self, response: Any, reader: StreamReader, caps: Caps) -> Piece:
        """A whole JSON completion (or a JSON error) where a stream was asked for."""
        data = bytearray()
        async for part in response.aiter_bytes():
            data += part
            if len(data) > caps.body_bytes:
                raise CallError("too_large", caps.too_large(self.settings.host, "answer body"))
        try:
            body = json.loads(data)
        except ValueError:
            raise self._protocol_error("its JSON answer is not valid JSON") from None
        error = body.get("error") if isinstance(body, dict) else None
        if error:
            detail = error.get("message") if isinstance(error, dict) else error
            detail = one_line(str(detail), 300) if detail else "no detail"
            raise CallError(
                "server_error",
                f"{self.settings.host} answered with an error: {detail!r}",
                retryable=True,
            )
        return reader.feed_completion(body)

    def _empty_error(self, reader: StreamReader) -> CallError:
        """An answer with no text: worth another try unless a limit or a filter stopped it."""
        host, reason = self.settings.host, reader.finish_reason
        thought = f" (after {len(reader.reasoning):,} characters of reasoning)"
        thought = thought if reader.reasoning else ""
        if reason == "length":
            return CallError("empty", f"{host} reached max_tokens before any answer{thought}")
        if reason == "content_filter":
            return CallError("empty", f"{host}'s content filter stopped the answer{thought}")
        return CallError("empty", f"{host} sent an empty answer{thought}", retryable=True)


def _media_type(content_type: str | None) -> str:
    """A Content-Type's media type, lower case, and only the characters one may have."""
    media = (content_type or "").split(";")[0].strip().lower()
    return re.sub(r"[^a-z0-9!#$&^_.+/-]", "", media)[:80]
