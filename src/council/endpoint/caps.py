"""How much of a server's answer one call may hold in memory: its text, one SSE line, a body.

A server that streams without end, or sends one enormous event or completion, would
otherwise grow council until the system kills it, losing every answer of the run.
Each call has three caps, derived from its `max_tokens` where one is set (generously:
a token is about four characters, a cap allows sixteen) and otherwise a default far
above what any model answers (about 250,000 tokens; the longest outputs are 128,000).
A call over a cap fails as kind `too_large`; the other calls go on.

    caps = Caps.for_max_tokens(call.max_tokens)
    caps.answer_chars   # answer and reasoning text, in characters
    caps.line_bytes     # one server-sent event, in bytes (JSON escapes a character in six)
    caps.body_bytes     # a whole JSON completion, in bytes
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx2

__all__ = ["CALL_CAPS", "DEFAULT_ANSWER_CHARS", "Caps", "EventTooLarge", "cap_events"]

DEFAULT_ANSWER_CHARS = 1_000_000
CHARS_PER_TOKEN = 16
# Room beyond the text: JSON framing, a usage block, a short max_tokens' overhead.
SLACK = 65_536
# A character JSON-escaped as \uXXXX is six bytes.
BYTES_PER_CHAR = 6


@dataclass(frozen=True)
class Caps:
    answer_chars: int
    line_bytes: int
    body_bytes: int

    @classmethod
    def for_max_tokens(cls, max_tokens: int | None) -> Caps:
        chars = DEFAULT_ANSWER_CHARS
        if max_tokens is not None and max_tokens > 0:
            chars = max_tokens * CHARS_PER_TOKEN + SLACK
        wire = chars * BYTES_PER_CHAR + SLACK
        return cls(answer_chars=chars, line_bytes=wire, body_bytes=wire)

    def too_large(self, host: str, what: str) -> str:
        """The message of a call over a cap (`what`: "answer", "event", "answer body")."""
        limit = {
            "answer": f"{self.answer_chars:,} characters",
            "event": f"{self.line_bytes:,} bytes",
        }.get(what, f"{self.body_bytes:,} bytes")
        return f"{host} sent an {what} larger than {limit}; it was stopped there"


# The caps of the call this task is sending: set by the client around its request, read
# by `cap_events` when the response's headers arrive (the same task), so that one HTTP
# client serves calls of different caps.
CALL_CAPS: ContextVar[Caps | None] = ContextVar("council_call_caps", default=None)


class EventTooLarge(Exception):
    """One server-sent event (the bytes since the last line break) exceeded its cap."""


class _LineCapped(httpx2.AsyncByteStream):
    """A response body (an httpx async byte stream) that stops at a line over `limit` bytes.

    It looks for the last line break of each chunk only (a C-speed scan of bytes that
    arrived anyway): the SDK would otherwise gather an endless line in memory.
    """

    def __init__(self, stream: httpx2.AsyncByteStream, limit: int) -> None:
        self.stream = stream
        self.limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        line = 0
        async for chunk in self.stream:
            newline = chunk.rfind(b"\n")
            line = len(chunk) - newline - 1 if newline >= 0 else line + len(chunk)
            if line > self.limit:
                raise EventTooLarge
            yield chunk

    async def aclose(self) -> None:
        await self.stream.aclose()


async def cap_events(response: Any) -> None:
    """The HTTP client's response hook: an event stream's lines are capped (not a JSON
    body, which the client caps as it reads it, nor a compressed one, whose lines the
    raw bytes do not show)."""
    caps = CALL_CAPS.get()
    media = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if caps is None or media != "text/event-stream":
        return
    if response.headers.get("content-encoding", "identity").lower() != "identity":
        return
    response.stream = _LineCapped(response.stream, caps.line_bytes)
