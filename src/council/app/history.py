"""The history as the `history`, `show` and `stats` commands read it: each call opens and closes it.

runs = list_runs(limit=20, preset=None, since=None, search="monorepo")
run, calls = find_run("6742a1")           # or None: the last run; "-2": the one before
later = resumed_by(run["id"])             # the run that went on with it, if one did
failures = run_failures(run, calls)       # what went wrong, per failed call
report = compute_stats(by="persona", since=None)
bias = compute_bias_stats(since=None)    # `stats --bias`: reviewer bias by persona and model
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from council.errors import UsageError
from council.store.bias_stats import BiasStats, build_bias_stats
from council.store.db import HistoryDB
from council.store.liveness import RunLock
from council.store.stats import GROUPINGS, StatsReport, build_stats

__all__ = [
    "GROUPINGS",
    "BiasStats",
    "RunFailure",
    "StatsReport",
    "compute_bias_stats",
    "compute_escalation_stats",
    "compute_stats",
    "delete_run",
    "export_runs",
    "find_run",
    "list_runs",
    "prune_runs",
    "resume_command",
    "resumed_by",
    "run_failures",
]


def list_runs(
    *, limit: int, preset: str | None, since: float | None, search: str | None = None
) -> list[dict[str, Any]]:
    """Recent runs, newest first, a dead one's status "died"; `search`: by their question."""
    with HistoryDB.open() as history:
        runs = history.runs(limit=limit, preset=preset, since=since, search=search)
        return [_as_it_stands(history, dict(run)) for run in runs]


def find_run(run_id: str | None) -> tuple[dict[str, Any], list[sqlite3.Row]]:
    """A run and its calls; UsageError if there is none.

    `run_id`: its id or a unique start of it; None the last run; "-N" the Nth newest
    ("-1" the last, "-2" the one before).
    """
    with HistoryDB.open() as history:
        run = _as_it_stands(history, history.find_run(_counted_back(history, run_id)))
        return run, history.calls(run["id"])


def _counted_back(history: HistoryDB, run_id: str | None) -> str:
    """The id `run_id` stands for: itself, or the id of the run it counts back to."""
    back = 1 if run_id is None else _steps_back(run_id)
    if back is None:
        return str(run_id)
    found = history.runs(limit=1, offset=back - 1)
    if found:
        return str(found[0]["id"])
    total = len(history.runs())
    if not total:
        raise UsageError("no runs recorded yet", "run a council first, e.g. council oracle 'q'")
    raise UsageError(
        f"there {'is' if total == 1 else 'are'} only {total} run{'s' * (total != 1)} "
        f"in the history; -{back} goes back too far",
        f"see them with 'council history -n {total}'",
    )


def _steps_back(run_id: str) -> int | None:
    """N for "-N"; None for an id. Anything else starting with "-" is an unknown option."""
    if not run_id.startswith("-"):
        return None
    digits = run_id[1:]
    if digits.isdecimal() and digits.isascii() and int(digits) > 0:
        return int(digits)
    raise UsageError(
        f"no such option: {run_id}",
        "give a run's id, or -N for the Nth newest run (see 'council show --help')",
    )


def resumed_by(run_id: str) -> dict[str, Any] | None:
    """The run that went on with `run_id` last: its latest resume, followed down the chain
    of resumes of resumes. None: nobody resumed it."""
    later: dict[str, Any] | None = None
    seen = {run_id}
    with HistoryDB.open() as history:
        while resumes := history.resumes_of(run_id):
            run_id = resumes[-1]["id"]
            if run_id in seen:  # a history edited by hand: a loop
                break
            seen.add(run_id)
            later = _as_it_stands(history, history.find_run(run_id))
    return later


def _as_it_stands(history: HistoryDB, run: dict[str, Any]) -> dict[str, Any]:
    """The run with status "died" where its row says running but no process holds its lock.

    A `kill -9` (or a power cut) leaves the row at "running" forever; the kernel frees
    the run's lock (store/liveness.py) whatever ends the process. The row is left as
    written: only what is shown changes.
    """
    if run["status"] == "running" and not RunLock.held(history.path, run["id"]):
        run["status"] = "died"
    return run


