"""Stored `--json` documents read back for reports across runs (`council stats --bias`,
`--escalation`).

    for document in documents_holding(history, '"calls_saved"', since=None): ...

Only documents whose text holds `marker` are parsed: answers make documents long, and
most runs hold no such report. A document that is not a JSON object is skipped, never
an error; a run stored without its texts (`--no-store-text`) has none.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from council.store.db import HistoryDB

__all__ = ["documents_holding"]


def documents_holding(
    history: HistoryDB, marker: str, *, since: float | None = None
) -> Iterator[dict[str, Any]]:
    """Each stored document since `since` (unix time) whose text holds `marker`."""
    condition, parameters = ("started_at >= ?", (since,)) if since is not None else ("1 = 1", ())
    rows = history.db.execute(
        f"SELECT document FROM runs WHERE {condition} AND instr(document, ?) > 0",
        (*parameters, marker),
    ).fetchall()
    for row in rows:
        try:
            data = json.loads(row["document"] or "")
        except ValueError:
            continue
        if isinstance(data, dict):
            yield data
