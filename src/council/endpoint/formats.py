"""How a reply in JSON is asked of a server, stepping down as far as the server takes.

The engine asks for the strictest form, a JSON schema
(`{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}`: OpenAI,
llama.cpp's llama-server, vLLM and Ollama constrain the reply to it). A server that
refuses it is asked, for the rest of the run, one step lower:

    0  {"type": "json_schema", "json_schema": {..., "schema": S}}
    1  {"type": "json_object", "schema": S}   llama-cpp-python (the embedded model) takes
                                              this and constrains the reply to S
    2  {"type": "json_object"}                any JSON object
    3  (no response_format)                   the caller's tolerant reader copes

One `FormatLadder` per endpoint client: what a server refused is remembered for
every later call to it, whatever form that call started from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["FormatLadder", "field_unknown", "format_level", "says_form_refused"]

# Error codes of a field unknown to the server (OpenAI's shape; pydantic's type).
_UNKNOWN = frozenset({"unknown_parameter", "unrecognized_request_argument", "extra_forbidden"})

# The steps, strictest first; NONE sends no response_format at all.
SCHEMA, OBJECT_WITH_SCHEMA, OBJECT, NONE = range(4)
LEVEL_NAMES = ("json_schema", "json_object with its schema", "json_object", "none")


def _schema_of(response_format: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if response_format.get("type") == "json_schema":
        inner = response_format.get("json_schema")
        schema = inner.get("schema") if isinstance(inner, Mapping) else None
        return schema if isinstance(schema, Mapping) else None
    schema = response_format.get("schema")
    return schema if isinstance(schema, Mapping) else None


def format_level(response_format: Mapping[str, Any] | None) -> int:
    """Which step a response_format is (anything unknown is sent as given: step 0)."""
    if response_format is None:
        return NONE
    kind = response_format.get("type")
    if kind == "json_object":
        return OBJECT_WITH_SCHEMA if _schema_of(response_format) is not None else OBJECT
    return SCHEMA


def at_level(response_format: Mapping[str, Any] | None, level: int) -> dict[str, Any] | None:
    """`response_format` asked no stricter than `level` (None: send none)."""
    if response_format is None or level >= NONE:
        return None
    own = format_level(response_format)
    if level <= own:
        return dict(response_format)
    schema = _schema_of(response_format)
    if level == OBJECT_WITH_SCHEMA and schema is not None:
        return {"type": "json_object", "schema": dict(schema)}
    return {"type": "json_object"}


def field_unknown(body: object) -> bool:
    """The server refused `response_format` as a field it does not know at all (no form
    of it will do: drop it at once), not one of its forms (`response_format.type`)."""
    if not isinstance(body, Mapping):
        return False
    inner = body.get("error")
    error = inner if isinstance(inner, Mapping) else body
    if error.get("param") == "response_format" and error.get("code") in _UNKNOWN:
        return True
    detail = body.get("detail")
    return any(
        isinstance(item, Mapping)
        and item.get("type") in _UNKNOWN
        and list(item.get("loc") or ())[-1:] == ["response_format"]
        for item in (detail if isinstance(detail, list) else ())
    )


# A refusal of a form, as servers word it without naming the field in a structured way:
# llama.cpp's server before it took schemas answered 500 "response_format type must be
# one of "text" or "json_object", but got: json_schema".
_FORM_REFUSED = re.compile(
    r"response_format.{0,80}\b(must be|should be|not supported|unsupported|invalid|unknown)"
    r"|\b(unsupported|invalid)\b.{0,40}response_format",
    re.IGNORECASE | re.DOTALL,
)


def _messages(body: object) -> list[str]:
    if isinstance(body, str):
        return [body]
    if not isinstance(body, Mapping):
        return []
    inner = body.get("error")
    error = inner if isinstance(inner, Mapping) else body
    found = [error["message"]] if isinstance(error.get("message"), str) else []
    detail = body.get("detail")
    found += (
        [d["msg"] for d in detail or () if isinstance(d, Mapping) and isinstance(d.get("msg"), str)]
        if isinstance(detail, list)
        else []
    )
    return found


def says_form_refused(status: int, body: object, asked: Mapping[str, Any] | None) -> bool:
    """A 400, 422 or 500 whose message refuses the response_format form `asked`, when
    that form carries a schema (plain `json_object` is judged as any other field).

    Only the schema forms are judged by their message: stepping down from one costs
    nothing a server takes, while a message that merely quotes the request must not
    drop JSON mode.
    """
    if status not in (400, 422, 500) or format_level(asked) > OBJECT_WITH_SCHEMA:
        return False
    if field_unknown(body):
        return False  # the field itself is unknown: dropped, not stepped down
    return any(_FORM_REFUSED.search(message) for message in _messages(body))


class FormatLadder:
    """The strictest step an endpoint has not refused; shared by every call to it."""

    def __init__(self) -> None:
        self.floor = SCHEMA

    def effective(self, response_format: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """What to send for a call that asks for `response_format`."""
        return at_level(response_format, self.floor)

    def refused(self, sent: Mapping[str, Any] | None) -> bool:
        """The server refused `sent`: step below it. False when there is no step left
        (the caller then drops the field as any other refused one)."""
        level = format_level(sent)
        if level >= OBJECT:
            self.floor = NONE
            return False
        self.floor = max(self.floor, level + 1)
        return True

    @property
    def name(self) -> str:
        """The step in use, as a user reads it (`council endpoint check`, the notes)."""
        return LEVEL_NAMES[self.floor]