@dataclass(frozen=True)
class RunFailure:
    """One failed call of a recorded run. `message` None: not recorded (the run kept
    no texts, or ended before it could write its document)."""

    persona: str
    round: int | None
    role: str
    kind: str | None
    message: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "persona": self.persona,
            "round": self.round,
            "role": self.role,
            "error_kind": self.kind,
            "message": self.message,
        }


def _recorded_messages(node: Any, round_number: int | None, found: dict[Any, str]) -> None:
    """Every failure in a run's `--json` document by (persona, round): the errors of an
    oracle, of each round, a failed verdict or synthesis."""
    if isinstance(node, list):
        for item in node:
            _recorded_messages(item, round_number, found)
        return
    if not isinstance(node, dict):
        return
    if isinstance(node.get("round"), int) and not isinstance(node.get("round"), bool):
        round_number = node["round"]
    persona, message = node.get("persona"), node.get("message")
    if node.get("error_kind") and isinstance(persona, str) and isinstance(message, str):
        item = node.get("item")
        if isinstance(item, str):  # a batch's: its calls are "ITEM/CALL"
            found.setdefault((item, persona), message)
            return
        found.setdefault((persona, round_number), message)
        found.setdefault((persona, None), message)
    for value in node.values():
        _recorded_messages(value, round_number, found)


def run_failures(run: dict[str, Any], calls: list[sqlite3.Row]) -> list[RunFailure]:
    """The failed calls of a run (its call rows), with the messages its document kept."""
    messages: dict[Any, str] = {}
    with contextlib.suppress(TypeError, ValueError):  # no document, or one edited by hand
        _recorded_messages(json.loads(run.get("document") or "null"), None, messages)
    failed = [call for call in calls if call["status"] == "failed"]
    return [
        RunFailure(
            persona=call["persona"],
            round=call["round"],
            role=call["role"],
            kind=call["error_kind"],
            message=messages.get((_item_of(call["call_id"]), call["persona"]))
            or messages.get((call["persona"], call["round"]))
            or messages.get((call["persona"], None)),
        )
        for call in failed
    ]


def _item_of(call_id: str) -> str | None:
    """The batch item a call was made for (its id is "ITEM/CALL"); None: not a batch's."""
    return call_id.rsplit("/", 1)[0] if "/" in call_id else None


def resume_command(run: dict[str, Any]) -> str | None:
    """The command that goes on with `run`, if it can be resumed (None: it cannot)."""
    from council.engine.model import Mode
    from council.store.resume import RESUMABLE

    resumable = run["command"] == Mode.DELIBERATE and run["status"] in RESUMABLE
    return f"council resume {run['id']}" if resumable and run["store_text"] else None


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


def compute_escalation_stats(*, since: float | None) -> dict[str, Any] | None:
    """Escalating runs (`--escalate`) summed up as `council eval` sums its own: runs
    escalated, calls saved of those the full council makes, and what the shadow runs
    measured. None: no escalating run is in the history."""
    from council.app.escalate import escalation_metrics, escalation_summary
    from council.store.documents import documents_holding

    with HistoryDB.open() as history:
        found = [
            {"metrics": {"escalation": escalation_metrics(document["escalation"])}}
            for document in documents_holding(history, '"calls_saved"', since=since)
            if _escalation(document.get("escalation"))
        ]
    return escalation_summary(found)


def _escalation(value: Any) -> bool:
    """Whether a stored `escalation` object holds what the summary reads."""
    needed = ("escalated", "calls_saved", "calls_full", "cost_saved_usd", "shadow", "changed")
    if not isinstance(value, dict) or not all(key in value for key in needed):
        return False
    counts = (value["calls_saved"], value["calls_full"])
    return all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts)


def compute_bias_stats(*, since: float | None) -> BiasStats:
    """Reviewer bias (position, length, self-preference) per persona and per model."""
    with HistoryDB.open() as history:
        return build_bias_stats(history, since=since)
