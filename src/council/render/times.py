"""Wall-clock times as programs and people read them: ISO 8601, in UTC, with its offset.

The history stores unix times (seconds, a float); every `--json` document, export and
message that shows one says it as `2026-11-29T11:42:31+00:00`, whatever the local zone.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

__all__ = ["iso_time"]


def iso_time(seconds: Any) -> str | None:
    """A unix time as ISO 8601 in UTC to the second; None for no time (or not a number:
    a history edited by hand)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return None
    if not math.isfinite(seconds):
        return None
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="seconds")
