"""What can go wrong with a call: `CallError` with its kind, and turning SDK errors into one.

`classify` maps whatever the SDK or the transport raised to a kind the engine and
the user can act on, and says which kinds are worth a retry (429, 5xx, connection
errors, timeouts; never other 4xx), honouring the server's `Retry-After`.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import openai

__all__ = ["CallError", "classify", "parse_retry_after"]


class CallError(Exception):
    """A call that failed for good (after any retries), or one attempt that failed.

    `kind` is one of: rate_limited, server_error, connection, timeout,
    first_token_timeout, truncated, auth, not_found, bad_request, http_error.
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
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.retries = 0


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _status_error(exc: openai.APIStatusError, host: str) -> CallError:
    status = exc.status_code
    body = exc.body
    detail = body.get("message") if isinstance(body, dict) else None
    if not isinstance(detail, str) or not detail:
        detail = exc.message
    detail = " ".join(detail.split())[:300]
    headers = exc.response.headers if exc.response is not None else None
    if status in (401, 403):
        return CallError("auth", f"{host} refused the API key ({status}): {detail}", status=status)
    if status == 404:
        return CallError("not_found", f"{host} answered 404: {detail}", status=status)
    if status == 429:
        return CallError(
            "rate_limited",
            f"rate limited by {host} (429): {detail}",
            status=status,
            retryable=True,
            retry_after=parse_retry_after(headers),
        )
    if status >= 500 or status in (408, 409):
        return CallError(
            "server_error",
            f"{host} answered {status}: {detail}",
            status=status,
            retryable=True,
            retry_after=parse_retry_after(headers),
        )
    kind = "bad_request" if status in (400, 422) else "http_error"
    return CallError(kind, f"{host} answered {status}: {detail}", status=status)


def classify(exc: BaseException, host: str) -> CallError:
    """Turn whatever the SDK or transport raised into a CallError with a kind."""
    if isinstance(exc, CallError):
        return exc
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc, host)
    if isinstance(exc, openai.APITimeoutError):
        return CallError("timeout", f"{host} stopped responding (read timeout)", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        reason = f": {cause}" if cause and str(cause) else ""
        return CallError("connection", f"cannot connect to {host}{reason}", retryable=True)
    if isinstance(exc, openai.APIError):
        # An error event inside a stream: the server failed mid-answer.
        return CallError(
            "server_error", f"{host} reported an error mid-stream: {exc}", retryable=True
        )
    if type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "httpcore2"):
        return CallError("connection", f"connection to {host} failed: {exc}", retryable=True)
    raise exc
