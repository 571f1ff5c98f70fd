"""What can go wrong with a call: `CallError` with its kind, and turning SDK errors into one.

`classify` maps whatever the SDK or the transport raised to a kind the engine and
the user can act on, and says which kinds are worth a retry (429, 5xx, connection
errors, timeouts, a broken stream; never other 4xx), honouring the server's
`Retry-After` when it is a usable number. Anything else is a bug: kind `internal`,
not retried, with the exception's type in the message. `rejected_fields` reads
from an error's structured fields which optional request fields a server refused.
"""

from __future__ import annotations

import contextlib
import email.utils
import math
import re
import time
from collections.abc import Set
from typing import Any

import httpx2 as httpx  # the SDK's HTTP client from openai 3 on (the floor)
import openai

from council.endpoint.redact import redact
from council.errors import ErrorKind

__all__ = [
    "CallError",
    "classify",
    "context_numbers",
    "internal_error",
    "is_context_error",
    "one_line",
    "parse_duration",
    "parse_retry_after",
    "rate_limit_wait",
    "rejected_fields",
]


class CallError(Exception):
    """A call that failed for good (after any retries), or one attempt that failed.

    `kind` is an `ErrorKind` (`council.errors`; a str, its value): rate_limited,
    server_error, connection, timeout, first_token_timeout, truncated, protocol (a
    server that broke the format: a malformed or wrongly shaped chunk), not_api (a
    body that is no API answer at all, e.g. a captive portal's HTML), empty (an
    answer with no text), too_large (an answer, event or body over the call's size
    cap: `caps.py`), auth, not_found, context_length (the prompt and answer do not
    fit the model's context window; `window` and `prompt_tokens` hold the server's
    numbers where it gave them), bad_request, http_error, redirect (the server sent
    the call to another host, which council refuses), internal (a bug in council or
    a library).

    The message never holds a key this process sent (`redact.py`): servers quote them.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        message = redact(message)
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.retries = 0
        self.window: int | None = None  # context_length: the server's window, in tokens
        self.prompt_tokens: int | None = None  # context_length: the prompt's size it counted
        self.queued = 0.0  # seconds the call waited for a slot


def _seconds(value: str) -> float | None:
    """A finite, non-negative number of seconds; None for any other number (nan, inf, -3)."""
    seconds = float(value)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date).

    None when there is none, or when it is garbage (`nan`, `inf`, negative, unparsable):
    the normal jittered backoff then applies, never an immediate retry.
    """
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        with contextlib.suppress(ValueError):
            milliseconds = _seconds(value)
            if milliseconds is not None:
                return milliseconds / 1000
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return _seconds(value)
    except ValueError:
        pass  # not a number: an HTTP date, or garbage
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return max(0.0, when.timestamp() - time.time())  # a date in the past means now


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(value: str) -> float | None:
    """Seconds from a reset header: `1s`, `6m0s`, `20ms`, `1h2m3.5s`, a plain number of
    seconds, a Unix time (a number far in the future) or an RFC 3339 / HTTP date.
    None when it is none of those."""
    text = value.strip().lower()
    if not text:
        return None
    with contextlib.suppress(ValueError):
        number = _seconds(text)
        if number is None:
            return None
        # X-RateLimit-Reset is sometimes a Unix time rather than a delay.
        return max(0.0, number - time.time()) if number > 1e9 else number
    if _DURATION_PART.fullmatch(text) or re.fullmatch(r"(?:\d+(?:\.\d+)?(?:ms|h|m|s))+", text):
        scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        return sum(float(n) * scale[unit] for n, unit in _DURATION_PART.findall(text))
    with contextlib.suppress(ValueError):
        from datetime import datetime

        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        return max(0.0, when.timestamp() - time.time())
    with contextlib.suppress(TypeError, ValueError, OverflowError):
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    return None


