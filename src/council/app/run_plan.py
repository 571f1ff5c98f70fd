"""One function runs a plan, whatever its mode, with what a run needs around the engine.

    ran = await run_plan(plan, record=RecordOptions(...), command="api")
    ran.result, ran.document, ran.usage, ran.run_id, ran.notes, ran.error

Around the engine: the endpoints' learned limits loaded before and kept after, the
recorder subscribed to its events and given the run's document at the end, the
calls' usage counted. It runs on the caller's event loop and writes nothing to the
terminal: the lines the CLI would say are in `notes`. Cancelling the task that awaits
it cancels every call of the run; what finished is recorded (as after Ctrl-C) and the
cancellation goes on up.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from council.app.limits import save_learned, seed_learned
from council.app.run import (
    close_recording,
    document_of,
    finish_recording,
    plan_endpoints,
    result_markdown,
    run_error,
    run_notes,
    start_recording,
    subscriber_errors_line,
)
from council.app.usage import Usage
from council.engine.events import EventBus
from council.engine.oracle import OracleRun
from council.engine.plan import DeliberationPlan, OraclePlan
from council.engine.results import DeliberationResult, OracleResult
from council.errors import CouncilError
from council.store.recorder import RecordOptions

if TYPE_CHECKING:
    from council.engine.budget import Budget
    from council.engine.deliberation import DeliberationRun
    from council.engine.model import ResumeState

__all__ = ["Ran", "command_of", "engine_for", "run_plan"]


@dataclass
class Ran:
    """A plan's run: its result and `--json` document, what its calls used, its history id
    (None: not recorded), the lines the CLI would say, and the error it ends with when
    nobody answered (`run_error`)."""

    result: OracleResult | DeliberationResult
    document: dict[str, Any]
    usage: Usage
    run_id: str | None = None
    notes: list[str] = field(default_factory=list)
    error: CouncilError | None = None


def command_of(plan: OraclePlan | DeliberationPlan) -> str:
    """The command that runs such a plan: "oracle" or "deliberate"."""
    return "deliberate" if isinstance(plan, DeliberationPlan) else "oracle"


def engine_for(
    plan: OraclePlan | DeliberationPlan,
    bus: EventBus,
    *,
    resume: ResumeState | None = None,
    budget: Budget | None = None,
) -> OracleRun | DeliberationRun:
    """The engine that runs `plan` (a deliberation's is loaded only for one)."""
    if isinstance(plan, DeliberationPlan):
        from council.engine.deliberation import DeliberationRun

        return DeliberationRun(plan, bus, resume=resume, budget=budget)
    return OracleRun(plan, bus, budget=budget)


async def run_plan(
    plan: OraclePlan | DeliberationPlan,
    *,
    bus: EventBus | None = None,
    record: RecordOptions | None = None,
    command: str | None = None,
    resume: ResumeState | None = None,
) -> Ran:
    """Run `plan` to its end on this loop; `bus` gets every event (the caller's subscribers
    first). `record`: how to keep it in the history (None: not at all, learned limits
    included); `command`: the name the history gives it (the plan's mode by default)."""
    bus = bus if bus is not None else EventBus()
    usage = Usage()
    bus.subscribe(usage.handle)
    endpoints = plan_endpoints(plan)
    seed_learned(endpoints)
    run = engine_for(plan, bus, resume=resume)
    recorder = start_recording(record, command or command_of(plan), plan.to_dict(), bus)
    notes: list[str] = []
    try:
        try:
            await run.execute()
        except asyncio.CancelledError:
            _stopped(run.result)
            finish_recording(recorder, run.result, document_of(run.result), _markdown(run))
            raise
        result = run.result
        document = document_of(result)
        finish_recording(recorder, result, document, _markdown(run))
    finally:
        line = close_recording(recorder)
        if line is not None:
            notes.append(line)
        if record is not None:  # no history keeps nothing, this included
            save_learned(endpoints)
    notes += run_notes(result)
    line = subscriber_errors_line(bus.errors)
    if line is not None:
        notes.append(line)
    run_id = recorder.run_id if recorder is not None and not recorder.problem else None
    return Ran(result, document, usage, run_id, notes, run_error(result))


def _stopped(result: OracleResult | DeliberationResult) -> None:
    """A run cancelled from outside ends as Ctrl-C ends one: interrupted."""
    result.interrupted = True
    if isinstance(result, DeliberationResult):
        result.stop_reason = "interrupted"


def _markdown(run: OracleRun | DeliberationRun) -> str:
    return result_markdown(run.result)
