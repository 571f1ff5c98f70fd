"""How a setting's value reads to a person: YAML booleans, lists joined, inline personas by name.

Shared by every place that prints settings (`config show`, `presets show`, a dry run's
sources); a display concern, so it lives with the renderers, not with the settings.
"""

from __future__ import annotations

from typing import Any

__all__ = ["display_value"]


def display_value(value: Any) -> str:
    """A setting as a person reads it: YAML booleans, lists joined, inline personas by name."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, list):
        return ", ".join(display_value(item) for item in value)
    if isinstance(value, dict):
        return str(value.get("name", "(inline)"))
    return str(value)
