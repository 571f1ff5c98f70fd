"""The history as the `history`, `show` and `stats` commands read it: each call opens and closes it.

runs = list_runs(limit=20, preset=None, since=None)
run, calls = find_run("6742a1")
report = compute_stats(by="persona", since=None)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from council.store.db import HistoryDB
from council.store.stats import GROUPINGS, StatsReport, build_stats

__all__ = [
    "GROUPINGS",
    "StatsReport",
    "compute_stats",
    "delete_run",
    "export_runs",
    "find_run",
    "list_runs",
    "prune_runs",
]


def list_runs(*, limit: int, preset: str | None, since: float | None) -> list[sqlite3.Row]:
    """Recent runs, newest first."""
    with HistoryDB.open() as history:
        return history.runs(limit=limit, preset=preset, since=since)


def find_run(run_id: str) -> tuple[dict[str, Any], list[sqlite3.Row]]:
    """A run by its id (or a unique start of it) and its calls; UsageError if there is none."""
    with HistoryDB.open() as history:
        run = history.find_run(run_id)
        return run, history.calls(run["id"])


def delete_run(run_id: str) -> str:
    """Delete one run and its calls; its full id."""
    with HistoryDB.open() as history:
        run = history.find_run(run_id)
        history.delete(run["id"])
    return str(run["id"])


def export_runs() -> Iterator[dict[str, Any]]:
    """Every run, oldest first, with its calls."""
    with HistoryDB.open() as history:
        yield from history.export()


def prune_runs(older_than: float) -> int:
    """Delete runs started before `older_than` (unix time); how many went."""
    with HistoryDB.open() as history:
        removed = history.prune(older_than)
        history.db.execute("VACUUM")  # give the space back, and drop deleted text for good
    return removed


def compute_stats(*, by: str, since: float | None) -> StatsReport:
    """Latency, first token, errors and tokens per persona, model or endpoint."""
    with HistoryDB.open() as history:
        return build_stats(history, by=by, since=since)
