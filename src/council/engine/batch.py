"""The fan-out of `council batch`: many items, each an oracle or a deliberation, within limits.

    run = BatchRun(template_plan, bus, on_item=write_line, items_at_once=8, label="tickets.jsonl")
    await run.execute(jobs)          # jobs: any iterable of BatchJob, read lazily
    run.progress.done, run.exit_code

Jobs are taken from the iterable only as room frees up, so an input of any length
costs the memory of the items in flight, never of the input. Each item runs as its
own OracleRun or DeliberationRun, but on endpoint clients shared by the whole
batch: every call to an endpoint goes through that endpoint's one adaptive
limiter, whose ceiling is `--max-concurrency`, so the calls in flight never exceed
it however many items run, and a 429 or 503 with Retry-After pauses and narrows
the whole batch instead of failing items. At most `items_at_once` items run at a
time, which bounds the tasks, connections waiting and memory.

Every item's call events reach the batch's bus under the batch's run id, with the
item's id in front of the call id (`"{item}/{call}"`), so the history holds one
run with every item's calls, each call id unique. An item that ends, answered or
failed, is handed to `on_item` at once; an item still running when the batch is
cancelled (Ctrl-C) is dropped, so that the next run asks it again whole.
Budgets (`max_tokens_total`) stop the batch from starting items; those in flight
finish. An endpoint that stops answering (every call fails to connect) pauses the
batch instead of failing its items (`outage.py`): no item starts, the items that
failed for it wait and are asked again whole once a probe gets an answer; only an
outage longer than `outage_limit` seconds fails them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from council.config.defaults import DEFAULT_OUTAGE_LIMIT
from council.endpoint.errors import CallError, internal_error
from council.endpoint.pool import EndpointPool
from council.engine.budget import Budget
from council.engine.clients import EndpointClients
from council.engine.cost import total_cost
from council.engine.deliberation import DeliberationRun
from council.engine.events import (
    CallEnded,
    CallEvent,
    CallRetrying,
    Event,
    EventBus,
    FirstToken,
    ReasoningDelta,
    RoundDiscarded,
    RunFinished,
    RunStarted,
    TextDelta,
)
from council.engine.lifecycle import limit_changes_reported
from council.engine.model import CallOutcome, new_run_id, status_of
from council.engine.oracle import OracleRun
from council.engine.outage import Outage, failed_for_want_of_connection
from council.engine.plan import DeliberationPlan, OraclePlan
from council.engine.results import (
    BatchProgress,
    DeliberationResult,
    OracleResult,
    batch_exit_code,
)
from council.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, ErrorKind

__all__ = ["CLIENT_OPTIONS", "BatchJob", "BatchRun", "ItemOutcome"]

# How a batch's endpoint clients are made: each call asks for its whole answer in one
# JSON completion (`stream=False`). Nobody in a batch reads tokens as they come (the
# progress view counts items and calls, `--out` gets whole answers, and `--jsonl` is
# refused), and one JSON body costs the client a fraction of the CPU of a stream's
# chunks (benchmarks/batch_bench.py measures both). What a batch gives up: the time to
# first token, and the first-token limit (the total deadline still holds).
CLIENT_OPTIONS: dict[str, Any] = {"stream": False}

# Per-token events nobody in a batch reads: not forwarded (and, as the item's bus is not
# `listening`, mostly never built).
_UNFORWARDED = (TextDelta, ReasoningDelta, FirstToken)
# An item failed by an outage is asked again at most this often (an endpoint that
# answers its probe but refuses every chat connection must not loop for ever).
MAX_ITEM_REASKS = 10


@dataclass(frozen=True)
class BatchJob:
    """One item to run: its place in the input, its id, its plan, and the caller's record of it."""

    seq: int
    key: str
    plan: OraclePlan | DeliberationPlan
    payload: Any = None
    # Plans run after `plan`, in turn, as parts of the same item on the same clients (a
    # judged pair's second order): one line, one retry, one set of calls for them all.
    then: tuple[OraclePlan | DeliberationPlan, ...] = ()


