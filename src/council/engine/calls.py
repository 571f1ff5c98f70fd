"""One model call as an engine sees it: run it, turn its progress into events, keep its outcome.

Shared by the oracle and the deliberation engines. A `CallReporter` is the
endpoint's CallObserver for one call; `run_call` runs the call and always ends
with exactly one outcome on the reporter (answer, failure, or cancellation),
whatever happened inside it, a bug included, so one call can never cost the
others theirs, and an engine that is cancelled half-way still knows what every
call did and what it cost. The reporter is the one place where what the
endpoint returned (a StreamResult or a CallError) becomes a CallOutcome, and it
measures the call's latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

from council.endpoint.client import CallError, EndpointClient, StreamResult
from council.endpoint.errors import internal_error
from council.endpoint.limiter import LimitChange
from council.engine.events import (
    CallCancelled,
    CallEnded,
    CallFailed,
    CallFinished,
    CallRetrying,
    CallStarted,
    EventBus,
    FirstToken,
    LimitChanged,
    ReasoningDelta,
    RunFinished,
    RunStarted,
    TextDelta,
)
from council.engine.model import CANCELLED, CallOutcome, CallSpec
from council.engine.plan import DeliberationPlan, OraclePlan
from council.engine.results import DeliberationResult, OracleResult

__all__ = ["CallReporter", "limit_changes_reported", "run_call", "run_finished", "run_started"]


class CallReporter:
    """Turns one call's progress into events and remembers when it ran and what it produced.

    `cancel_reason` is what a CallCancelled will say if the call is cancelled:
    an engine that cancels on purpose sets it first ("superseded"). `priority` is
    its place in the endpoint's queue: calls on the critical path (0) take a free
    slot before speculative ones (1).
    """

    def __init__(
        self, run_id: str, bus: EventBus, call: CallSpec, *, speculative: bool = False
    ) -> None:
        self.run_id = run_id
        self.bus = bus
        self.call = call
        self.speculative = speculative
        self.priority = 1 if speculative else 0
        self.asked_at = time.monotonic()  # when it first asked for a slot
        self.started_at: float | None = None  # time.monotonic(), when the call got a slot
        self.ended_at: float | None = None
        # Chunks of the current attempt, answer and reasoning (about a token each).
        self.tokens_streamed = 0
        self.outcome: CallOutcome | None = None
        self.cancel_reason = "interrupted"

    def _ids(self) -> dict[str, Any]:
        c = self.call
        return {
            "run_id": self.run_id,
            "call_id": c.call_id,
            "persona": c.persona,
            "round": c.round,
            "role": c.role,
        }

    # -- the endpoint's CallObserver -----------------------------------------------------

    def on_start(self) -> None:
        self.started_at = time.monotonic()
        self.bus.emit(
            CallStarted(**self._ids(), model=self.call.model, speculative=self.speculative)
        )

    def on_first_token(self, ttft: float) -> None:
        self.bus.emit(FirstToken(**self._ids(), ttft=ttft))

    def on_reasoning(self, text: str) -> None:
        self.tokens_streamed += 1
        if self.bus.listening:
            self.bus.emit(ReasoningDelta(**self._ids(), text=text))

    def on_delta(self, text: str) -> None:
        self.tokens_streamed += 1
        if self.bus.listening:  # a delta per token: skip building events nobody reads
            self.bus.emit(TextDelta(**self._ids(), text=text))

    def on_retry(self, attempt: int, error: CallError, wait: float) -> None:
        self.tokens_streamed = 0
        self.bus.emit(
            CallRetrying(
                **self._ids(),
                attempt=attempt,
                error_kind=error.kind,
                message=error.message,
                wait=wait,
            )
        )

    # -- outcomes --------------------------------------------------------------------------

    def elapsed(self) -> float:
        return 0.0 if self.started_at is None else time.monotonic() - self.started_at

    @property
    def tokens_spent(self) -> int:
        """Output tokens this call cost: the endpoint's count when known, else chunks streamed."""
        if self.outcome is not None and self.outcome.tokens_out is not None:
            return self.outcome.tokens_out
        return self.tokens_streamed

    def _outcome(self, **fields: Any) -> CallOutcome:
        return CallOutcome(persona=self.call.persona, role=self.call.role, **fields)

    def _end(self, event: type[CallEnded], outcome: CallOutcome, **extra: Any) -> CallOutcome:
        """Keep the call's outcome and report it on the bus.

        A call cancelled while still queued never started: it gets an outcome but no event.
        """
        self.ended_at = time.monotonic()
        self.outcome = outcome
        if self.started_at is not None:
            self.bus.emit(event(**self._ids(), outcome=outcome, **extra))
        return outcome

    def finished(self, stream: StreamResult) -> CallOutcome:
        answer = self._outcome(
            text=stream.text,
            # From on_start (when the call got a slot), retries included, without
            # the time a re-sent call waited for a slot again (that is `queued`).
            latency=max(0.0, self.elapsed() - max(0.0, stream.queued - self._queued_so_far())),
            ttft=stream.ttft,
            tokens_in=stream.tokens_in,
            tokens_out=stream.tokens_out,
            retries=stream.retries,
            finish_reason=stream.finish_reason,
            reasoning=stream.reasoning,
            queued=stream.queued,
            resends=stream.resends,
        )
        return self._end(CallFinished, answer)

    def reuse(self, answer: CallOutcome, from_run: str) -> CallOutcome:
        """Take an answer an earlier run of the same council already had, without a call."""
        self.started_at = time.monotonic()
        self.bus.emit(CallStarted(**self._ids(), model=self.call.model))
        return self._end(CallFinished, dataclasses.replace(answer, reused_from=from_run))

    def failed(self, error: CallError) -> CallOutcome:
        if self.started_at is None:  # it failed before it got a slot: still an event
            self.on_start()
        failure = self._outcome(
            error_kind=error.kind,
            message=error.message,
            retries=error.retries,
            latency=self.elapsed(),
            queued=error.queued or self._queued_so_far(),
        )
        return self._end(CallFailed, failure)

    def _queued_so_far(self) -> float:
        """Seconds waited for the first slot (all of it, when the call never got one)."""
        end = self.started_at if self.started_at is not None else time.monotonic()
        return max(0.0, end - self.asked_at)

    def cancelled(self) -> CallOutcome:
        message = (
            "cancelled: the council ended before it was needed"
            if self.cancel_reason == "superseded"
            else "interrupted before it finished"
        )
        stopped = self._outcome(
            error_kind=CANCELLED,
            message=message,
            latency=self.elapsed(),
            tokens_out=self.tokens_streamed,
            queued=self._queued_so_far(),
        )
        return self._end(CallCancelled, stopped, reason=self.cancel_reason)


