"""Talks to the OpenAI-compatible endpoint; the only module that imports openai.

One `AsyncOpenAI` client per endpoint per run, with the SDK's own retries off:
council retries itself (tenacity: exponential backoff with full jitter, at least
`Retry-After` when the server sends one) on 429, 5xx, connection errors and
timeouts, and never on other 4xx. Every call has three limits: a connect
timeout, a first-token timeout (per attempt) and a total deadline (the whole
call, retries included). A semaphore caps calls in flight. Calls always stream,
so cancelling one closes its connection and the server stops generating.

Endpoints differ, so the client degrades instead of failing: if `stream_options`
or `response_format` is rejected it asks again without it (a caller asking for
JSON must read replies leniently), and missing token usage is reported as None
(unknown), never as zero.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import openai
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base

from council.config.endpoint_settings import EndpointSettings
from council.endpoint.errors import CallError, classify

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["CallError", "CallObserver", "ChatRequest", "EndpointClient", "StreamResult"]

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

    `ttft` is seconds from sending the successful attempt to its first token;
    `retries` counts the attempts before it.
    """

    text: str
    tokens_in: int | None
    tokens_out: int | None
    ttft: float | None
    finish_reason: str
    retries: int


class CallObserver(Protocol):
    """What a call reports while it runs; the engine turns these into events.

    `on_start` is called once, when the call gets a slot: its deadline (and its
    latency, for whoever measures it) runs from then.
    """

    def on_start(self) -> None: ...
    def on_first_token(self, ttft: float) -> None: ...
    def on_delta(self, text: str) -> None: ...
    def on_retry(self, attempt: int, error: CallError, wait: float) -> None: ...


class _CallState:
    """Bookkeeping shared by the attempts of one call."""

    def __init__(self) -> None:
        self.started_at: float | None = None
        self.deadline: float | None = None  # time.monotonic() by which the call must end
        self.attempts = 0


class _StopPastDeadline(stop_base):
    """Stop retrying when the next sleep would end past the call's deadline."""

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
    """The SDK's HTTP client; for plain-http endpoints, without loading the CA store.

    Loading the system's certificates costs 20-40 ms per run, the whole overhead
    budget of a small council against a local server. A plain-http endpoint never
    uses TLS, so it gets a bare context that verifies against no CA at all: should
    TLS somehow be used (a redirect to https), verification fails closed.
    """
    if urlsplit(base_url).scheme != "http":
        return None
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, hostname checked, no CAs
    return openai.DefaultAsyncHttpxClient(verify=bare)


