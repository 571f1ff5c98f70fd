"""JSON for programs: one final document (`--json`) or the event stream (`--jsonl`)."""

from __future__ import annotations

import json
from typing import Any, TextIO

from council.engine.events import Event, event_to_dict
from council.engine.plan import DeliberationPlan, OraclePlan
from council.engine.results import DeliberationResult, OracleResult
from council.render.safe_text import json_safe

__all__ = ["JsonlWriter", "deliberation_document", "dumps", "oracle_document"]


def dumps(data: Any, *, indent: int | None = 2) -> str:
    """JSON for programs: every text exactly as it was, escaped so a terminal obeys none of it."""
    return json_safe(json.dumps(data, ensure_ascii=False, indent=indent))


def oracle_document(result: OracleResult) -> dict[str, Any]:
    """query, personas, answers with their metrics, errors, synthesis, run metrics."""
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
        "synthesis": synthesis.to_dict() if synthesis is not None else None,
        "metrics": {
            "wall": round(result.wall, 4),
            "sum_of_calls": round(result.sum_of_calls, 4),
            "max_concurrency": plan.max_concurrency,
            "limit_changes": result.limit_changes,
        },
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
    judged = result.verdict_round
    verdict = judged.verdict if judged is not None else None
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
        "answer": None
        if verdict is None or judged is None
        else {
            "text": verdict.synthesis,
            "round": judged.number,
            "judged_by": judged.arbiter.persona if judged.arbiter is not None else None,
            "converged": verdict.converged,
            "confidence": verdict.confidence,
            "dissent": list(verdict.dissent),
        },
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
        },
    }


class JsonlWriter:
    """Writes every event as one JSON line, flushed at once, so a reader sees it live."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        self.stream.write(dumps(event_to_dict(event), indent=None) + "\n")
        self.stream.flush()
