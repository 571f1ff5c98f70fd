"""The agreement map's fields as JSON-schema properties (engine/agreement.py reads the map).

Apart from the map's classes, so that the verdict's schema (`prompts.py`), which every
plan's module imports, does not create them: a run that maps no agreement never needs them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AGREEMENT_PROPERTIES"]

_STRINGS = {"type": "array", "items": {"type": "string"}}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    # Strict schemas (OpenAI's) want every key required and nothing else allowed.
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


_SIDE = _object({"members": _STRINGS, "position": {"type": "string"}})
# The map's fields as JSON-schema properties, added to the verdict's schema.
AGREEMENT_PROPERTIES: dict[str, Any] = {
    "consensus": _STRINGS,
    "contradictions": {
        "type": "array",
        "items": _object(
            {
                "point": {"type": "string"},
                "sides": {"type": "array", "items": _SIDE},
                "assumption": {"type": "string"},
            }
        ),
    },
    "unique_insights": {
        "type": "array",
        "items": _object({"point": {"type": "string"}, "member": {"type": "string"}}),
    },
    "blind_spots": _STRINGS,
}
