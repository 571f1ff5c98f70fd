"""Reading what a server sends for a chat completion, validated at the edge.

Everything a server sends is untrusted input. A `StreamReader` takes the chunks of
a streamed answer (or one non-streamed completion), as the SDK decoded them from
JSON, checks their shape, and keeps the answer's text, its reasoning (apart from
the text), its finish reason and its token usage:

- a chunk or a field of the wrong shape (`[1,2,3]`, `42`, `"choices": ["x"]`,
  `"delta": "oops"`, `"content": 12345`) raises `ShapeError`; the client reports it
  as a failed attempt of kind `protocol`, retried like a truncated stream;
- a token count that is missing, negative, not an integer or not a number is None
  (unknown): a bad usage block never fails an answer and never reaches the history;
- text never holds a lone UTF-16 surrogate. JSON escapes let a server split a pair
  across chunks (`"\\ud83d"`, then `"\\ude00"`), and the SDK decodes each half on its
  own, so a high half that ends a piece is held back until the next piece, pairs are
  joined, and a half left alone becomes U+FFFD: the text can always be printed,
  written as JSON and stored, and the pieces add up to exactly the final text.

Usage:
    reader = StreamReader()
    for chunk in chunks:
        piece = reader.feed(chunk)          # Piece(text, reasoning): what is new, cleaned
    piece = reader.end()                    # a held-back half, if the stream ended on one
    reader.text, reader.reasoning, reader.finish_reason, reader.tokens_in, reader.tokens_out
    reader.tokens_cached                    # usage.prompt_tokens_details.cached_tokens
    reader.cost_usd                         # usage.cost (OpenRouter), None unless a number >= 0
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_TOKEN_COUNT",
    "Piece",
    "ShapeError",
    "StreamReader",
    "clean_text",
    "reported_cost",
    "token_count",
]

# Where a model's reasoning arrives, in order of preference: llama.cpp, DeepSeek and
# older vLLM say reasoning_content; OpenRouter, Ollama and newer vLLM say reasoning.
# A server sending both sends the same text twice, so only the first is read.
REASONING_KEYS = ("reasoning_content", "reasoning")
# A token count above this is not a count (and would not fit the history's integers).
MAX_TOKEN_COUNT = 2**53

# Streamed pieces kept apart before they are joined into one block (see _Joiner.add).
JOIN_EVERY = 256
_SURROGATE = re.compile("[\ud800-\udfff]")


class ShapeError(Exception):
    """A chunk or completion not shaped like the OpenAI chat completions API's."""


@dataclass(frozen=True)
class Piece:
    """What one chunk added: answer text and reasoning, each possibly empty."""

    text: str = ""
    reasoning: str = ""


