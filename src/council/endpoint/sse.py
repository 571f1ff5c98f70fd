"""Server-sent events of a streamed chat completion, read from the response's bytes.

The SDK's own stream class decodes each event into an object, checks it and hands it
through its response processing, chunk by chunk, on several layers of async
generators: about half of council's CPU per streamed call. `EventReader` does the
same reading in one pass per network read: lines ended by CR, LF or CRLF (also when
a read ends between CR and LF), `data:` lines joined by newlines into one event at
a blank line, comments and unknown fields ignored, UTF-8 strictly, and it stops at
`[DONE]`. What it hands on is exactly what the SDK would have: each event's data
decoded from JSON (a ValueError when it is not JSON or not UTF-8), the data of an
event that says it is an error (`{"error": ...}`) raised as the SDK raises it, as an
`openai.APIError`, and the Assistants API's `thread.*` events skipped (the SDK hands
them on wrapped, as no chunk). `stream.py` then validates each chunk's shape.

Usage:
    events = EventReader(request)
    async for data in response.aiter_bytes():
        for chunk in events.feed(data):
            ...
        if events.done:
            break
"""

from __future__ import annotations

import json

import httpx2
import openai

__all__ = ["DONE", "EventReader"]

# The data of the event that ends an OpenAI stream.
DONE = "[DONE]"


class EventReader:
    """Reads server-sent events from byte chunks into their JSON data; see the module doc."""

    def __init__(self, request: httpx2.Request) -> None:
        self.request = request  # for the errors the SDK raises, which name it
        self.done = False  # `[DONE]` came: nothing after it is read
        self._pending = b""  # a line not ended yet
        self._skip_lf = False  # the last read ended with CR: an LF first is its CRLF
        self._data: list[str] = []
        self._event = ""
        self._dispatch = False  # a field came since the last event: a blank line ends one
        self._last_id = False  # an `id:` was seen: every later blank line ends an event

    def feed(self, chunk: bytes) -> list[object]:
        """The data of each event that `chunk` completes, in order (ValueError, APIError)."""
        if self.done or not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if self._pending:
            chunk = self._pending + chunk
        lines = chunk.splitlines()  # only CR, LF and CRLF end a line in bytes
        last = chunk[-1:]
        if last == b"\n" or last == b"\r":
            self._pending = b""
            self._skip_lf = last == b"\r"
        else:
            self._pending = lines.pop() if lines else b""
        found: list[object] = []
        for raw in lines:
            line = raw.decode("utf-8")
            if line:
                self._field(line)
                continue
            if not (self._dispatch or self._last_id):
                continue
            data = self._end_event(found)
            if data is DONE:
                self.done = True
                self._pending = b""
                break
        return found

    def _field(self, line: str) -> None:
        if line.startswith("data:"):
            value = line[5:]
            self._data.append(value[1:] if value.startswith(" ") else value)
            self._dispatch = True
            return
        if line.startswith(":"):
            return  # a comment (a keep-alive)
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
            self._dispatch = True
        elif name == "id" and "\0" not in value:
            self._last_id = True
        elif name == "retry" and value.isdigit():
            self._dispatch = True

    def _end_event(self, found: list[object]) -> object:
        text = "\n".join(self._data)
        event = self._event
        self._data, self._event, self._dispatch = [], "", False
        if text.startswith(DONE):
            return DONE
        data = json.loads(text)
        if event.startswith("thread."):
            return None  # the Assistants API's: no chat chunk
        if isinstance(data, dict) and data.get("error"):
            error = data["error"]
            message = error.get("message") if isinstance(error, dict) else None
            if not message or not isinstance(message, str):
                message = "An error occurred during streaming"
            raise openai.APIError(message, self.request, body=error)
        found.append(data)
        return data
