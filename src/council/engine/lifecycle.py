"""What every engine run does around its calls, written once: `EngineRun`.

An oracle and a deliberation differ in the calls they make and when; around those
calls they do the same: prices checked before anything (a USD limit needs every
price), the endpoint clients opened on the run's `EndpointPool`, the question
checked against the context window before anything is sent, the run started and
finished on the bus, every limit change reported while it runs, what was reserved
for calls that never ran given back to the budget, and the result marked
interrupted on Ctrl-C. A subclass makes its empty result, says which calls open
the run, and runs its calls in `_run`, each with a reporter from `reporter`.

    class OracleRun(EngineRun[OraclePlan, OracleResult]):
        mode = Mode.ORACLE
        ...
    run = OracleRun(plan, bus, pool=pool)   # budget: the plan's limits, or one passed
    await run.execute()                     # or run_on(clients) a batch opened
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, Generic, TypeVar

from council.endpoint.client import EndpointClient
from council.endpoint.limiter import LimitChange
from council.endpoint.pool import EndpointPool
from council.engine.budget import Budget
from council.engine.calls import release_unsettled, reserve_together
from council.engine.clients import EndpointClients
from council.engine.cost import check_prices
from council.engine.events import EventBus, LimitChanged, RunFinished, RunStarted
from council.engine.model import CallSpec, Mode, new_run_id
from council.engine.plan import DeliberationPlan, OraclePlan
from council.engine.reporter import CallReporter
from council.engine.results import DeliberationResult, OracleResult
from council.engine.windows import check_fits

__all__ = ["EngineRun", "limit_changes_reported"]

PlanT = TypeVar("PlanT", OraclePlan, DeliberationPlan)
ResultT = TypeVar("ResultT", OracleResult, DeliberationResult)


class EngineRun(abc.ABC, Generic[PlanT, ResultT]):
    """One run of a plan: its id, bus, budget and pool, its result filled in as it goes.

    `result` is usable at any time, including after the run was cancelled. `budget` is
    shared with other runs when given (a batch); else the plan's limits make one (None:
    no limit). `pool` is shared with other runs when given (a batch, an eval, a server);
    else the run makes its own, as a new process would.
    """

    mode: ClassVar[Mode]  # what the run started event names as its command

    def __init__(
        self,
        plan: PlanT,
        bus: EventBus,
        run_id: str | None = None,
        budget: Budget | None = None,
        pool: EndpointPool | None = None,
    ) -> None:
        self.plan = plan
        self.bus = bus
        self.run_id = run_id or new_run_id()
        self.budget = budget or Budget.for_plan(plan)
        self.pool = pool if pool is not None else EndpointPool()
        self._made: list[CallReporter] = []  # every call's reporter, in the order made
        self.result: ResultT = self._new_result()
        self._started = time.monotonic()

    # -- what a kind of run says -------------------------------------------------------------

    @abc.abstractmethod
    def _new_result(self) -> ResultT:
        """The empty result, made once, before the run starts."""

    @abc.abstractmethod
    def _opening_calls(self) -> list[CallSpec]:
        """The calls the question must fit in before anything is sent."""

    @abc.abstractmethod
    async def _run(self, clients: EndpointClients) -> None:
        """Make the run's calls, filling in the result as they end."""

    def _interrupted_before_sending(self) -> None:
        """Ctrl-C while the question was checked against the window: nothing was sent."""
        self.result.interrupted = True

    def _finishing(self) -> None:
        """Last words on the result before the run finished event (a timeline, say)."""

    # -- shared by every kind ----------------------------------------------------------------

    def reporter(self, call: CallSpec, *, speculative: bool = False) -> CallReporter:
        """A reporter for one of the run's calls, on its bus, within its budget."""
        made = CallReporter(
            self.run_id, self.bus, call, speculative=speculative, budget=self.budget
        )
        self._made.append(made)
        return made

    def reserve_together(
        self,
        pairs: list[tuple[EndpointClient, CallReporter]],
        *,
        all_or_none: bool,
        tentative: bool = False,
    ) -> bool:
        """Reserve calls that start together from the run's budget (`calls.reserve_together`)."""
        return reserve_together(pairs, self.budget, all_or_none=all_or_none, tentative=tentative)

    async def execute(self) -> ResultT:
        """Run the plan on clients of its own (from the pool); the result."""
        self._started = time.monotonic()
        check_prices(self.plan, self.budget)  # a USD limit needs every price: refused up front
        async with EndpointClients(self.plan, self.pool) as clients:
            try:  # too long a question: nothing is sent
                for call in self._opening_calls():
                    await check_fits(clients.for_call(call), [call])
            except asyncio.CancelledError:
                self._interrupted_before_sending()
                raise
            await self.run_on(clients)
        return self.result

    async def run_on(self, clients: EndpointClients) -> ResultT:
        """Run on clients the caller opened (a batch shares them across its items).

        No check before sending: a question too long for the window fails its own calls.
        """
        self.bus.emit(_run_started(self.run_id, self.mode, self.plan))
        try:
            # Every limit change while the run goes is an event and in the result.
            changes = self.result.limit_changes
            with limit_changes_reported(clients.all, self.bus, self.run_id, changes):
                await self._run(clients)
        except asyncio.CancelledError:
            self.result.interrupted = True
            raise
        finally:
            release_unsettled(self._made)  # reserved for calls that never ran
            self.result.wall = time.monotonic() - self._started
            self._finishing()
            self.bus.emit(_run_finished(self.run_id, self.result))
        return self.result


@contextlib.contextmanager
def limit_changes_reported(
    clients: Iterable[EndpointClient], bus: EventBus, run_id: str, kept: list[dict[str, Any]]
) -> Iterator[None]:
    """While a run goes, each change of its endpoints' limits is an event and kept in `kept`.

    Clients of one endpoint share its limiter, which is listened to once.
    """

    def report(change: LimitChange) -> None:
        kept.append(dataclasses.asdict(change))
        bus.emit(LimitChanged(run_id=run_id, **dataclasses.asdict(change)))

    limiters = list({id(c.limiter): c.limiter for c in clients}.values())
    for limiter in limiters:
        limiter.listeners.append(report)
    try:
        yield
    finally:
        for limiter in limiters:
            limiter.listeners.remove(report)


def _run_started(run_id: str, command: str, plan: OraclePlan | DeliberationPlan) -> RunStarted:
    return RunStarted(
        run_id=run_id,
        command=command,
        query=plan.query,
        personas=tuple(p.name for p in plan.personas),
        model=plan.endpoint.model,
        endpoint_host=plan.endpoint.host,
    )


def _run_finished(run_id: str, result: OracleResult | DeliberationResult) -> RunFinished:
    return RunFinished(
        run_id=run_id, status=result.status, exit_code=result.exit_code, wall=result.wall
    )