# (remaining, reset) header pairs a server may announce its quota with.
RATE_LIMIT_HEADERS = (
    ("x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
    ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
    ("x-ratelimit-remaining", "x-ratelimit-reset"),
    ("anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-requests-reset"),
    ("anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset"),
    ("anthropic-ratelimit-input-tokens-remaining", "anthropic-ratelimit-input-tokens-reset"),
    ("anthropic-ratelimit-output-tokens-remaining", "anthropic-ratelimit-output-tokens-reset"),
)


def rate_limit_wait(headers: Any) -> float | None:
    """Seconds until an exhausted quota resets, from rate-limit headers; None when none is.

    A remaining count of zero (requests or tokens, in the OpenAI, `X-RateLimit-*` or
    Anthropic form) with a readable reset: new calls wait that long instead of
    provoking a 429. Garbage is ignored, never obeyed.
    """
    if headers is None:
        return None
    wait: float | None = None
    for remaining_name, reset_name in RATE_LIMIT_HEADERS:
        remaining = headers.get(remaining_name)
        reset = headers.get(reset_name)
        if remaining is None or reset is None:
            continue
        try:
            if float(remaining) > 0:
                continue
        except ValueError:
            continue
        seconds = parse_duration(reset)
        if seconds is not None:
            wait = max(wait or 0.0, seconds)
    return wait


def one_line(text: str, limit: int) -> str:
    """A server's text on one line, cut at `limit` characters, keys masked before the cut
    (so that no part of one is left)."""
    return " ".join(redact(text).split())[:limit]


def _status_error(exc: openai.APIStatusError, host: str, key_sent: bool) -> CallError:
    status = exc.status_code
    body = exc.body
    detail = body.get("message") if isinstance(body, dict) else None
    if not isinstance(detail, str) or not detail:
        detail = exc.message
    detail = one_line(detail, 300)
    headers = exc.response.headers if exc.response is not None else None
    if status in (401, 403):
        if not key_sent:  # "refused the API key" would blame a key nobody sent
            said = f"{host} asked for an API key ({status}) and none was sent: {detail}"
            return CallError(ErrorKind.AUTH, said, status=status)
        return CallError(
            ErrorKind.AUTH, f"{host} refused the API key ({status}): {detail}", status=status
        )
    if status == 501:
        # A plain web server (python -m http.server, nginx's default site) cannot POST:
        # no later try will change that, so the call is not retried, nor told to be.
        return CallError(
            ErrorKind.HTTP_ERROR,
            f"{host} answered 501 (not implemented): {detail}; is this URL an "
            "OpenAI-compatible API (it ends in /v1 for most servers)?",
            status=status,
        )
    if status == 404:
        return CallError(ErrorKind.NOT_FOUND, f"{host} answered 404: {detail}", status=status)
    if status == 429:
        return CallError(
            ErrorKind.RATE_LIMITED,
            f"rate limited by {host} (429): {detail}",
            status=status,
            retryable=True,
            retry_after=parse_retry_after(headers),
        )
    if status >= 500 or status in (408, 409):
        return CallError(
            ErrorKind.SERVER_ERROR,
            f"{host} answered {status}: {detail}",
            status=status,
            retryable=True,
            retry_after=parse_retry_after(headers),
        )
    if status in (400, 413, 422) and is_context_error(detail):
        error = CallError(
            ErrorKind.CONTEXT_LENGTH,
            f"{host} answered {status}: the prompt is too long: {detail}",
            status=status,
        )
        error.window, error.prompt_tokens = context_numbers(detail)
        return error
    kind = ErrorKind.BAD_REQUEST if status in (400, 422) else ErrorKind.HTTP_ERROR
    return CallError(kind, f"{host} answered {status}: {detail}", status=status)


# How servers say a prompt does not fit (checked on the one-line message):
# OpenAI and vLLM: "This model's maximum context length is N tokens. However, your
#   messages resulted in M tokens" / "... you requested M tokens (P in the messages,
#   C in the completion)";
# llama.cpp: "the request exceeds the available context size, try increasing it",
#   or "request (M tokens) exceeds the available context size (N tokens)".
_CONTEXT_SAYS = re.compile(
    r"maximum context length|exceeds the available context size|context_length_exceeded"
    r"|context window|too many tokens",
    re.IGNORECASE,
)
_WINDOW = re.compile(
    r"maximum context length is (\d+)|available context size \((\d+) tokens?\)", re.IGNORECASE
)
_PROMPT = re.compile(
    r"\((\d+) in the messages|messages resulted in (\d+) tokens|request \((\d+) tokens?\)",
    re.IGNORECASE,
)


def is_context_error(message: str) -> bool:
    """Whether a 400's message says the prompt does not fit the context window."""
    return bool(_CONTEXT_SAYS.search(message))


def context_numbers(message: str) -> tuple[int | None, int | None]:
    """(window, prompt tokens) as a context error states them; None where it does not."""

    def first(pattern: re.Pattern[str]) -> int | None:
        match = pattern.search(message)
        if match is None:
            return None
        value = next(group for group in match.groups() if group is not None)
        return int(value) if 0 < int(value) < 100_000_000 else None

    return first(_WINDOW), first(_PROMPT)


def _top_level(name: str) -> str:
    """The request field a path names: response_format.type -> response_format."""
    return re.split(r"[.\[]", name, maxsplit=1)[0]


def _named_fields(body: object) -> set[str]:
    """The request fields an error body names in its structured fields.

    OpenAI and its proxies: `{"param": "stream_options", "code": "unknown_parameter"}`
    (the SDK hands over the inner `error` object); FastAPI/pydantic servers (422):
    `{"detail": [{"loc": ["body", "stream_options"], "type": "extra_forbidden"}]}`.
    """
    if not isinstance(body, dict):
        return set()
    inner = body.get("error")
    fields = inner if isinstance(inner, dict) else body
    names: set[str] = set()
    param = fields.get("param")
    if isinstance(param, str) and param:
        names.add(_top_level(param))
    detail = body.get("detail")
    for item in detail if isinstance(detail, list) else ():
        location = item.get("loc") if isinstance(item, dict) else None
        if isinstance(location, list):
            path = [part for part in location if isinstance(part, str)]
            if path and path[0] == "body":
                path = path[1:]
            if path:
                names.add(_top_level(path[0]))
    return names


# Error codes (or types) that say "a field you sent is unknown here" without naming it.
UNKNOWN_FIELD_CODES = frozenset(
    {
        "unknown_parameter",
        "unsupported_parameter",
        "unrecognized_parameter",
        "unrecognized_request_argument",
        "extra_forbidden",
    }
)


def _says_unknown_field(body: object) -> bool:
    if not isinstance(body, dict):
        return False
    inner = body.get("error")
    fields = inner if isinstance(inner, dict) else body
    return any(
        isinstance(value, str) and value.lower() in UNKNOWN_FIELD_CODES
        for value in (fields.get("code"), fields.get("type"))
    )


def rejected_fields(exc: openai.APIStatusError, sent: Set[str]) -> set[str] | None:
    """Which of the optional fields `sent` a 400/422 refused, from its structured fields.

    The fields the error names (`param`, a pydantic `loc`) among `sent`; None when
    its `code` or `type` says a field is unknown but not which, so any of them may
    be. Never read from the message text: a message that merely mentions
    `response_format` (a context error quoting the request, say) drops nothing.
    """
    if exc.status_code not in (400, 422):
        return set()
    named = _named_fields(exc.body)
    if named:
        return {name for name in sent if name in named}
    return None if _says_unknown_field(exc.body) else set()


def internal_error(exc: BaseException) -> CallError:
    """A bug (in council or a library) during a call: reported, not retried."""
    detail = one_line(str(exc), 200)
    message = f"internal error ({type(exc).__name__}{': ' + detail if detail else ''})"
    return CallError(ErrorKind.INTERNAL, message + "; please report it")


def classify(exc: BaseException, host: str, *, key_sent: bool = True) -> CallError:
    """Turn whatever the SDK or transport raised into a CallError with a kind.

    `key_sent` False: the request carried no key (a server on this machine given
    none), so a 401 says the server wants one rather than that it refused it.
    """
    if isinstance(exc, CallError):
        return exc
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc, host, key_sent)
    if isinstance(exc, openai.APITimeoutError):
        return CallError(
            ErrorKind.TIMEOUT, f"{host} stopped responding (read timeout)", retryable=True
        )
    if isinstance(exc, openai.APIConnectionError) and isinstance(exc.__cause__, CallError):
        return exc.__cause__  # raised by an HTTP client hook (a refused redirect)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        reason = f": {cause}" if cause and str(cause) else ""
        return CallError(ErrorKind.CONNECTION, f"cannot connect to {host}{reason}", retryable=True)
    if isinstance(exc, openai.APIError):
        # An error event inside a stream: the server failed mid-answer.
        return CallError(
            ErrorKind.SERVER_ERROR, f"{host} reported an error mid-stream: {exc}", retryable=True
        )
    # Transport errors the SDK did not wrap (a body read outside its stream class).
    if isinstance(exc, httpx.TimeoutException):
        return CallError(
            ErrorKind.TIMEOUT, f"{host} stopped responding (read timeout)", retryable=True
        )
    if isinstance(exc, httpx.TransportError | OSError):  # OSError: TLS and socket errors
        return CallError(
            ErrorKind.CONNECTION, f"connection to {host} failed: {exc}", retryable=True
        )
    if isinstance(exc, httpx.DecodingError):
        return CallError(
            ErrorKind.PROTOCOL, f"{host} sent a body that cannot be decoded: {exc}", retryable=True
        )
    return internal_error(exc)
