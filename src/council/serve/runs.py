"""One request's council, run on the server's event loop, and every run the server holds.

`Runs` admits a request under `--max-runs` (councils running at once) and `--max-queue`
(requests waiting for one of them): past both, 429. Each admitted request gets a
`CouncilRun`: the engine in a task of its own, its events queued for the response
as they happen, its tokens summed over every call (cancelled ones included), and
the run recorded in the history as `command: serve`. Cancelling the task (the
client went away, the deadline passed, the server is shutting down) cancels every
call of the run at once; what finished is recorded all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from council.app.run import plan_endpoints, start_recording, stderr_console, stop_recording
from council.config.settings import history_disabled_by_env
from council.engine.events import CallEnded, Event, EventBus
from council.engine.plan import DeliberationPlan, OraclePlan
from council.engine.results import DeliberationResult, OracleResult
from council.errors import EXIT_TERMINATED
from council.render.json_out import deliberation_document, oracle_document
from council.render.markdown import deliberation_markdown, oracle_markdown
from council.serve.councils import Council, Councils
from council.serve.protocol import ApiError

__all__ = ["CouncilRun", "Runs", "Usage"]

# Seconds a client is told to wait when the queue is full (Retry-After).
RETRY_AFTER = 1


class Usage:
    """Tokens summed over every call a run made, as each call ends."""

    def __init__(self) -> None:
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.calls = 0

    def add(self, event: Event) -> None:
        if isinstance(event, CallEnded):
            self.calls += 1
            self.prompt_tokens += event.outcome.tokens_in or 0
            self.completion_tokens += event.outcome.tokens_out or 0

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


class CouncilRun:
    """One council run for one request: events as they come, the result when it ends."""

    def __init__(
        self,
        council: Council,
        plan: OraclePlan | DeliberationPlan,
        *,
        record: Any,
        deadline: float | None,
    ) -> None:
        from council.engine.deliberation import DeliberationRun
        from council.engine.oracle import OracleRun

        self.council = council
        self.plan = plan
        self.deadline = deadline
        self.bus = EventBus()
        self.usage = Usage()
        self.events: asyncio.Queue[Event | None] = asyncio.Queue()
        self.bus.subscribe(self.usage.add)
        self.bus.subscribe(self.events.put_nowait)
        self.engine: Any = (
            DeliberationRun(plan, self.bus)
            if isinstance(plan, DeliberationPlan)
            else OracleRun(plan, self.bus)
        )
        self.recorder = start_recording(record, "serve", plan.to_dict(), self.bus)
        self.timed_out = False
        self.cancelled = False
        self.task: asyncio.Task[None] | None = None

    @property
    def result(self) -> OracleResult | DeliberationResult:
        return self.engine.result

    @property
    def run_id(self) -> str:
        return self.result.run_id

    async def execute(self) -> None:
        """Run the engine to its end, the deadline or a cancel; then record the run."""
        try:
            async with asyncio.timeout(self.deadline):
                await self.engine.execute()
        except TimeoutError:
            self.timed_out = True
            self._interrupted()
        except asyncio.CancelledError:
            # Not raised on: the run ends here, recorded, and whoever cancelled it
            # (a client gone, the server stopping) awaits this task to its end.
            self.cancelled = True
            self._interrupted()
        finally:
            self.events.put_nowait(None)
            await asyncio.shield(asyncio.to_thread(self._record))

    def _interrupted(self) -> None:
        result = self.result
        result.interrupted = True
        result.interrupted_exit = EXIT_TERMINATED
        if isinstance(result, DeliberationResult):
            result.stop_reason = "interrupted"

    def document(self) -> dict[str, Any]:
        """The run's `--json` document."""
        result = self.result
        if isinstance(result, DeliberationResult):
            return deliberation_document(result)
        return oracle_document(result)

    def _record(self) -> None:
        recorder = self.recorder
        if recorder is None:
            return
        result = self.result
        try:
            if isinstance(result, DeliberationResult):
                markdown = deliberation_markdown(result)
                metrics: dict[str, Any] = {
                    "rounds": len(result.rounds),
                    "converged": int(result.stop_reason == "converged"),
                    "wasted_tokens": result.wasted_tokens,
                    "cost_usd": result.cost_usd,
                }
            else:
                markdown = oracle_markdown(result)
                metrics = {"cost_usd": result.cost_usd}
            recorder.finish(
                answer=result.answer, document=self.document(), markdown=markdown, metrics=metrics
            )
        finally:
            stop_recording(recorder, stderr_console())

    async def stream(self) -> AsyncIterator[Event]:
        """The run's events, as they happen, until it ends."""
        while True:
            event = await self.events.get()
            if event is None:
                return
            yield event


class Runs:
    """Every council the server is running: admission, the deadline, history, shutdown."""

    def __init__(
        self,
        councils: Councils,
        *,
        max_runs: int,
        max_queue: int,
        deadline: float | None,
        record: bool = True,
    ) -> None:
        self.councils = councils
        self.max_runs = max_runs
        self.max_queue = max_queue
        self.deadline = deadline
        self.record = record and not history_disabled_by_env()
        self._slots = asyncio.Semaphore(max_runs)
        self._admitted = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.started = 0

    @contextlib.asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """Hold one of the `--max-runs` slots, waiting in the queue; 429 when that is full."""
        if self._admitted >= self.max_runs + self.max_queue:
            raise ApiError(
                429,
                f"this server is running {self.max_runs} councils and has "
                f"{self.max_queue} waiting, its most (--max-runs, --max-queue); retry shortly",
                type="requests",
                code="rate_limit_exceeded",
                headers={"retry-after": str(RETRY_AFTER)},
            )
        self._admitted += 1
        try:
            async with self._slots:
                yield
        finally:
            self._admitted -= 1

    async def start(self, council: Council, plan: OraclePlan | DeliberationPlan) -> CouncilRun:
        """The run of `plan`, started in a task of its own."""
        if _needs_serving(plan):  # the embedded model: started once, off the loop
            plan = await asyncio.to_thread(self.councils.served_plan, plan)
        record = (
            council.request.record_options(no_history=False, no_store_text=False)
            if self.record
            else None
        )
        run = CouncilRun(council, plan, record=record, deadline=self.deadline)
        task = asyncio.get_running_loop().create_task(run.execute())
        run.task = task
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        self.started += 1
        return run

    async def close(self, grace: float = 0.0) -> None:
        """Let running councils end within `grace` seconds, cancel the rest, wait for them
        (each records itself as it ends)."""
        pending = set(self.tasks)
        if pending and grace > 0:
            _, pending = await asyncio.wait(pending, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    def endpoints(self) -> list[Any]:
        return self.councils.endpoints()


def _needs_serving(plan: OraclePlan | DeliberationPlan) -> bool:
    return any(e.local_model_path for e in plan_endpoints(plan))
