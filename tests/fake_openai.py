"""A fake OpenAI-compatible HTTP server for tests and benchmarks (standard library only).

It speaks real HTTP/1.1 on 127.0.0.1 (keep-alive, chunked server-sent events) and serves
``GET /v1/models`` and ``POST /v1/chat/completions``, streaming or not, and the Batch API
(``/v1/files``, ``/v1/batches``: see ``fake_batch_api.py``). Every chat
completion request is recorded, with server-side timestamps, so tests can assert on
concurrency, retries, timing and disconnects without trusting the client.

Scripting: each request gets the next scripted ``Reply`` for the persona named by its
``X-Council-Persona`` header (a FIFO queue per persona, or per persona and round with
``round=N``, matched on the ``X-Council-Round`` header, tried first); a persona with nothing
queued takes from the shared ``None`` queue, and when that is empty too, ``fake.default``.
A default reply's text is ``"<persona> says: w1 w2 ..."``::

    with FakeOpenAI() as fake:                      # listening in a daemon thread
        fake.default = Reply(ttft=0.2, tokens=5)
        fake.script("judge", Reply(status=429, retry_after=0.5), Reply(text="Ruling: no."))
        fake.script("critic", Reply(hang=True))      # never answers; a disconnect is recorded
        fake.script("skeptic", Reply(gate="go"))     # held until fake.release("go")
        ...  # point a client at fake.base_url
        fake.wait_for(lambda f: any(r.persona == "critic" for r in f.disconnects))
        assert fake.peak_concurrency == 2
        assert [r.status for r in fake.requests_for("judge")] == [429, 200]

Odd and hostile servers are ``Reply`` fields too, shaped on what real servers send
(llama.cpp, vLLM, OpenAI, OpenRouter)::

    Reply(events=[chunk("Hi"), "data: {not json\n\n", chunk(finish="stop"), DONE])
    Reply(usage_body={"prompt_tokens": "lots", "completion_tokens": -5})
    Reply(reasoning="Let me think.", text="42")   # reasoning_content deltas first
    Reply(finish_reason="length")                # or "content_filter", or None: no finish
    Reply(text="")                               # an empty answer: only finish_reason stop
    Reply(endless=True)                          # its text over and over, never finishing
    Reply(plain_json=True)                       # one JSON completion for a streamed request
    Reply(body="<html>Log in</html>")            # a captive portal: 200 text/html
    Reply(status=429, retry_after="nan")         # any Retry-After text, sent as is
    Reply(status=400, error_param="response_format", error_code="unknown_parameter")
    Reply(redirect="http://127.0.0.1:9999/v1/chat/completions")   # a proxy's 307 (or
                                                 #   status=308, 301...) with a Location
    Reply(respond=lambda body: ...)              # the text read off the request body

Any text (ESC sequences, lone surrogate halves) goes out exactly as given: JSON escapes it.

A price, reported as OpenRouter does (``usage.cost`` in USD beside the counts):
``fake.report_cost = (0.15, 0.6)`` (USD per million prompt and completion tokens). A server
that keeps to ``max_tokens`` (cuts the answer there, finish reason ``length``):
``fake.honour_max_tokens = True``. A denser tokenizer in the usage it reports (a prompt
token every 2 characters, say): ``fake.usage_chars_per_token = 2``. A server that cuts
a long prompt without a word, as Ollama does at its ``num_ctx``, and counts only what it
kept: ``fake.num_ctx = 2048``.

Finite servers are settings (a slot limit and what happens beyond it, a request quota
announced in rate-limit headers) or per-reply headers::

    fake.slots, fake.over_limit = 2, "429"       # or "503" (both with Retry-After:
    fake.slot_retry_after = 1.0                  #   slot_retry_after), "interrupt" (the
                                                 #   oldest running stream ends without
                                                 #   finish_reason), or "queue"
    fake.rate_limit, fake.rate_window = 3, 1.0   # 3 requests a second, in x-ratelimit-*
    Reply(headers={"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s"})

Another process can drive it over HTTP: ``GET /_fake/stats``, ``POST /_fake/reset``,
``POST /_fake/default`` (a JSON object of ``Reply`` fields), ``POST /_fake/script``
(``{"persona": name-or-null, "round": N-or-null, "replies": [{...}, ...]}``),
``POST /_fake/release`` (``{"gate": name}``) and ``POST /_fake/settings``
(``send_usage`` / ``report_cost`` / ``honour_max_tokens`` / ``reject_stream_options`` /
``reject_response_format`` / ``response_format_types`` / ``response_format_refusal`` /
``reject_object_schema`` / ``context_window`` / ``context_error_style`` /
``describe_context`` / ``usage_chars_per_token`` / ``num_ctx`` / ``slots`` / ``over_limit`` /
``slot_retry_after`` / ``rate_limit`` / ``rate_window`` / ``total_slots``).

A context window: ``fake.context_window = 2048`` refuses (400) any request whose prompt
plus ``max_tokens`` is larger, counting a token as four characters of message content
(``_prompt_tokens``), with OpenAI's message (``context_error_style = "openai"``, the
default), llama.cpp's (``"llamacpp"``) or vLLM's (``"vllm"``). With
``describe_context = True`` the server also states its window, as llama.cpp
(``GET /props``: ``default_generation_settings.n_ctx``), vLLM (``max_model_len``) and
OpenRouter (``context_length``) do in ``GET /v1/models``. ``fake.total_slots = 4`` states
the server's slots as llama-server does (``GET /props``: ``total_slots``);
``fake.props_requests`` counts the ``GET /props`` asked. ``Reply(header_delay=0.6)`` holds
the response headers back, as a hosted API does until its first token is ready.

Command line: ``python -m tests.fake_openai --port 8000 --ttft 0.3 --token-delay 0.05``,
or ``python -m tests.fake_openai --run council oracle "question"`` to run one command
against a throw-away server (``COUNCIL_BASE_URL`` is set for it). ``--num-ctx 2048`` cuts
prompts as Ollama does; ``--hang-after 3`` streams three words of each reply, then hangs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import dataclasses
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from tests.fake_batch_api import BatchAPI

MODEL_ID = "fake-model"
# The end of a stream, for scripted `events`.
DONE = "data: [DONE]\n\n"
MAX_HEADER_BYTES = 64 * 1024
# The response_format types that ask for JSON (the default reply is then a verdict).
JSON_TYPES = ("json_object", "json_schema")
ERROR_KINDS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


@dataclass
class Reply:
    """How the server answers one chat completion request."""

    text: str | None = None  # None: f"{persona or 'model'} says: w1 w2 ..." with `tokens` words
    tokens: int = 12
    # Seconds before the response headers: hosted APIs send them when the first token
    # is ready (0.3-1 s, longer for reasoning models); ttft then counts from them.
    header_delay: float = 0.0
    ttft: float = 0.0  # seconds from the response headers to the first content chunk
    token_delay: float = 0.0  # seconds between content chunks
    status: int = 200  # non-200: an OpenAI-shaped JSON error, no stream
    retry_after: float | str | None = None  # sent as the Retry-After header (a str as is)
    error_message: str | None = None
    error_param: str | None = None  # the error's structured `param` (the field it names)
    error_code: str | None = None  # the error's `code`; None: the usual one for the status
    error_body: Any = None  # the whole JSON error body, instead of OpenAI's shape
    hang: bool = False  # never send a byte, until the client goes away
    drop_after: int | None = None  # send this many content chunks, then abort the connection
    usage: bool = True  # False: never send usage, even when asked
    gate: str | None = None  # hold the whole response until fake.release(gate)
    hang_after: int | None = None  # stream this many content chunks, then hang until cancelled
    # Stream this many content chunks, then a chunk whose size line is not hex, and close:
    # the chunked framing broken (as by a proxy that rewrites the stream and gets it wrong).
    bad_chunk_after: int | None = None
    # Stream the text again and again, as fast as the client reads it, never finishing
    # (a runaway model with no max_tokens, or a broken server).
    endless: bool = False
    # -- odd and hostile servers --
    # The streamed body verbatim: a str goes out as raw bytes (SSE lines, malformed or
    # not: end them with "\n\n"), anything else as `data: <json>`; nothing is added,
    # so a scripted stream ends with DONE or it ends early. ttft and token_delay apply.
    events: list[Any] | None = None
    # Reasoning streamed before the answer, a word a chunk, as deltas with this key
    # and content null (llama.cpp, DeepSeek and older vLLM say reasoning_content;
    # OpenRouter and newer vLLM say reasoning).
    reasoning: str | None = None
    reasoning_key: str = "reasoning_content"
    finish_reason: str | None = "stop"  # None: the stream ends (with [DONE]) without one
    usage_body: Any = None  # sent as "usage" instead of the real counts (when usage is sent)
    plain_json: bool = False  # answer a streamed request with one non-streamed completion
    body: str | None = None  # a raw 200 body instead of an answer (a captive portal's page)
    content_type: str = "text/html; charset=utf-8"  # the Content-Type of `body`
    headers: dict[str, str] | None = None  # extra response headers (rate-limit ones, say)
    # Send the request elsewhere, as a reverse proxy (nginx) does: `status` if it is a
    # 3xx, else 307, with this Location and nginx's small HTML body.
    redirect: str | None = None
    # The text as a function of the request body, as a real model's depends on its
    # prompt (a reviewer that picks the longest answer shown, say); in-process only.
    respond: Callable[[dict[str, Any]], str] | None = None

    def content(
        self, persona: str | None, json_mode: bool = False, round: str | None = None
    ) -> str:
        """The reply's text: scripted, or the default for this persona.

        In JSON mode (the request asked for a ``json_object``) the default is shaped
        like a council arbiter's verdict, converging from round 2 on, so that a demo
        of ``council deliberate`` against the fake server ends the way a real one would.
        """
        if self.text is not None:
            return self.text
        words = " ".join(f"w{i}" for i in range(1, self.tokens + 1))
        text = f"{persona or 'model'} says: {words}".rstrip()
        if not json_mode:
            return text
        converged = round is not None and round.isdigit() and int(round) >= 2
        verdict = {"converged": converged, "confidence": 0.9, "synthesis": text, "dissent": []}
        return json.dumps(verdict)


@dataclass
class RecordedRequest:
    """One chat completion request as the server saw it (times are time.monotonic())."""

    index: int
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    persona: str | None
    round: str | None
    received_at: float
    responded_at: float | None = None
    first_token_at: float | None = None
    finished_at: float | None = None
    status: int | None = None
    tokens_sent: int = 0
    completed: bool = False
    disconnected: bool = False
    disconnected_at: float | None = None
    # The TCP connection it came on, numbered as the server accepted them (as an access
    # log's client port tells them apart): equal numbers mean a kept-alive one reused.
    connection: int = 0
    # Turned away by the slot limit (429/503), or ended by a newer request ("interrupt").
    over_limit: bool = False
    interrupted: bool = False
    generation: int = field(default=0, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        del data["generation"]
        return data


OVER_LIMIT_MODES = ("429", "503", "interrupt", "queue")


@dataclass(eq=False)
class _Slot:
    """A request holding one of the server's slots; `cut` ends its stream early."""

    index: int
    cut: asyncio.Event


