"""One question to N personas at once, gathered into one result.

Every persona call runs in one task group; a persona that fails is recorded
and the others go on. With an arbiter, its synthesis follows the answers. The
result object is filled in as events happen, so whoever holds it (the CLI on
Ctrl-C, for instance) always has everything that finished so far.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from council.endpoint import CallError, Completion, EndpointClient
from council.events import (
    CallCancelled,
    CallFailed,
    CallFinished,
    CallRetrying,
    CallStarted,
    EventBus,
    FirstToken,
    RunFinished,
    RunStarted,
    TextDelta,
)
from council.plan import CallSpec, OraclePlan, build_synthesis_call
from council.results import Answer, CallOutcome, Failure, OracleResult

__all__ = ["OracleRun", "new_run_id"]


def new_run_id() -> str:
    """A short, time-ordered run id: seconds since the epoch (hex) plus randomness."""
    return f"{int(time.time()):08x}{uuid.uuid4().hex[:6]}"


class _CallReporter:
    """Turns one call's progress into events (the endpoint's CallObserver)."""

    def __init__(self, run: OracleRun, call: CallSpec) -> None:
        self.run = run
        self.call = call
        self.started_at: float | None = None
        self.tokens_streamed = 0

    def _ids(self) -> dict[str, Any]:
        c = self.call
        return {
            "run_id": self.run.run_id,
            "call_id": c.call_id,
            "persona": c.persona,
            "round": c.round,
            "role": c.role,
        }

    def on_start(self) -> None:
        self.started_at = time.monotonic()
        self.run.bus.emit(CallStarted(**self._ids(), model=self.call.model))

    def on_first_token(self, ttft: float) -> None:
        self.run.bus.emit(FirstToken(**self._ids(), ttft=ttft))

    def on_delta(self, text: str) -> None:
        self.tokens_streamed += 1
        if self.run.bus.listening:  # a delta per token: skip building events nobody reads
            self.run.bus.emit(TextDelta(**self._ids(), text=text))

    def on_retry(self, attempt: int, error: CallError, wait: float) -> None:
        self.tokens_streamed = 0
        self.run.bus.emit(
            CallRetrying(
                **self._ids(),
                attempt=attempt,
                error_kind=error.kind,
                message=error.message,
                wait=wait,
            )
        )

    def elapsed(self) -> float:
        return 0.0 if self.started_at is None else time.monotonic() - self.started_at

    def finished(self, completion: Completion) -> Answer:
        self.run.bus.emit(
            CallFinished(
                **self._ids(),
                text=completion.text,
                tokens_in=completion.tokens_in,
                tokens_out=completion.tokens_out,
                latency=completion.latency,
                ttft=completion.ttft,
                retries=completion.retries,
            )
        )
        return Answer(
            self.call.persona,
            completion.text,
            completion.latency,
            completion.ttft,
            completion.tokens_in,
            completion.tokens_out,
            completion.retries,
            role=self.call.role,
        )

    def failed(self, error: CallError) -> Failure:
        self.run.bus.emit(
            CallFailed(
                **self._ids(),
                error_kind=error.kind,
                message=error.message,
                retries=error.retries,
                latency=self.elapsed(),
            )
        )
        return Failure(self.call.persona, error.kind, error.message, error.retries, self.call.role)

    def cancelled(self) -> Failure:
        self.run.bus.emit(
            CallCancelled(**self._ids(), tokens_out=self.tokens_streamed, latency=self.elapsed())
        )
        return Failure(
            self.call.persona, "cancelled", "interrupted before it finished", 0, self.call.role
        )


class OracleRun:
    """Runs an OraclePlan: every persona at once, then the optional synthesis.

    Usage:
        run = OracleRun(plan, bus)
        await run.execute()          # or asyncio.run(run.execute())
        run.result.exit_code

    `result` is usable at any time, including after the run was cancelled.
    """

    def __init__(self, plan: OraclePlan, bus: EventBus, run_id: str | None = None) -> None:
        self.plan = plan
        self.bus = bus
        self.run_id = run_id or new_run_id()
        self.result = OracleResult(run_id=self.run_id, plan=plan)
        self._started = time.monotonic()

    async def execute(self) -> OracleResult:
        plan = self.plan
        self._started = time.monotonic()
        self.bus.emit(
            RunStarted(
                run_id=self.run_id,
                command="oracle",
                query=plan.query,
                personas=tuple(p.name for p in plan.personas),
                model=plan.endpoint.model,
                endpoint_host=plan.endpoint.host,
            )
        )
        try:
            async with EndpointClient(plan.endpoint, plan.max_concurrency) as client:
                async with asyncio.TaskGroup() as group:
                    for call in plan.calls:
                        group.create_task(self._call(client, call))
                if plan.arbiter is not None and self.result.answers:
                    await self._synthesize(client)
        except asyncio.CancelledError:
            self.result.interrupted = True
            raise
        finally:
            self.result.wall = time.monotonic() - self._started
            self.bus.emit(
                RunFinished(
                    run_id=self.run_id,
                    status=self.result.status,
                    exit_code=self.result.exit_code,
                    wall=self.result.wall,
                )
            )
        return self.result

    def _record(self, call: CallSpec, outcome: CallOutcome) -> None:
        if call.role == "arbiter":
            self.result.synthesis = outcome
        else:
            self.result.outcomes[call.persona] = outcome

    async def _call(self, client: EndpointClient, call: CallSpec) -> None:
        """Run one call and record its outcome, whatever it is, cancellation included."""
        reporter = _CallReporter(self, call)
        try:
            completion = await client.complete(call, reporter)
        except CallError as error:
            self._record(call, reporter.failed(error))
        except asyncio.CancelledError:
            self._record(call, reporter.cancelled())
            raise
        else:
            self._record(call, reporter.finished(completion))

    async def _synthesize(self, client: EndpointClient) -> None:
        answers = [(a.persona, a.text) for a in self.result.answers]
        failed = [f.persona for f in self.result.failures]
        await self._call(client, build_synthesis_call(self.plan, answers, failed))