@dataclass
class ItemOutcome:
    """How one item ended: the engine's result, every call it made, and its wall time."""

    job: BatchJob
    result: OracleResult | DeliberationResult | None
    calls: list[CallOutcome]
    wall: float
    error: str | None = None  # the item could not run at all (a bug): why
    # The results of the job's `then` plans, in order (`result` is its first plan's).
    then: list[OracleResult | DeliberationResult] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every call answered (an item with any failure is redone by --retry-failed)."""
        results = [self.result, *self.then]
        return self.error is None and all(r is not None and r.exit_code == EXIT_OK for r in results)

    def metrics(self) -> dict[str, Any]:
        """What the item cost: wall time, tokens (None when the endpoint reported none), calls."""
        ins = [c.tokens_in for c in self.calls if c.tokens_in is not None]
        outs = [c.tokens_out for c in self.calls if c.tokens_out is not None]
        return {
            "latency": round(self.wall, 4),
            "tokens_in": sum(ins) if ins else None,
            "tokens_out": sum(outs) if outs else None,
            "calls": len(self.calls),
            "retries": sum(c.retries for c in self.calls),
            "resends": sum(c.resends for c in self.calls),
            # USD of the known part; None when no call's price is known (never 0 for unknown).
            "cost_usd": total_cost([c.cost_usd for c in self.calls]),
        }


class _ItemBus(EventBus):
    """An item engine's bus: its call events go on to the batch's, renamed into the batch.

    The item's own run events (started, finished, verdicts, limit changes) are not the
    batch's: the batch reports its own; a discarded speculative round goes on, naming
    the item. Nobody reads per-token events in a batch.
    """

    def __init__(self, batch: BatchRun, key: str) -> None:
        super().__init__()
        self.batch = batch
        self.item = key
        self.prefix = f"{key}/"  # a later part of the item (`BatchJob.then`): "{key}/{n}/"
        self.calls: list[CallOutcome] = []

    @property
    def listening(self) -> bool:
        return False

    def emit(self, event: Event) -> None:
        if isinstance(event, RoundDiscarded):  # its finished calls are not kept: this item's
            self.batch.bus.emit(
                dataclasses.replace(event, run_id=self.batch.run_id, item=self.item)
            )
            return
        if not isinstance(event, CallEvent) or isinstance(event, _UNFORWARDED):
            return
        if isinstance(event, CallEnded):
            self.calls.append(event.outcome)
        renamed = dataclasses.replace(
            event, run_id=self.batch.run_id, call_id=self.prefix + event.call_id
        )
        self.batch.call_event(renamed)


class BatchRun:
    """Runs items, each an oracle or a deliberation, on shared clients under one limit.

    `plan` is any item's plan (its personas and endpoints are every item's): it opens
    the clients. `on_item(outcome)` is called as each item ends; an exception from it
    (the output cannot be written) stops the batch. `on_dropped(job)` is called for a
    job taken but never finished (cancelled half way, or held back by a budget).
    """

    def __init__(
        self,
        plan: OraclePlan | DeliberationPlan,
        bus: EventBus,
        *,
        on_item: Callable[[ItemOutcome], None],
        items_at_once: int,
        on_dropped: Callable[[BatchJob], None] = lambda job: None,
        label: str = "",
        max_tokens_total: int | None = None,
        budget: Budget | None = None,
        progress: BatchProgress | None = None,
        run_id: str | None = None,
        outage_limit: float = DEFAULT_OUTAGE_LIMIT,
        on_outage: Callable[[], None] = lambda: None,
        pool: EndpointPool | None = None,
    ) -> None:
        self.plan = plan
        self.pool = pool if pool is not None else EndpointPool()  # a batch of its own
        self.outage_limit = outage_limit
        self.on_outage = on_outage  # the endpoint went down or came back (progress.down_since)
        self.outage: Outage | None = None
        self.bus = bus
        self.on_item = on_item
        self.on_dropped = on_dropped
        self.items_at_once = max(1, items_at_once)
        self.label = label
        self.max_tokens_total = max_tokens_total
        # --budget-usd: one budget for every item's calls; once it has refused a call, no
        # further item starts (those in flight finish within what is left).
        self.budget = budget
        self.progress = progress or BatchProgress()
        self.run_id = run_id or new_run_id()
        self.interrupted = False
        self.interrupted_exit = EXIT_INTERRUPTED
        self.ended_by: Exception | None = None  # an error that ended the batch early
        self.limit_changes: list[dict[str, Any]] = []

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return self.interrupted_exit
        p = self.progress
        return batch_exit_code(p.done + p.skipped - p.skipped_failed, p.failed + p.skipped_failed)

    async def execute(self, jobs: Iterable[BatchJob]) -> BatchProgress:
        plan = self.plan
        self.progress.started_at = time.monotonic()
        self.bus.emit(
            RunStarted(
                run_id=self.run_id,
                command="batch",
                query=self.label,
                personas=tuple(p.name for p in plan.personas),
                model=plan.endpoint.model,
                endpoint_host=plan.endpoint.host,
            )
        )
        try:
            async with EndpointClients(plan, self.pool, **CLIENT_OPTIONS) as clients:
                own = clients.all[0].limiter
                limiters = list({id(c.limiter): c.limiter for c in clients.all}.values())
                self.progress.ceiling = own.ceiling
                self.progress.sample = lambda: (sum(lim.in_flight for lim in limiters), own.limit)
                self.outage = Outage(_prober(clients), self.outage_limit, self.progress)
                self.outage.on_change = self.on_outage
                try:
                    with limit_changes_reported(
                        clients.all, self.bus, self.run_id, self.limit_changes
                    ):
                        await self._fan_out(clients, jobs)
                finally:
                    await self.outage.close()
        except asyncio.CancelledError:
            self.interrupted = True
            raise
        except Exception as exc:  # --strict's bad line, an output that cannot be written
            self.ended_by = exc
            raise
        finally:
            self.progress.current()
            self.progress.sample = None
            self.bus.emit(self._finished())
        return self.progress

    def _finished(self) -> RunFinished:
        code = self.exit_code
        if self.ended_by is not None:
            code = getattr(self.ended_by, "exit_code", EXIT_FAILURE)
        status = "interrupted" if self.interrupted else status_of(code)
        return RunFinished(
            run_id=self.run_id, status=status, exit_code=code, wall=self.progress.elapsed()
        )

    def _over_budget(self) -> str | None:
        limit = self.max_tokens_total
        if limit is not None and self.progress.tokens >= limit:
            return "--max-tokens-total"
        if self.budget is not None and self.budget.stopped:
            return "--budget-usd"
        return None

    async def _fan_out(self, clients: EndpointClients, jobs: Iterable[BatchJob]) -> None:
        """Start items as room frees up. A bad input line under --strict, or an output that
        cannot be written, ends the batch with that error itself (not a group of one)."""
        room = asyncio.Semaphore(self.items_at_once)
        try:
            async with asyncio.TaskGroup() as group:
                for job in jobs:  # read one at a time: the input is never held whole
                    await room.acquire()
                    if self.outage is not None:
                        await self.outage.gate()  # none starts while the endpoint is down
                    stop = self._over_budget()  # tokens counted while waiting for room
                    if stop is not None:
                        room.release()
                        self.progress.stopped_by = stop
                        self.on_dropped(job)
                        break
                    self.progress.running += 1
                    group.create_task(self._item(clients, job, room))
        except BaseExceptionGroup as group:
            raise group.exceptions[0] from None

    async def _item(self, clients: EndpointClients, job: BatchJob, room: asyncio.Semaphore) -> None:
        started = time.monotonic()
        result: OracleResult | DeliberationResult | None = None
        then: list[OracleResult | DeliberationResult] = []
        error: str | None = None
        bus = _ItemBus(self, job.key)
        try:
            for asked in range(MAX_ITEM_REASKS + 1):
                if asked:
                    bus = _ItemBus(self, job.key)  # an item asked again keeps its last calls
                began = time.monotonic()
                result = await self._run_item(clients, job.plan, bus)
                then = []
                for part, plan in enumerate(job.then, 2):
                    bus.prefix = f"{job.key}/{part}/"  # its call ids stay unique in the run
                    then.append(await self._run_item(clients, plan, bus))
                bus.prefix = f"{job.key}/"
                ended = all(r.exit_code == EXIT_OK for r in [result, *then])
                if ended or not failed_for_want_of_connection(bus.calls):
                    break
                if self.outage is None or not await self.outage.wait_after_failure(began):
                    break  # the outage outlasted --outage-limit: the item fails
        except asyncio.CancelledError:
            self.on_dropped(job)  # interrupted half way: no line, asked again whole next time
            raise
        except Exception as exc:  # an engine bug costs this item, never the batch
            error = internal_error(exc).message
        finally:
            self.progress.running -= 1
            room.release()
        outcome = ItemOutcome(job, result, bus.calls, time.monotonic() - started, error, then)
        if outcome.ok:
            self.progress.done += 1
        else:
            self.progress.failed += 1
        self.on_item(outcome)

    async def _run_item(
        self, clients: EndpointClients, plan: OraclePlan | DeliberationPlan, bus: _ItemBus
    ) -> OracleResult | DeliberationResult:
        if isinstance(plan, OraclePlan):
            run = OracleRun(plan, bus, run_id=self.run_id, budget=self.budget, pool=self.pool)
            return await run.run_on(clients)
        engine = DeliberationRun(plan, bus, run_id=self.run_id, budget=self.budget, pool=self.pool)
        return await engine.run_on(clients)

    def call_event(self, event: CallEvent) -> None:
        """A call event of an item, renamed into the batch: counted, then on to the batch's bus."""
        p = self.progress
        if isinstance(event, CallEnded):
            p.calls += 1
            p.tokens_in += event.outcome.tokens_in or 0
            p.tokens_out += event.outcome.tokens_out or 0
        elif isinstance(event, CallRetrying) and event.error_kind == ErrorKind.RATE_LIMITED:
            p.rate_limited += 1
        self.bus.emit(event)


def _prober(clients: EndpointClients) -> Callable[[], Awaitable[bool]]:
    """Whether every endpoint of the batch answers at all: its model list, any HTTP answer
    (a 404 or 401 is an answer; only a connection that fails or times out is not)."""

    async def probe() -> bool:
        for client in clients.all:
            try:
                await client.list_models()
            except CallError as error:
                if error.kind in (ErrorKind.CONNECTION, ErrorKind.TIMEOUT):
                    return False
        return True

    return probe
