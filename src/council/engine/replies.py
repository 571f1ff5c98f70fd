"""Reading JSON out of a model's reply: the objects in it, wherever they stand (in code
fences, after prose), and the loose values models write in them ("yes", "85%").

Shared by everything that asks a model for JSON: verdicts (`convergence.py`),
ballots (`ballots.py`), rankings (`ranking.py`).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["as_bool", "as_confidence", "first_json_object", "json_objects"]


def json_objects(text: str) -> list[Any]:
    """Every JSON object that starts somewhere in `text`, in order of appearance."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    index = text.find("{")
    while index != -1:
        try:
            value, end = decoder.raw_decode(text, index)
        except json.JSONDecodeError:
            index = text.find("{", index + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        index = text.find("{", end)
    return found


def as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "no"):
        return False
    return None


def as_confidence(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip().rstrip("%")) / (100 if "%" in value else 1)
        except ValueError:
            return None
    if not isinstance(value, int | float):
        return None
    if 1 < value <= 100:  # "confidence": 85 means 85 %
        value = value / 100
    return min(1.0, max(0.0, float(value)))


def first_json_object(text: str, key: str) -> dict[str, Any] | None:
    """The first JSON object in `text` with `key` (fenced, or with prose around it); None."""
    return next((o for o in json_objects(text) if key in o), None)