async def run_call(client: EndpointClient, reporter: CallReporter) -> CallOutcome:
    """Run one call to its one outcome; on cancellation, record it as cancelled and re-raise.

    Nothing but cancellation leaves: a failure of any kind, a bug included (kind
    `internal`, its exception type in the message), is the call's outcome.
    """
    try:
        reporter.asked_at = time.monotonic()
        stream = await client.complete(reporter.call, reporter, reporter.priority)
    except CallError as error:
        return reporter.failed(error)
    except asyncio.CancelledError:
        reporter.cancelled()
        raise
    except Exception as exc:  # the endpoint should have classified it: a bug
        return reporter.failed(internal_error(exc))
    try:
        return reporter.finished(stream)
    except Exception as exc:
        return reporter.failed(internal_error(exc))


@contextlib.contextmanager
def limit_changes_reported(
    client: EndpointClient, bus: EventBus, run_id: str, kept: list[dict[str, Any]]
) -> Iterator[None]:
    """While a run goes, each change of its endpoint's limit is an event and kept in `kept`."""

    def report(change: LimitChange) -> None:
        kept.append(dataclasses.asdict(change))
        bus.emit(LimitChanged(run_id=run_id, **dataclasses.asdict(change)))

    client.limiter.listeners.append(report)
    try:
        yield
    finally:
        client.limiter.listeners.remove(report)


def run_started(run_id: str, command: str, plan: OraclePlan | DeliberationPlan) -> RunStarted:
    return RunStarted(
        run_id=run_id,
        command=command,
        query=plan.query,
        personas=tuple(p.name for p in plan.personas),
        model=plan.endpoint.model,
        endpoint_host=plan.endpoint.host,
    )


def run_finished(run_id: str, result: OracleResult | DeliberationResult) -> RunFinished:
    return RunFinished(
        run_id=run_id, status=result.status, exit_code=result.exit_code, wall=result.wall
    )