class _Interrupted(Exception):
    """A newer request took this stream's slot."""


class _ClientGone(Exception):
    """The client closed the connection."""


class _BadRequest(Exception):
    """The request could not be parsed."""


@dataclass
class _Request:
    method: str
    path: str
    version: str
    headers: dict[str, str]
    raw_body: bytes

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


class _Connection:
    """A buffered view of one client socket, with client-disconnect detection."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int = 0
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.number = number
        self.buffer = bytearray()
        self.eof_at: float | None = None

    async def _fill(self) -> None:
        try:
            data = await self.reader.read(65536)
        except ConnectionError:
            data = b""
        if not data:
            self.eof_at = self.eof_at or time.monotonic()
            raise _ClientGone
        self.buffer += data

    async def _take_until(self, separator: bytes) -> bytes:
        while (end := self.buffer.find(separator)) < 0:
            if len(self.buffer) > MAX_HEADER_BYTES:
                raise _BadRequest("header section too large")
            await self._fill()
        data = bytes(self.buffer[:end])
        del self.buffer[: end + len(separator)]
        return data

    async def _take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            await self._fill()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    async def read_request(self) -> _Request | None:
        """The next request, or None when the client closed an idle connection."""
        try:
            head = await self._take_until(b"\r\n\r\n")
        except _ClientGone:
            return None
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ")
        except ValueError:
            raise _BadRequest(f"bad request line {lines[0]!r}") from None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequest(f"bad header line {line!r}")
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        try:
            if "chunked" in headers.get("transfer-encoding", "").lower():
                parts = []
                while size := int((await self._take_until(b"\r\n")).split(b";")[0], 16):
                    parts.append((await self._take(size + 2))[:-2])
                while await self._take_until(b"\r\n"):  # trailers
                    pass
                body = b"".join(parts)
            else:
                body = await self._take(int(headers.get("content-length", "0") or 0))
        except ValueError as exc:
            raise _BadRequest(f"bad body framing: {exc}") from None
        if target.lower().startswith(("http://", "https://")):
            # The absolute form, as a client sends through a proxy: a server must take it
            # (RFC 9112, 3.2.2), and this one answers it itself.
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        return _Request(method.upper(), target.split("?")[0], version, headers, body)

    async def wait_until_gone(self) -> float:
        """Return the time the client closed its end (data it sends meanwhile is kept)."""
        with contextlib.suppress(_ClientGone):
            while True:
                await self._fill()
        assert self.eof_at is not None
        return self.eof_at

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


def _chunk(data: bytes) -> bytes:
    # An empty write sends nothing, as in real servers: a zero-length chunk would end the
    # response early and leave the rest of the stream as garbage on a kept-alive connection.
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


def chunk(
    content: str | None = None,
    *,
    reasoning: str | None = None,
    finish: str | None = None,
    usage: Any = None,
) -> dict[str, Any]:
    """One OpenAI-shaped streamed chunk, for scripted `events`."""
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    data: dict[str, Any] = {"id": "chatcmpl-fake", "object": "chat.completion.chunk"}
    data["choices"] = [choice] if usage is None or delta or finish else []
    if usage is not None:
        data["usage"] = usage
    return data


def _event(item: Any) -> bytes:
    """A scripted event: a str as raw bytes (invalid UTF-8 from surrogates, on purpose)."""
    if isinstance(item, str):
        return _chunk(item.encode("utf-8", "surrogatepass"))
    return _sse(item)


def _tokens(text: str) -> list[str]:
    """The chunks a text is streamed in: a word each, with its spaces; all of the text."""
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def _sse(payload: dict[str, Any] | str) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return _chunk(f"data: {text}\n\n".encode())


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_reason(status)}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _error_body(
    status: int, message: str | None, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    kind, usual = ERROR_KINDS.get(status, ("server_error" if status >= 500 else "api_error", None))
    text = message or f"fake error {status} ({_reason(status)})"
    return {"error": {"message": text, "type": kind, "param": param, "code": code or usual}}


def _prompt_tokens(body: dict[str, Any], chars_per_token: float = 4) -> int:
    chars = 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(str(p.get("text", ""))) for p in content if isinstance(p, dict))
    return max(int(chars // chars_per_token), 1)


class FakeOpenAI(BatchAPI):
    """The fake server. Use as a context manager, or start()/stop(); see the module doc.

    The Batch API (files, batches) is mixed in from `fake_batch_api.py`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        default: Reply | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._initial_default = default or Reply()
        self._log = log
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._accepted = itertools.count()  # numbers the connections (RecordedRequest)
        self._generation = 0
        self.reset()

    # -- state, read from any thread -------------------------------------------------------

    def reset(self) -> None:
        """Forget scripts, records and peak; settings back to their defaults."""
        with self._changed:
            self.default = copy.copy(self._initial_default)
            self.send_usage = True
            # (input, output) USD per million tokens: usage.cost is sent, as OpenRouter does.
            self.report_cost: tuple[float, float] | None = None
            # True: an answer longer than the request's max_tokens is cut there ("length").
            self.honour_max_tokens = False
            # Characters of prompt a token in the usage it reports (a tokenizer's density).
            self.usage_chars_per_token = 4.0
            # Ollama's num_ctx: a longer prompt is cut to this many tokens without an
            # error, and its usage counts only what was kept.
            self.num_ctx: int | None = None
            self.reject_stream_options = False
            self.reject_response_format = False
            # The response_format types the server takes (None: any), refused as
            # `response_format_refusal` says: "pydantic" as llama-cpp-python's server (the
            # embedded model) does, a 422 whose detail locates response_format.type; or
            # "openai", a 400 naming param response_format.type; or "llama-server", the
            # 500 llama.cpp's server answered before it took schemas (no field named).
            self.response_format_types: tuple[str, ...] | None = None
            self.response_format_refusal = "pydantic"
            # A response_format of type json_object carrying a `schema` refused too
            # (a server that takes JSON mode but no schema in it).
            self.reject_object_schema = False
            self.context_window: int | None = None
            self.context_error_style = "openai"
            self.describe_context = False
            # Slots stated as llama.cpp's llama-server does (GET /props: total_slots).
            self.total_slots: int | None = None
            self.props_requests = 0  # GET /props asked
            # Seconds a kept-alive connection may stay idle before the server closes it
            # (llama-server's cpp-httplib closes after 5 s); None: never.
            self.keep_alive_timeout: float | None = None
            self.idle_closed = 0  # connections closed for that
            self.connections_accepted = 0
            # GET /models lists these ids, as Ollama lists what it pulled (None: fake-model).
            self.listed_models: list[str] | None = None
            self.models_requests = 0  # GET /models asked
            # A finite server: None means as many slots as requests.
            self.slots: int | None = None
            self.over_limit = "429"  # or "503", "interrupt", "queue"
            self.slot_retry_after: float | None = 1.0
            self.rate_limit: int | None = None  # requests per rate_window, announced
            self.rate_window = 1.0
            self._holders: list[_Slot] = []  # running requests holding a slot, oldest first
            self._slot_waiters: deque[asyncio.Future[None]] = deque()
            self._window_start = time.monotonic()
            self._window_used = 0
            self._scripts: dict[tuple[str | None, str | None], deque[Reply]] = {}
            # Responses held by a gate from before the reset are let go.
            for event in getattr(self, "_gates", {}).values():
                if self._loop is not None:
                    self._loop.call_soon_threadsafe(event.set)
            self._gates: dict[str, asyncio.Event] = {}
            self._open_gates: set[str] = set()
            self._records: list[RecordedRequest] = []
            self._generation += 1  # requests still running from before do not count
            self._in_flight = 0
            self._peak = 0
            self._reset_batches()
            self._changed.notify_all()

    def script(self, persona: str | None, *replies: Reply, round: int | None = None) -> None:
        """Queue replies for `persona` (None: the shared queue for everyone else).

        With `round`, the replies are only for requests of that round: a test of a
        multi-round council then does not depend on the order requests arrive in.
        """
        key = (persona, None if round is None else str(round))
        with self._changed:
            self._scripts.setdefault(key, deque()).extend(replies)

    def release(self, gate: str) -> None:
        """Let every response held by `gate` go, now and from now on (until reset)."""
        with self._lock:
            self._open_gates.add(gate)
            # This test's event, taken now: looked up later on the server's loop, a
            # reset() in between would hand over (and open) the next test's gate.
            event = self._gates.setdefault(gate, asyncio.Event())
        if self._loop is not None:
            self._loop.call_soon_threadsafe(event.set)

    def _gate(self, name: str) -> asyncio.Event:
        """The server loop's event for a gate (created there, set if already released)."""
        with self._lock:
            event = self._gates.setdefault(name, asyncio.Event())
            if name in self._open_gates:
                event.set()
            return event

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [copy.copy(r) for r in self._records]

    def requests_for(self, persona: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.persona == persona]

    @property
    def peak_concurrency(self) -> int:
        with self._lock:
            return self._peak

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def disconnects(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.disconnected]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": len(self._records),
                "peak_concurrency": self._peak,
                "in_flight": self._in_flight,
                "props_requests": self.props_requests,
                "disconnects": [
                    {"persona": r.persona, "at": r.disconnected_at}
                    for r in self._records
                    if r.disconnected
                ],
                "records": [r.to_dict() for r in self._records],
            }

    def wait_for(self, predicate: Callable[[FakeOpenAI], bool], timeout: float = 5.0) -> None:
        """Block until predicate(self) holds, re-checking on every record change."""
        with self._changed:
            if self._changed.wait_for(lambda: predicate(self), timeout):
                return
            summary = [
                f"#{r.index} {r.persona} status={r.status} tokens={r.tokens_sent} "
                f"completed={r.completed} disconnected={r.disconnected}"
                for r in self._records
            ]
        name = getattr(predicate, "__qualname__", repr(predicate))
        raise AssertionError(
            f"fake server: {name} still false after {timeout}s; in_flight={self.in_flight}, "
            f"peak={self.peak_concurrency}, {len(summary)} requests: " + "; ".join(summary)
        )

    def _update(self, record: RecordedRequest, **changes: Any) -> None:
        with self._changed:
            finishing = "finished_at" in changes and record.finished_at is None
            if finishing and record.generation == self._generation:
                self._in_flight -= 1
            for key, value in changes.items():
                setattr(record, key, value)
            self._changed.notify_all()

    def _next_reply(self, persona: str | None, round: str | None) -> Reply:
        with self._lock:
            for key in ((persona, round), (persona, None), (None, None)):
                queue = self._scripts.get(key)
                if queue:
                    return queue.popleft()
            return copy.copy(self.default)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        """Serve from a daemon thread; return once listening."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self.serve(on_ready=ready.set))
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()

        self._thread = threading.Thread(target=run, name="fake-openai", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise RuntimeError("the fake OpenAI server did not start") from failure[0]
        return self

    def stop(self) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def serve(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve on the running loop until stop() (or request_stop()) is called."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(
            self._serve_connection, self.host, self.port, backlog=2048
        )
        self.port = server.sockets[0].getsockname()[1]
        if on_ready is not None:
            on_ready()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await server.wait_closed()

    def request_stop(self) -> None:
        """Stop serve() from its own loop (e.g. from a signal handler)."""
        if self._stopping is not None:
            self._stopping.set()

    # -- HTTP ------------------------------------------------------------------------------

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        conn = _Connection(reader, writer, next(self._accepted))
        with self._changed:
            self.connections_accepted += 1
        graceful = False
        try:
            while await self._stays_open(conn):
                if (request := await conn.read_request()) is None:
                    break
                if not await self._dispatch(conn, request) or not request.keep_alive:
                    break
            graceful = True
        except _BadRequest as exc:
            body = json.dumps(_error_body(400, str(exc))).encode()
            headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
            with contextlib.suppress(ConnectionError):
                await conn.send(_head(400, {**headers, "Connection": "close"}) + body)
                graceful = True
        except (ConnectionError, _ClientGone, asyncio.CancelledError):
            pass  # (3.11's start_server logs a cancelled handler task as an error)
        finally:
            self._connections.discard(task)
            if graceful:
                writer.close()  # after what is buffered has been sent
            else:
                writer.transport.abort()

    async def _stays_open(self, conn: _Connection) -> bool:
        """False when an idle connection outlived `keep_alive_timeout` (or was closed)."""
        idle = self.keep_alive_timeout
        if idle is None or conn.buffer:
            return True
        try:
            async with asyncio.timeout(idle):
                await conn._fill()
        except TimeoutError:
            conn.writer.close()  # counted once the socket is closed, the FIN on its way
            with contextlib.suppress(ConnectionError):
                await conn.writer.wait_closed()
            with self._changed:
                self.idle_closed += 1
                self._changed.notify_all()
            return False
        except _ClientGone:
            return False
        return True

    async def _send_json(
        self, conn: _Connection, request: _Request, status: int, payload: object, **extra: str
    ) -> None:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), **extra}
        headers["Connection"] = "keep-alive" if request.keep_alive else "close"
        await conn.send(_head(status, headers) + body)

    async def _send_batch_api(
        self, conn: _Connection, request: _Request, status: int, payload: object
    ) -> bool:
        if self._log:
            self._log(f"{request.method} {request.path} -> {status}")
        if not isinstance(payload, bytes):
            await self._send_json(conn, request, status, payload)
            return True
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(payload))}
        headers["Connection"] = "keep-alive" if request.keep_alive else "close"
        await conn.send(_head(status, headers) + payload)
        return True

    async def _send_raw(
        self, conn: _Connection, request: _Request, record: RecordedRequest, reply: Reply
    ) -> bool:
        """A 200 that is not an API answer at all, e.g. a captive portal's login page."""
        assert reply.body is not None
        await asyncio.sleep(reply.ttft)
        data = reply.body.encode("utf-8", "surrogatepass")
        headers = {"Content-Type": reply.content_type, "Content-Length": str(len(data))}
        headers["Connection"] = "keep-alive" if request.keep_alive else "close"
        now = time.monotonic()
        self._update(record, responded_at=now, status=200)
        await conn.send(_head(200, headers) + data)
        self._update(record, completed=True, finished_at=time.monotonic())
        return True

    async def _send_redirect(
        self, conn: _Connection, request: _Request, record: RecordedRequest, reply: Reply
    ) -> bool:
        """A reverse proxy's redirect: a 3xx with a Location and nginx's body."""
        assert reply.redirect is not None
        status = reply.status if 300 <= reply.status < 400 else 307
        title = f"{status} {_reason(status)}"
        data = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
            "</body>\r\n</html>\r\n"
        ).encode()
        headers = {
            "Content-Type": "text/html",
            "Content-Length": str(len(data)),
            "Location": reply.redirect,
            "Connection": "keep-alive" if request.keep_alive else "close",
        }
        self._update(record, responded_at=time.monotonic(), status=status)
        await conn.send(_head(status, headers) + data)
        self._update(record, completed=True, finished_at=time.monotonic())
        return True

    async def _dispatch(self, conn: _Connection, request: _Request) -> bool:
        """Answer one request; False means the connection must be closed."""
        route = (request.method, request.path.removeprefix("/v1"))
        if route == ("POST", "/chat/completions"):
            return await self._chat(conn, request)
        batch_api = self._batch_route(
            request.method, request.path, request.headers, request.raw_body
        )
        if batch_api is not None:
            return await self._send_batch_api(conn, request, *batch_api)
        window = self.context_window if self.describe_context else None
        if (request.method, request.path) == ("GET", "/props"):
            with self._changed:
                self.props_requests += 1
        if route == ("GET", "/models"):
            with self._changed:
                self.models_requests += 1
            listed = []
            for name in [MODEL_ID] if self.listed_models is None else self.listed_models:
                model: dict[str, Any] = {"id": name, "object": "model", "created": 0}
                model["owned_by"] = "fake"
                if window is not None:
                    model["max_model_len"] = model["context_length"] = window
                listed.append(model)
            payload: object = {"object": "list", "data": listed}
            status = 200
        elif (request.method, request.path) == ("GET", "/props") and (
            window is not None or self.total_slots is not None
        ):
            payload, status = self._props(window), 200
        elif request.path.startswith("/_fake/"):
            status, payload = self._control(request)
        else:
            status, payload = 404, _error_body(404, f"no route {request.method} {request.path}")
        if self._log:
            self._log(f"{request.method} {request.path} -> {status}")
        await self._send_json(conn, request, status, payload)
        return True

    def _props(self, window: int | None) -> dict[str, Any]:
        """llama-server's description of itself (the fields council reads, and a few more)."""
        # llama-server always states its window; without one set, a large one.
        n_ctx = window or self.context_window or 32768
        settings = {"id": 0, "id_task": -1, "n_ctx": n_ctx, "params": {"temperature": 0.8}}
        payload: dict[str, Any] = {
            "default_generation_settings": settings,
            "model_path": "models/fake.gguf",
            "build_info": "fake",
            "modalities": {"vision": False, "audio": False},
        }
        if self.total_slots is not None:
            payload["total_slots"] = self.total_slots
        return payload

    def _control(self, request: _Request) -> tuple[int, object]:
        try:
            data = json.loads(request.raw_body or b"{}")
            if request.method == "GET" and request.path == "/_fake/stats":
                return 200, self.stats()
            if request.method != "POST":
                raise LookupError
            if request.path == "/_fake/reset":
                self.reset()
            elif request.path == "/_fake/default":
                self.default = Reply(**data)
            elif request.path == "/_fake/script":
                replies = (Reply(**r) for r in data.get("replies", []))
                self.script(data.get("persona"), *replies, round=data.get("round"))
            elif request.path == "/_fake/release":
                self.release(str(data["gate"]))
            elif request.path == "/_fake/settings":
                for key in (
                    "send_usage",
                    "reject_stream_options",
                    "reject_response_format",
                    "reject_object_schema",
                    "honour_max_tokens",
                ):
                    if key in data:
                        setattr(self, key, bool(data[key]))
                if "describe_context" in data:
                    self.describe_context = bool(data["describe_context"])
                if "report_cost" in data:
                    cost = data["report_cost"]
                    self.report_cost = None if cost is None else (float(cost[0]), float(cost[1]))
                if "context_window" in data:
                    window = data["context_window"]
                    self.context_window = None if window is None else int(window)
                if "response_format_types" in data:
                    types = data["response_format_types"]
                    self.response_format_types = None if types is None else tuple(types)
                if "response_format_refusal" in data:
                    self.response_format_refusal = str(data["response_format_refusal"])
                if "context_error_style" in data:
                    self.context_error_style = str(data["context_error_style"])
                if "over_limit" in data:
                    if data["over_limit"] not in OVER_LIMIT_MODES:
                        raise ValueError(f"over_limit must be one of {OVER_LIMIT_MODES}")
                    self.over_limit = data["over_limit"]
                for key in ("slots", "rate_limit", "num_ctx", "total_slots"):
                    if key in data:
                        setattr(self, key, None if data[key] is None else int(data[key]))
                for key in ("slot_retry_after", "rate_window", "usage_chars_per_token"):
                    if key in data:
                        setattr(self, key, None if data[key] is None else float(data[key]))
            else:
                raise LookupError
        except LookupError:
            return 404, _error_body(404, f"no route {request.method} {request.path}")
        except (ValueError, TypeError, AttributeError) as exc:
            return 400, _error_body(400, f"bad control request: {exc}")
        return 200, {"ok": True}

    async def _chat(self, conn: _Connection, request: _Request) -> bool:
        received_at = time.monotonic()
        try:
            body = json.loads(request.raw_body)
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
        except ValueError:
            body = None
        # council percent-encodes what is not ASCII ("critic · gpt-4o").
        persona = unquote(request.headers.get("x-council-persona") or "") or None
        with self._changed:
            record = RecordedRequest(
                index=len(self._records),
                method=request.method,
                path=request.path,
                headers=dict(request.headers),
                body=body,
                persona=persona,
                round=request.headers.get("x-council-round"),
                received_at=received_at,
                generation=self._generation,
                connection=conn.number,
            )
            self._records.append(record)
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
            self._changed.notify_all()

        reply = None
        if body is None:
            reply = Reply(status=400, error_message="We could not parse the JSON body.")
        else:
            for key, flag in (
                ("stream_options", self.reject_stream_options),
                ("response_format", self.reject_response_format),
            ):
                if flag and key in body:  # what OpenAI says of a parameter it does not know
                    message = f"Unknown parameter: '{key}'."
                    reply = Reply(
                        status=400,
                        error_message=message,
                        error_param=key,
                        error_code="unknown_parameter",
                    )
        if reply is None and body is not None:
            reply = self._format_refusal(body)
        if reply is None and body is not None:
            reply = self._context_error(body)
        if reply is None:
            reply = self._next_reply(persona, record.round)
        reply = self._quota(reply)
        slot: _Slot | None = None
        if self.slots is not None and reply.status == 200:
            slot, reply = await self._take_slot(record, reply)
        try:
            work = self._answer(conn, request, record, reply, slot)
            return await self._watching(conn, record, work)
        finally:  # even when the server is stopped right after the response
            if slot is not None:
                self._free_slot(slot)
            if self._log:
                self._log(
                    f"POST {request.path} persona={persona} -> {record.status} "
                    f"tokens={record.tokens_sent} completed={record.completed} "
                    f"disconnected={record.disconnected}"
                )

    def _format_refusal(self, body: dict[str, Any]) -> Reply | None:
        """A response_format this server does not take, refused as a real server words it."""
        asked = body.get("response_format")
        if not isinstance(asked, dict):
            return None
        kind = asked.get("type")
        types = self.response_format_types
        if types is not None and kind not in types:
            allowed = " or ".join(f"'{t}'" for t in types)
            message = f"Input should be {allowed}"
            if self.response_format_refusal == "pydantic":
                detail = {
                    "type": "literal_error",
                    "loc": ["body", "response_format", "type"],
                    "msg": message,
                    "input": kind,
                    "ctx": {"expected": allowed},
                }
                return Reply(status=422, error_body={"detail": [detail]})
            if self.response_format_refusal == "llama-server":  # before it took schemas
                quoted = " or ".join(f'"{t}"' for t in types)
                text = f"response_format type must be one of {quoted}, but got: {kind}"
                error = {"code": 500, "message": text, "type": "server_error"}
                return Reply(status=500, error_body={"error": error})
            return Reply(
                status=400,
                error_message=f"Invalid value: '{kind}'. {message}.",
                error_param="response_format.type",
                error_code="invalid_value",
            )
        if self.reject_object_schema and kind == "json_object" and "schema" in asked:
            return Reply(
                status=400,
                error_message="Unrecognized request argument supplied: response_format.schema",
                error_param="response_format.schema",
                error_code="unknown_parameter",
            )
        return None

    def _context_error(self, body: dict[str, Any]) -> Reply | None:
        """A 400 in the configured server's words when the prompt and answer exceed the window."""
        window = self.context_window
        if window is None:
            return None
        prompt = _prompt_tokens(body)
        answer = body.get("max_tokens") if isinstance(body.get("max_tokens"), int) else 0
        if prompt + answer <= window:
            return None
        if self.context_error_style == "llamacpp":
            message = (
                f"request ({prompt} tokens) exceeds the available context size "
                f"({window} tokens), try increasing it"
            )
        elif self.context_error_style == "vllm":
            message = (
                f"This model's maximum context length is {window} tokens. However, you "
                f"requested {prompt + answer} tokens ({prompt} in the messages, {answer} in "
                "the completion). Please reduce the length of the messages or completion."
            )
        else:
            message = (
                f"This model's maximum context length is {window} tokens. However, your "
                f"messages resulted in {prompt} tokens. Please reduce the length of the "
                "messages."
            )
        code = "context_length_exceeded" if self.context_error_style == "openai" else None
        return Reply(status=400, error_message=message, error_code=code)

    async def _watching(
        self, conn: _Connection, record: RecordedRequest, work: Coroutine[Any, Any, bool]
    ) -> bool:
        """Run `work` (the response) while watching for the client going away."""
        responding = asyncio.create_task(work)
        watcher = asyncio.create_task(conn.wait_until_gone())
        try:
            await asyncio.wait({responding, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            if not responding.done():
                responding.cancel()
            await asyncio.gather(responding, watcher, return_exceptions=True)
        failure = None if responding.cancelled() else responding.exception()
        if responding.done() and not responding.cancelled() and failure is None:
            return responding.result()
        if failure is not None and not isinstance(failure, ConnectionError):
            self._update(record, finished_at=time.monotonic())
            raise failure  # a bug in the fake: let asyncio log it
        if record.finished_at is None:  # the client went away (EOF, or a failed write)
            gone_at = conn.eof_at or time.monotonic()
            self._update(record, disconnected=True, disconnected_at=gone_at, finished_at=gone_at)
        return False

    async def _answer(
        self,
        conn: _Connection,
        request: _Request,
        record: RecordedRequest,
        reply: Reply,
        slot: _Slot | None = None,
    ) -> bool:
        """Send the response; True when the connection may be reused."""
        body = record.body or {}
        cut = slot.cut if slot is not None else None
        if reply.header_delay > 0:
            await asyncio.sleep(reply.header_delay)
        if reply.hang:
            await asyncio.get_running_loop().create_future()  # until the client goes away
        if reply.gate is not None:
            await self._gate(reply.gate).wait()
        if reply.redirect is not None:
            return await self._send_redirect(conn, request, record, reply)
        if reply.status != 200:
            extra = {} if reply.retry_after is None else {"Retry-After": str(reply.retry_after)}
            extra.update(reply.headers or {})
            self._update(record, responded_at=time.monotonic(), status=reply.status)
            payload = reply.error_body
            if payload is None:
                payload = _error_body(
                    reply.status, reply.error_message, reply.error_param, reply.error_code
                )
            await self._send_json(conn, request, reply.status, payload, **extra)
            self._update(record, completed=True, finished_at=time.monotonic())
            return True
        if reply.body is not None:
            return await self._send_raw(conn, request, record, reply)
        json_mode = (body.get("response_format") or {}).get("type") in JSON_TYPES
        if reply.respond is not None:  # a model that reads its prompt
            reply = dataclasses.replace(reply, text=reply.respond(record.body or {}))
        text = reply.content(record.persona, json_mode, record.round)
        tokens = _tokens(text)
        finish_reason = reply.finish_reason
        limit = body.get("max_tokens")
        if self.honour_max_tokens and isinstance(limit, int) and 0 <= limit < len(tokens):
            tokens, finish_reason = tokens[:limit], "length"  # as a real server cuts an answer
        thoughts = _tokens(reply.reasoning or "")
        created = int(time.time())
        base = {"id": f"chatcmpl-fake-{record.index}", "created": created}
        base["model"] = body.get("model") or MODEL_ID
        want_usage = self.send_usage and reply.usage
        prompt_tokens = _prompt_tokens(body, self.usage_chars_per_token)
        if self.num_ctx is not None:
            prompt_tokens = min(prompt_tokens, self.num_ctx)  # cut silently, as Ollama does
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": 0,
        }
        # Servers count reasoning tokens as completion tokens.
        completion_tokens = len(tokens) + len(thoughts)
        if not body.get("stream") or reply.plain_json:
            chunks = len(tokens) + len(thoughts)
            await asyncio.sleep(reply.ttft + reply.token_delay * max(chunks - 1, 0))
            if reply.drop_after is not None:
                self._update(record, finished_at=time.monotonic())
                return False
            usage["completion_tokens"] = completion_tokens
            usage["total_tokens"] = usage["prompt_tokens"] + completion_tokens
            self._priced(usage)
            message = {"role": "assistant", "content": "".join(tokens), "refusal": None}
            if reply.reasoning is not None:
                message[reply.reasoning_key] = reply.reasoning
            choice = {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason,
            }
            payload = {**base, "object": "chat.completion", "choices": [choice]}
            if want_usage:
                payload["usage"] = usage if reply.usage_body is None else reply.usage_body
            now = time.monotonic()
            self._update(record, responded_at=now, first_token_at=now, status=200)
            await self._send_json(conn, request, 200, payload)
            self._update(
                record, tokens_sent=len(tokens), completed=True, finished_at=time.monotonic()
            )
            return True

        stream_options = body.get("stream_options") or {}
        want_usage = want_usage and bool(stream_options.get("include_usage"))
        headers = {
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "Transfer-Encoding": "chunked",
            "Connection": "keep-alive" if request.keep_alive else "close",
            **(reply.headers or {}),
        }
        await conn.send(_head(200, headers))
        self._update(record, responded_at=time.monotonic(), status=200)
        loop = asyncio.get_running_loop()
        start = loop.time()

        def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return _sse({**base, "object": "chat.completion.chunk", "choices": [choice]})

        async def wait_for_chunk(i: int) -> None:
            # Absolute deadlines, so that sleep overshoot does not add up over a reply.
            if (delay := start + reply.ttft + i * reply.token_delay - loop.time()) > 0:
                if cut is None:
                    await asyncio.sleep(delay)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(cut.wait(), delay)
            if cut is not None and cut.is_set():
                raise _Interrupted

        try:
            if reply.events is not None:
                for i, item in enumerate(reply.events):
                    await wait_for_chunk(i)
                    await conn.send(_event(item))
                await conn.send(b"0\r\n\r\n")
                self._update(record, completed=True, finished_at=time.monotonic())
                return True

            for i, thought in enumerate(thoughts):
                await wait_for_chunk(i)
                delta: dict[str, Any] = {"content": None, reply.reasoning_key: thought}
                await conn.send(chunk({"role": "assistant", **delta} if i == 0 else delta, None))
            if reply.endless and tokens:
                # As fast as the client reads: the events built once, sent in blocks.
                await conn.send(chunk({"role": "assistant", "content": ""}, None))
                block = b"".join(chunk({"content": token}, None) for token in tokens)
                self._update(record, first_token_at=time.monotonic())
                for sent in itertools.count(len(tokens), len(tokens)):
                    await conn.send(block)
                    self._update(record, tokens_sent=sent)
            for i, token in enumerate(tokens):
                if reply.drop_after is not None and i >= reply.drop_after:
                    break
                if reply.bad_chunk_after is not None and i >= reply.bad_chunk_after:
                    break
                await wait_for_chunk(len(thoughts) + i)
                first = i == 0 and not thoughts
                delta = {"role": "assistant", "content": token} if first else {"content": token}
                await conn.send(chunk(delta, None))
                now = time.monotonic()
                self._update(record, tokens_sent=i + 1, first_token_at=record.first_token_at or now)
                if reply.hang_after is not None and i + 1 >= reply.hang_after:
                    await loop.create_future()  # until the client goes away
            if reply.bad_chunk_after is not None:
                await conn.send(b"zz\r\nnot a chunk\r\n")
                self._update(record, finished_at=time.monotonic())
                return False
            if reply.drop_after is not None:
                transport = conn.writer.transport
                transport.set_write_buffer_limits(high=0)
                await conn.writer.drain()  # what was sent arrives; then no terminator, no [DONE]
                self._update(record, finished_at=time.monotonic())
                transport.abort()
                return False
            if slot is not None:
                # The answer is generated: the slot is free before its last bytes are
                # sent, so a client that asks again on reading them finds it free.
                self._free_slot(slot)
            tail = chunk({"role": "assistant"} if not tokens else {}, finish_reason)
            if want_usage:
                usage["completion_tokens"] = completion_tokens
                usage["total_tokens"] = usage["prompt_tokens"] + completion_tokens
                self._priced(usage)
                sent = usage if reply.usage_body is None else reply.usage_body
                tail += _sse(
                    {**base, "object": "chat.completion.chunk", "choices": [], "usage": sent}
                )
            await conn.send(tail + _sse("[DONE]") + b"0\r\n\r\n")
            self._update(record, completed=True, finished_at=time.monotonic())
            return True
        except _Interrupted:  # a newer request took the slot: end without finish_reason
            await conn.send(_sse("[DONE]") + b"0\r\n\r\n")
            self._update(record, interrupted=True, finished_at=time.monotonic())
            return True

    def _priced(self, usage: dict[str, Any]) -> None:
        """usage.cost in USD, as OpenRouter reports it, when `report_cost` is set."""
        if self.report_cost is not None:
            per_in, per_out = self.report_cost
            cost = usage["prompt_tokens"] * per_in + usage["completion_tokens"] * per_out
            usage["cost"] = cost / 1_000_000

    # -- a finite server ---------------------------------------------------------------------

    def _quota(self, reply: Reply) -> Reply:
        """Count the request against `rate_limit`; announce what is left (x-ratelimit-*).

        Over the quota: a 429 without Retry-After (the headers said when to come back).
        """
        if self.rate_limit is None:
            return reply
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= self.rate_window:
                self._window_start, self._window_used = now, 0
            self._window_used += 1
            remaining = max(0, self.rate_limit - self._window_used)
            reset = max(0.0, self._window_start + self.rate_window - now)
            over = self._window_used > self.rate_limit
        headers = {
            "x-ratelimit-limit-requests": str(self.rate_limit),
            "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-reset-requests": f"{round(reset * 1000)}ms",
            **(reply.headers or {}),
        }
        if over:
            message = "Rate limit reached for requests"
            return Reply(status=429, error_message=message, headers=headers)
        return dataclasses.replace(reply, headers=headers)

    async def _take_slot(self, record: RecordedRequest, reply: Reply) -> tuple[_Slot | None, Reply]:
        """A slot for this request, or what the server does when none is free."""
        assert self.slots is not None
        if len(self._holders) >= self.slots:
            if self.over_limit in ("429", "503"):
                self._update(record, over_limit=True)
                status = int(self.over_limit)
                message = "no free slot" if status == 429 else "server busy: no free slot"
                return None, Reply(
                    status=status, retry_after=self.slot_retry_after, error_message=message
                )
            if self.over_limit == "interrupt":  # llama.cpp style: the oldest stream ends
                self._holders.pop(0).cut.set()
            else:  # queue: wait for a slot
                while len(self._holders) >= self.slots:
                    waiter = asyncio.get_running_loop().create_future()
                    self._slot_waiters.append(waiter)
                    await waiter
        slot = _Slot(record.index, asyncio.Event())
        self._holders.append(slot)
        return slot, reply

    def _free_slot(self, slot: _Slot) -> None:
        if slot in self._holders:
            self._holders.remove(slot)
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break


# -- command line --------------------------------------------------------------------------


def _write_ready_file(path: str, base_url: str) -> None:
    target = Path(path)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(base_url + "\n")
    temporary.replace(target)  # atomic: a reader never sees half a URL


def _run_child(fake: FakeOpenAI, command: list[str]) -> int:
    env = {**os.environ, "COUNCIL_BASE_URL": fake.base_url}
    try:
        child = subprocess.Popen(command, env=env)
    except OSError as exc:
        print(f"fake_openai: cannot run {command[0]!r}: {exc}", file=sys.stderr)
        return 127

    def forward(signum: int, frame: object) -> None:
        # From a terminal, Ctrl-C already reached the child (same process group).
        with contextlib.suppress(OSError, ValueError):
            if os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp():
                return
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = signal.signal(signal.SIGINT, forward)
    try:
        code = child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    return code if code >= 0 else 128 - code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fake_openai", description="A fake OpenAI-compatible server."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds to the first token")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between tokens")
    parser.add_argument("--tokens", type=int, default=12, help="words in the default reply")
    parser.add_argument(
        "--hang-after", type=int, help="stream this many words of each reply, then hang"
    )
    parser.add_argument(
        "--num-ctx", type=int, help="cut prompts to this many tokens without a word (Ollama)"
    )
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    parser.add_argument("--ready-file", help="write the base URL here once listening")
    parser.add_argument(
        "--run", nargs=argparse.REMAINDER, metavar="CMD", help="run CMD against a random port"
    )
    args = parser.parse_args(argv)
    default = Reply(
        ttft=args.ttft, token_delay=args.token_delay, tokens=args.tokens, hang_after=args.hang_after
    )

    def log(line: str) -> None:
        print(f"fake_openai: {line}", file=sys.stderr, flush=True)

    quiet = args.quiet or args.run is not None  # the child's output stays readable
    port = 0 if args.run is not None else args.port
    fake = FakeOpenAI(args.host, port, default=default, log=None if quiet else log)
    fake.num_ctx = args.num_ctx

    def ready() -> None:
        if args.ready_file:
            _write_ready_file(args.ready_file, fake.base_url)
        print(f"fake OpenAI server on {fake.base_url}", file=sys.stderr, flush=True)

    if args.run is not None:
        if not args.run:
            parser.error("--run needs a command")
        fake.start()
        try:
            ready()
            return _run_child(fake, args.run)
        finally:
            fake.stop()

    async def foreground() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, fake.request_stop)
        await fake.serve(on_ready=ready)

    try:
        asyncio.run(foreground())
    except KeyboardInterrupt:  # a Ctrl-C before the handlers were set
        pass
    except OSError as exc:  # e.g. the port is taken
        print(f"fake_openai: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
