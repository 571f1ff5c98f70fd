"""The JSON body of a chat completion request, built once for every way a call is sent.

A streamed call (`client.py`) and a line of a Batch API file (`app/batch_api.py`, and
`council batch prepare` for a self-hosted batch runner) send the same body, so that a
batch asks exactly what a direct call would. Imports nothing: `prepare` never loads
the SDK.

    chat_body(call, {"response_format"}, stream=False)
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

__all__ = ["CHAT_COMPLETIONS_URL", "chat_body"]

# Where a chat completion goes, as a Batch API request line names it.
CHAT_COMPLETIONS_URL = "/v1/chat/completions"


def chat_body(call: Any, fields: Collection[str], *, stream: bool) -> dict[str, Any]:
    """The body for `call` (a ChatRequest); `fields` the optional ones to send.

    Optional fields are `stream_options` (streamed calls only) and `response_format`
    (when the call has one); `temperature` and `max_tokens` go when the call sets them.
    """
    body: dict[str, Any] = {"model": call.model, "messages": list(call.messages)}
    if stream:
        body["stream"] = True
    if call.temperature is not None:
        body["temperature"] = call.temperature
    if call.max_tokens is not None:
        body["max_tokens"] = call.max_tokens
    if stream and "stream_options" in fields:
        body["stream_options"] = {"include_usage": True}
    if "response_format" in fields and call.response_format is not None:
        body["response_format"] = call.response_format
    # More model options (`-o`), sent as given: the server says what it does not take.
    for key, value in (getattr(call, "options", None) or {}).items():
        body.setdefault(key, value)
    return body
