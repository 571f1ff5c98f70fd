"""Model options from `-o KEY VALUE` (temperature, top_p, seed, ...), for the request body.

A value that reads as JSON (a number, true/false, null, a list or an object) is
sent as that; anything else as the text typed. Unknown keys are sent as given:
endpoints differ in what they accept, and the server is the one to say. Keys
council itself sets (the model, the messages, streaming) are refused here, so
that an option cannot quietly break every call.

    parse_model_options([("temperature", "0.2"), ("stop", "END")])
    # {"temperature": 0.2, "stop": "END"}
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from council.errors import UsageError

__all__ = ["check_model_options", "parse_model_options"]

# Set by council for every call; the flag to use instead, where there is one.
_RESERVED = {
    "model": "use --model",
    "messages": "the messages are council's; use --system or --context",
    "stream": "council always streams",
    "stream_options": "council sets it where the endpoint accepts it",
    "response_format": "council asks the arbiter for JSON where the endpoint accepts it",
    "n": "council reads one answer per call",
}
# Options whose value must be a number (int: a whole one), or the server rejects every call.
_NUMBERS = {"temperature": float, "top_p": float, "presence_penalty": float}
_NUMBERS |= {"frequency_penalty": float, "max_tokens": int, "seed": int}
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _value(text: str) -> Any:
    """`text` as JSON when it is a number, a boolean, null, a list or an object; else itself."""
    try:
        value = json.loads(text, parse_constant=lambda name: name)  # NaN, Infinity: text
    except ValueError:
        return text
    if isinstance(value, str):  # '"quoted"' was meant as text: keep what was typed
        return text
    return value


def _check_number(key: str, value: Any, text: str) -> None:
    kind = _NUMBERS.get(key)
    if kind is None:
        return
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if not is_number or not math.isfinite(value) or (kind is int and not isinstance(value, int)):
        noun = "a whole number" if kind is int else "a number"
        raise UsageError(f"-o {key} {text}: {key} takes {noun}", f"e.g. -o {key} 1")
    if key == "max_tokens" and value < 1:
        raise UsageError(f"-o max_tokens {text}: must be at least 1", "e.g. -o max_tokens 800")


def parse_model_options(pairs: list[tuple[str, str]] | None) -> dict[str, Any]:
    """The options by key, the last one winning.

    Raises UsageError for a key council sets itself, or a value the key cannot take.
    """
    options: dict[str, Any] = {}
    for key, text in pairs or []:
        value = _value(text)
        _check(key, value, text)
        options[key] = value
    return options


def check_model_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options given as values (the Python API's `options={...}`), checked as `-o` checks them."""
    for key, value in options.items():
        _check(str(key), value, json.dumps(value) if not isinstance(value, str) else value)
    return {str(key): value for key, value in options.items()}


def _check(key: str, value: Any, text: str) -> None:
    if not _KEY.match(key):
        raise UsageError(
            f"-o {key!r}: not an option name", "give -o KEY VALUE, e.g. -o temperature 0.2"
        )
    if key in _RESERVED:
        raise UsageError(f"-o {key}: council sets {key} itself", _RESERVED[key])
    _check_number(key, value, text)
