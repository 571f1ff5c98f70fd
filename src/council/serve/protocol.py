"""What a client sends and what it gets when it went wrong, in OpenAI's shapes.

A chat completion request is read into a `ChatCall`: the model id, the latest user
message (the question), the system messages (appended to every persona's system
prompt, as `--system` is), the earlier turns (the conversation so far), the model
options that pass through as `-o` options do, and whether to stream. Anything
malformed is an `ApiError` with status 400 and OpenAI's error body.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "PASSED_OPTIONS",
    "ApiError",
    "ChatCall",
    "error_body",
    "read_chat_call",
]

# Request fields passed to every call of the council as model options (`-o KEY VALUE`).
# `max_completion_tokens` is OpenAI's newer name for `max_tokens`.
PASSED_OPTIONS = (
    "temperature",
    "top_p",
    "max_tokens",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
)
ROLES = ("system", "developer", "user", "assistant", "tool")


@dataclass(frozen=True)
class ChatCall:
    """One chat completion request, checked."""

    model: str
    question: str
    system: str | None = None
    # Earlier turns, oldest first: (role, text) with role "user" or "assistant".
    conversation: tuple[tuple[str, str], ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    stream: bool = False


class ApiError(Exception):
    """An error answered as OpenAI answers it: a status and `{"error": {...}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, code=self.code, param=self.param)


def error_body(
    message: str, *, type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _bad(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code="invalid_value" if param else None)


def read_chat_call(raw: bytes) -> ChatCall:
    """The request body read and checked; ApiError(400) says what is wrong, and where."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _bad("the request body is not JSON; send a chat completion request") from None
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _bad("'model' is required: one of the ids GET /v1/models lists", "model")
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise _bad("'stream' must be true or false", "stream")
    n = body.get("n")
    if n is not None and n != 1:
        raise _bad("'n' must be 1: a council gives one answer", "n")
    system, conversation, question = _read_messages(body.get("messages"))
    return ChatCall(
        model=model.strip(),
        question=question,
        system=system,
        conversation=conversation,
        options=_read_options(body),
        stream=bool(stream),
    )


def _read_messages(
    messages: Any,
) -> tuple[str | None, tuple[tuple[str, str], ...], str]:
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty list of messages", "messages")
    systems: list[str] = []
    turns: list[tuple[str, str]] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise _bad(f"{where} must be an object with 'role' and 'content'", where)
        role = message.get("role")
        if role not in ROLES:
            raise _bad(f"{where}.role must be one of {', '.join(ROLES)}", f"{where}.role")
        text = _text_of(message.get("content"), f"{where}.content")
        if role in ("system", "developer"):
            if text.strip():
                systems.append(text.strip())
        elif role == "tool":
            turns.append(("user", f"(tool result) {text}"))
        else:
            turns.append((role, text))
    if not turns or turns[-1][0] != "user":
        raise _bad("the last message must be the user's: the question to ask", "messages")
    question = turns[-1][1]
    if not question.strip():
        raise _bad("the last user message is empty: ask a question", "messages")
    system = "\n\n".join(systems) if systems else None
    return system, tuple(turns[:-1]), question


def _text_of(content: Any, where: str) -> str:
    """A message's text: a string, or OpenAI's list of parts with only text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise _bad(f"{where}: only text parts are supported", where)
            text = part.get("text")
            if not isinstance(text, str):
                raise _bad(f"{where}: a text part's 'text' must be a string", where)
            texts.append(text)
        return "\n".join(texts)
    raise _bad(f"{where} must be a string or a list of text parts", where)


def _read_options(body: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name in PASSED_OPTIONS:
        value = body.get(name)
        if value is None:
            continue
        if name in ("max_tokens", "seed"):
            least = 0 if name == "seed" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise _bad(f"'{name}' must be a whole number of at least {least}", name)
        elif name == "stop":
            ok = isinstance(value, str) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            )
            if not ok:
                raise _bad("'stop' must be a string or a list of strings", name)
        elif (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise _bad(f"'{name}' must be a number", name)
        options[name] = value
    limit = body.get("max_completion_tokens")
    if limit is not None and "max_tokens" not in options:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise _bad(
                "'max_completion_tokens' must be a whole number of at least 1",
                "max_completion_tokens",
            )
        options["max_tokens"] = limit
    return options
