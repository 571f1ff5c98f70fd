"""JSON for programs: one final document (`--json`) or the event stream (`--jsonl`)."""

from __future__ import annotations

import json
from typing import Any, TextIO

from council.events import Event, event_to_dict
from council.results import OracleResult

__all__ = ["JsonlWriter", "dumps", "oracle_document"]


def dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2)


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
        "answers": [a.to_dict() for a in result.answers],
        "errors": [f.to_dict() for f in result.failures],
        "synthesis": synthesis.to_dict() if synthesis is not None else None,
        "metrics": {
            "wall": round(result.wall, 4),
            "sum_of_calls": round(result.sum_of_calls, 4),
            "max_concurrency": plan.max_concurrency,
        },
    }


class JsonlWriter:
    """Writes every event as one JSON line, flushed at once, so a reader sees it live."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        self.stream.write(json.dumps(event_to_dict(event), ensure_ascii=False) + "\n")
        self.stream.flush()
