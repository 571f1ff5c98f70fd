"""A `--via batch-api` run in the history, as a direct `council batch` is recorded.

    recording = ApiRunRecording(bus, plan, label="batch of tickets.jsonl")
    recording.started()                  # the run's row
    recording.line(item_line)            # each item line's calls, as it is written
    recording.finished(exit_code, interrupted=False)

The provider tells each call's answer, tokens and model, but not when it ran: a call's
latency is unknown (NULL in the history, left out of `stats`' latencies), never 0.
Call ids are the direct path's (`ITEM/r1-PERSONA`), so `council stats` groups them alike.
"""

from __future__ import annotations

import time
from typing import Any, cast

from council.engine.events import (
    CallFailed,
    CallFinished,
    CallStarted,
    EventBus,
    RunFinished,
    RunStarted,
)
from council.engine.model import CallOutcome, new_run_id, status_of
from council.engine.plan import DeliberationPlan, OraclePlan
from council.errors import EXIT_INTERRUPTED

__all__ = ["ApiRunRecording"]


class ApiRunRecording:
    """The events of one batch-API run, for the recorder (and any other subscriber)."""

    def __init__(self, bus: EventBus, plan: OraclePlan | DeliberationPlan, *, label: str) -> None:
        self.bus = bus
        self.plan = plan
        self.label = label
        self.run_id = new_run_id()
        self.started_at = time.monotonic()
        self.model = plan.endpoint.model

    def started(self) -> None:
        self.started_at = time.monotonic()
        self.bus.emit(
            RunStarted(
                run_id=self.run_id,
                command="batch",
                query=self.label,
                personas=tuple(p.name for p in self.plan.personas),
                model=self.model,
                endpoint_host=self.plan.endpoint.host,
            )
        )

    def line(self, line: dict[str, Any]) -> None:
        """Every call of one item line: its answers, then its failures."""
        item = str(line.get("id"))
        for answered, calls in ((True, line.get("answers") or []), (False, line.get("errors"))):
            for call in calls or []:
                persona = str(call.get("persona") or "")
                if not persona:
                    continue  # not a call (an item-wide error)
                call_id = f"{item}/r1-{persona}"
                self.bus.emit(
                    CallStarted(
                        run_id=self.run_id,
                        call_id=call_id,
                        persona=persona,
                        model=str(call.get("model") or self.model),
                    )
                )
                outcome = _outcome(persona, call, answered)
                event = CallFinished if answered else CallFailed
                self.bus.emit(
                    event(run_id=self.run_id, call_id=call_id, persona=persona, outcome=outcome)
                )

    def finished(self, exit_code: int, *, interrupted: bool) -> None:
        status = "interrupted" if interrupted else status_of(exit_code)
        if interrupted and not exit_code:
            exit_code = EXIT_INTERRUPTED
        wall = time.monotonic() - self.started_at
        self.bus.emit(
            RunFinished(run_id=self.run_id, status=status, exit_code=exit_code, wall=wall)
        )


def _outcome(persona: str, call: dict[str, Any], answered: bool) -> CallOutcome:
    # The provider does not say how long a call took: None (unknown), never 0.
    unknown = cast(float, None)
    if answered:
        return CallOutcome(
            persona=persona,
            text=str(call.get("text") or ""),
            latency=unknown,
            tokens_in=call.get("tokens_in"),
            tokens_out=call.get("tokens_out"),
            finish_reason=call.get("finish_reason"),
            reasoning=call.get("reasoning"),
        )
    return CallOutcome(
        persona=persona,
        error_kind=str(call.get("error_kind") or "batch_error"),
        message=str(call.get("message") or ""),
        latency=unknown,
    )