class EndpointClient:
    """Streaming chat calls to one endpoint, with retries, deadlines and a concurrency cap.

    Usage:
        async with EndpointClient(settings, max_concurrency=8) as client:
            result = await client.complete(request, observer)

    `complete` returns a StreamResult or raises CallError (with `.retries` set); a
    cancelled call raises CancelledError after closing its stream.
    """

    def __init__(self, settings: EndpointSettings, max_concurrency: int) -> None:
        self.settings = settings
        self.max_concurrency = max_concurrency
        self._slots = asyncio.Semaphore(max_concurrency)
        self._dropped_fields: set[str] = set()
        self._client: openai.AsyncOpenAI | None = None

    async def __aenter__(self) -> EndpointClient:
        s = self.settings
        self._client = openai.AsyncOpenAI(
            api_key=s.key_for_client,
            base_url=s.base_url,
            max_retries=0,  # council's own retry policy is the only one
            timeout=openai.Timeout(
                s.timeout,
                connect=s.connect_timeout,
                read=s.first_token_timeout,
                write=WRITE_TIMEOUT,
            ),
            http_client=_http_client(s.base_url),
            default_headers=s.headers or None,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def list_models(self) -> list[str]:
        """The model ids the endpoint lists (GET /models); CallError when it cannot."""
        assert self._client is not None, "use EndpointClient as an async context manager"
        try:
            page = await self._client.models.list()
        except Exception as exc:
            raise classify(exc, self.settings.host) from None
        return sorted(model.id for model in page.data)

    async def complete(self, call: ChatRequest, observer: CallObserver) -> StreamResult:
        state = _CallState()
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.retries + 1) | _StopPastDeadline(state),
            wait=_backoff,
            retry=retry_if_exception(_retryable),
            before_sleep=lambda retry_state: _report_retry(observer, retry_state),
            reraise=True,
            sleep=asyncio.sleep,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(call, observer, state)
        except CallError as error:
            error.retries = max(0, state.attempts - 1)
            raise
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _attempt(
        self, call: ChatRequest, observer: CallObserver, state: _CallState
    ) -> StreamResult:
        async with self._slots:
            now = time.monotonic()
            if state.started_at is None:
                # The deadline runs from the moment the call gets a slot, so
                # calls queued behind the concurrency cap are not punished.
                state.started_at = now
                state.deadline = now + self.settings.timeout
                observer.on_start()
            state.attempts += 1
            assert state.deadline is not None
            if now >= state.deadline:
                raise self._deadline_error()
            while True:
                sent_optional = set(OPTIONAL_FIELDS) - self._dropped_fields
                if call.response_format is None:
                    sent_optional.discard("response_format")
                try:
                    return await self._stream(call, observer, state)
                except openai.BadRequestError as exc:
                    rejected = [name for name in sent_optional if name in str(exc)]
                    if not rejected:
                        raise classify(exc, self.settings.host) from None
                    # Drop the field for the rest of the run and ask again at once.
                    self._dropped_fields.update(rejected)
                except (openai.APIError, CallError) as exc:
                    raise classify(exc, self.settings.host) from None
                except Exception as exc:  # transport errors the SDK did not wrap
                    raise classify(exc, self.settings.host) from exc

    def _deadline_error(self) -> CallError:
        return CallError(
            "timeout", f"no complete answer within the {self.settings.timeout:g}s deadline"
        )

    async def _stream(
        self, call: ChatRequest, observer: CallObserver, state: _CallState
    ) -> StreamResult:
        assert self._client is not None, "use EndpointClient as an async context manager"
        assert state.deadline is not None and state.started_at is not None
        body: dict[str, Any] = {
            "model": call.model,
            "messages": list(call.messages),
            "stream": True,
        }
        if call.temperature is not None:
            body["temperature"] = call.temperature
        if call.max_tokens is not None:
            body["max_tokens"] = call.max_tokens
        if "stream_options" not in self._dropped_fields:
            body["stream_options"] = {"include_usage": True}
        if call.response_format is not None and "response_format" not in self._dropped_fields:
            body["response_format"] = call.response_format
        # Lets proxies' logs (and council's fake server) tell the personas apart.
        headers = {"X-Council-Persona": call.persona, "X-Council-Round": str(call.round)}

        loop = asyncio.get_running_loop()
        sent_at = time.monotonic()
        total_at = loop.time() + (state.deadline - sent_at)
        first_token_at = min(total_at, loop.time() + self.settings.first_token_timeout)
        parts: list[str] = []
        usage: Any = None
        finish_reason: str | None = None
        ttft: float | None = None
        try:
            async with asyncio.timeout_at(total_at) as total_limit:
                async with asyncio.timeout_at(first_token_at) as first_token_limit:
                    # The SDK's low-level post with plain-dict chunks: the body is
                    # already plain JSON, and skipping the typed request transform and
                    # per-chunk pydantic models saves about 0.6 ms of CPU per call,
                    # which is most of council's overhead with 100 personas.
                    stream = await self._client.post(
                        "/chat/completions",
                        body=body,
                        cast_to=object,
                        options={"headers": headers},
                        stream=True,
                        stream_cls=openai.AsyncStream[dict[str, Any]],
                    )
                    async with stream:
                        async for chunk in stream:
                            if chunk.get("usage"):
                                usage = chunk["usage"]
                            choices = chunk.get("choices") or ()
                            if not choices:
                                continue
                            choice = choices[0]
                            content = (choice.get("delta") or {}).get("content")
                            if content:
                                if ttft is None:
                                    ttft = time.monotonic() - sent_at
                                    first_token_limit.reschedule(None)
                                    observer.on_first_token(ttft)
                                parts.append(content)
                                observer.on_delta(content)
                            if choice.get("finish_reason"):
                                finish_reason = choice["finish_reason"]
        except TimeoutError:
            if total_limit.expired():
                raise self._deadline_error() from None
            raise CallError(
                "first_token_timeout",
                f"no first token from {self.settings.host} within "
                f"{self.settings.first_token_timeout:g}s",
                retryable=True,
            ) from None
        if finish_reason is None:
            raise CallError(
                "truncated",
                f"{self.settings.host} ended the stream before the answer was complete",
                retryable=True,
            )
        usage = usage if isinstance(usage, dict) else {}
        tokens_in = usage.get("prompt_tokens")
        tokens_out = usage.get("completion_tokens")
        return StreamResult(
            text="".join(parts),
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            ttft=ttft,
            finish_reason=finish_reason,
            retries=state.attempts - 1,
        )