def clean_text(text: str) -> str:
    """`text` with surrogate pairs joined and lone surrogates replaced by U+FFFD."""
    if not _SURROGATE.search(text):
        return text  # the common case, at the cost of one regex scan
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def token_count(value: object) -> int | None:
    """A usage count as sent, or None (unknown) when it is not a count at all."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():  # 12.0 from some servers; not nan/inf
        value = int(value)
    if isinstance(value, int) and 0 <= value <= MAX_TOKEN_COUNT:
        return value
    return None


def _kind(value: object) -> str:
    """What a JSON value is, for a message (never the value: it is the server's text)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ShapeError(f"{what} is {_kind(value)}, not an object")
    return value


class _Joiner:
    """Joins the pieces of one streamed text, holding back a high surrogate half."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0  # characters so far: the call's size cap reads it per chunk
        self._blocks: list[str] = []  # earlier pieces, joined JOIN_EVERY at a time
        self._held = ""

    def add(self, piece: str) -> str:
        """Take a piece as sent; return the text it adds, cleaned (maybe "")."""
        piece = self._held + piece
        self._held = ""
        if piece and "\ud800" <= piece[-1] <= "\udbff":
            piece, self._held = piece[:-1], piece[-1]  # its low half may be in the next piece
        piece = clean_text(piece)
        if piece:
            self.parts.append(piece)
            self.size += len(piece)
            if len(self.parts) >= JOIN_EVERY:
                # A piece is about a token, and a small string in a list takes some 60
                # bytes: joined in blocks, a long answer takes about its length.
                self._blocks.append("".join(self.parts))
                self.parts.clear()
        return piece

    def end(self) -> str:
        """The stream is over: a half still held back stays alone."""
        if not self._held:
            return ""
        self._held = ""
        self.parts.append("\ufffd")
        self.size += 1
        return "\ufffd"

    @property
    def text(self) -> str:
        return "".join([*self._blocks, *self.parts])


def _text_field(message: dict[str, Any], key: str) -> str:
    """A message's text field: a string, null, or a list of text parts (Mistral)."""
    value = message.get(key)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts: list[str] = []
        for part in value:
            text = _object(part, f"a part of '{key}'").get("text")
            if isinstance(text, str) and part.get("type", "text") == "text":
                texts.append(text)
        return "".join(texts)
    raise ShapeError(f"'{key}' is {_kind(value)}, not text")


class StreamReader:
    """Reads one attempt's chunks into its answer; see the module doc.

    `finish_reason` is the server's last non-empty one (None until one came);
    `tokens_in`/`tokens_out` are from the last usage block (None: unknown).
    """

    def __init__(self) -> None:
        self._text = _Joiner()
        self._reasoning = _Joiner()
        self.finish_reason: str | None = None
        self.tokens_in: int | None = None
        self.tokens_out: int | None = None
        self.tokens_cached: int | None = None  # of tokens_in, read from a prompt cache
        self.cost_usd: float | None = None  # the server's own price of the call (OpenRouter)

    @property
    def text(self) -> str:
        return self._text.text

    @property
    def reasoning(self) -> str:
        return self._reasoning.text

    @property
    def size(self) -> int:
        """Characters of answer and reasoning so far (kept without joining them)."""
        return self._text.size + self._reasoning.size

    def feed(self, chunk: object) -> Piece:
        """Read one streamed chunk (`choices[0].delta`); ShapeError if it is not one."""
        data = _object(chunk, "a chunk")
        self._usage(data)
        choices = data.get("choices")
        if choices is None or choices == []:  # a usage-only chunk, or a keep-alive
            return Piece()
        if not isinstance(choices, list):
            raise ShapeError(f"'choices' is {_kind(choices)}, not a list")
        choice = _object(choices[0], "a choice")
        delta = choice.get("delta")
        piece = self._message({} if delta is None else _object(delta, "'delta'"))
        self._finish(choice)
        return piece

    def feed_completion(self, body: object) -> Piece:
        """Read a whole non-streamed completion (`choices[0].message`), then end."""
        data = _object(body, "the answer")
        self._usage(data)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ShapeError(f"the answer's 'choices' is {_kind(choices)}, not a list of one")
        choice = _object(choices[0], "a choice")
        piece = self._message(_object(choice.get("message"), "'message'"))
        self._finish(choice)
        rest = self.end()
        return Piece(piece.text + rest.text, piece.reasoning + rest.reasoning)

    def end(self) -> Piece:
        """The stream is over; what a held-back surrogate half adds (U+FFFD), if any."""
        return Piece(self._text.end(), self._reasoning.end())

    def _message(self, message: dict[str, Any]) -> Piece:
        text = _text_field(message, "content")
        reasoning = ""
        for key in REASONING_KEYS:
            reasoning = _text_field(message, key)
            if reasoning:
                break
        return Piece(
            self._text.add(text) if text else "",
            self._reasoning.add(reasoning) if reasoning else "",
        )

    def _finish(self, choice: dict[str, Any]) -> None:
        reason = choice.get("finish_reason")
        if reason is None or reason == "":
            return
        if not isinstance(reason, str):
            raise ShapeError(f"'finish_reason' is {_kind(reason)}, not text")
        self.finish_reason = clean_text(reason)[:100]

    def _usage(self, data: dict[str, Any]) -> None:
        if "usage" not in data or data["usage"] is None:
            return
        usage = data["usage"]
        if not isinstance(usage, dict):
            usage = {}  # junk where the counts should be: they are unknown
        self.tokens_in = token_count(usage.get("prompt_tokens"))
        self.tokens_out = token_count(usage.get("completion_tokens"))
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        self.tokens_cached = token_count(cached)
        self.cost_usd = reported_cost(usage.get("cost"))


def reported_cost(value: object) -> float | None:
    """`usage.cost` as OpenRouter sends it (USD): a finite number of at least 0, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and 0 <= value <= MAX_TOKEN_COUNT else None
