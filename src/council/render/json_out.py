"""JSON for programs: one final document (`--json`) or the event stream (`--jsonl`)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any, TextIO

from council.engine.events import Event, event_to_dict
from council.engine.plan import DeliberationPlan, OraclePlan
from council.engine.results import DeliberationResult, OracleResult
from council.render.safe_text import json_safe

__all__ = ["JsonlWriter", "deliberation_document", "dumps", "event_line", "oracle_document"]


def dumps(data: Any, *, indent: int | None = 2) -> str:
    """JSON for programs: every text exactly as it was, escaped so a terminal obeys none of it."""
    return json_safe(json.dumps(data, ensure_ascii=False, indent=indent))


def oracle_document(result: OracleResult) -> dict[str, Any]:
    """query, personas, answers with their metrics, errors, the answer, run metrics.

    `answer` has the shape deliberate's has (`text`, `persona`), its `text` null when
    there is no synthesis; `synthesis` (the arbiter's call, as before) is kept for one
    release so that scripts reading it have time to move to `answer`.
    """
    plan = result.plan
    synthesis = result.synthesis
    return {
        "run_id": result.run_id,
        "command": "oracle",
        "status": result.status,
        "exit_code": result.exit_code,
        "query": plan.query,
        "model": plan.endpoint.model,
        "endpoint": plan.endpoint.host,
        "personas": [p.name for p in plan.personas],
        "answers": [_placed(a.to_dict(), plan) for a in result.answers],
        "errors": [f.to_dict() for f in result.failures],
        "answer": result.answer_record,
        "synthesis": synthesis.to_dict() if synthesis is not None else None,  # deprecated
        "metrics": {
            "wall": round(result.wall, 4),
            "sum_of_calls": round(result.sum_of_calls, 4),
            "max_concurrency": plan.max_concurrency,
            "limit_changes": result.limit_changes,
        },
        # --vote and --rank (null without them); the reviewers' calls as answers are.
        "vote": result.vote.to_dict() if result.vote is not None else None,
        "ranking": result.ranking.to_dict() if result.ranking is not None else None,
        "bias": result.bias.to_dict() if result.bias is not None else None,
        "reviews": [_placed(r.to_dict(), plan) for r in result.reviews.values()],
        # --escalate (null without): the first panel's decision, the calls it saved.
        "escalation": result.escalation.to_dict() if result.escalation is not None else None,
        **_costs(result),
    }


def _costs(result: OracleResult | DeliberationResult) -> dict[str, Any]:
    """The run's cost (null: unknown) and its budget (null: none), at the document's end."""
    cost = result.cost_usd
    return {
        "cost_usd": None if cost is None else round(cost, 8),
        "budget": result.budget.to_dict() if result.budget is not None else None,
    }


def _placed(answer: dict[str, Any], plan: OraclePlan | DeliberationPlan) -> dict[str, Any]:
    """An answer's dict with the model and endpoint host its member was asked on."""
    model, host = plan.where(answer["persona"])
    return {**answer, "model": model, "endpoint": host}


def _placed_round(kept: dict[str, Any], plan: DeliberationPlan) -> dict[str, Any]:
    return {**kept, "answers": [_placed(a, plan) for a in kept["answers"]]}


def deliberation_document(result: DeliberationResult) -> dict[str, Any]:
    """The answer, every kept round with its verdict, the timeline and the run's metrics."""
    plan = result.plan
    return {
        "run_id": result.run_id,
        "command": "deliberate",
        "status": result.status,
        "exit_code": result.exit_code,
        "stop_reason": result.stop_reason,
        "query": plan.query,
        "model": plan.endpoint.model,
        "endpoint": plan.endpoint.host,
        "personas": [p.name for p in plan.personas],
        "arbiter": plan.arbiter.name,
        "arbiter_fallback": [p.name for p in plan.arbiter_fallback],
        "settings": {
            "rounds": plan.rounds,
            "threshold": plan.threshold,
            "speculative": plan.speculative,
            "max_wasted_tokens": plan.max_wasted_tokens,
            "max_concurrency": plan.max_concurrency,
        },
        "answer": result.answer_record,
        "rounds": [_placed_round(r.to_dict(), plan) for r in result.rounds],
        "failed_round": result.failed_round.to_dict() if result.failed_round else None,
        "discarded_rounds": result.discarded_rounds,
        "timeline": [c.to_dict() for c in result.timeline],
        "metrics": {
            "wall": round(result.wall, 4),
            "sequential_estimate": round(result.sequential_estimate, 4),
            "saved": round(result.sequential_estimate - result.wall, 4),
            "wasted_tokens": result.wasted_tokens,
            "speculation_skipped": result.speculation_skipped,
            "limit_changes": result.limit_changes,
            "wasted_cost_usd": _rounded(result.wasted_cost_usd),
        },
        # --escalate (null without): the first panel's decision, the calls it saved.
        "escalation": result.escalation.to_dict() if result.escalation is not None else None,
        **_costs(result),
    }


def _rounded(cost: float | None) -> float | None:
    return None if cost is None else round(cost, 8)


# The wall clock minus the monotonic one, read once: read afresh for every event, a
# thread preempted between the two reads would put a later event a few ms before an
# earlier one.
_wall_offset: float | None = None


def wall_time(monotonic: float) -> str:
    """When a `time.monotonic()` instant was, by the wall clock: ISO 8601 in UTC, to the
    millisecond, as the history writes its times."""
    global _wall_offset
    if _wall_offset is None:
        _wall_offset = time.time() - time.monotonic()
    return datetime.fromtimestamp(_wall_offset + monotonic, UTC).isoformat(timespec="milliseconds")


def event_line(event: Event) -> dict[str, Any]:
    """An event as its `--jsonl` line: `type`, `run_id`, `at` (monotonic seconds, for
    durations), `time` (when it happened, ISO 8601 UTC), then the event's own fields."""
    line: dict[str, Any] = {}
    for key, value in event_to_dict(event).items():
        line[key] = value
        if key == "at":
            line["time"] = wall_time(event.at)
    return line


class JsonlWriter:
    """Writes every event as one JSON line, flushed at once, so a reader sees it live."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        self.stream.write(dumps(event_line(event), indent=None) + "\n")
        self.stream.flush()
