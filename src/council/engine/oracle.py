"""One question to N personas at once, gathered into one result.

Every persona call runs in one task group; a persona that fails is recorded
and the others go on. With --vote each call is a ballot, counted as it comes
(engine/vote.py); with --rank each persona then ranks the others' answers
(engine/ranking.py). With an arbiter, its synthesis follows the answers. The
result object is filled in as events happen, so whoever holds it (the CLI on
Ctrl-C, for instance) always has everything that finished so far.
"""

from __future__ import annotations

import asyncio
import time

from council.endpoint.errors import internal_error
from council.endpoint.pool import EndpointPool
from council.engine.budget import Budget, budget_scope
from council.engine.calls import (
    CallReporter,
    check_fits,
    limit_changes_reported,
    release_unsettled,
    reserve_together,
    run_call,
    run_finished,
    run_started,
)
from council.engine.clients import EndpointClients
from council.engine.cost import check_prices
from council.engine.events import EventBus
from council.engine.missing import named
from council.engine.model import NOT_AFFORDABLE, CallOutcome, CallSpec, new_run_id
from council.engine.plan import OraclePlan
from council.engine.ranking import run_reviews
from council.engine.results import OracleResult
from council.engine.vote import run_ballots

__all__ = ["OracleRun"]


class OracleRun:
    """Runs an OraclePlan: every persona at once, then the optional synthesis.

    Usage:
        run = OracleRun(plan, bus)
        await run.execute()          # or asyncio.run(run.execute())
        run.result.exit_code

    `result` is usable at any time, including after the run was cancelled. `budget`
    is shared with other runs when given (a batch); else the plan's limits make one.
    The personas' calls are reserved together: when the budget cannot hold them all
    at their max_tokens, each gets less room, and those that do not fit at all are
    not started.
    """

    def __init__(
        self,
        plan: OraclePlan,
        bus: EventBus,
        run_id: str | None = None,
        budget: Budget | None = None,
        pool: EndpointPool | None = None,
    ) -> None:
        self.plan = plan
        self.pool = pool if pool is not None else EndpointPool()  # a run of its own
        self.bus = bus
        self.run_id = run_id or new_run_id()
        self.budget = budget or Budget.for_plan(plan)
        self.result = OracleResult(run_id=self.run_id, plan=plan, budget=self.budget)
        self._reporters: list[CallReporter] = []
        self._started = time.monotonic()

    async def execute(self) -> OracleResult:
        plan = self.plan
        self._started = time.monotonic()
        check_prices(plan, self.budget)  # a USD limit needs every price: refused up front
        async with EndpointClients(plan, self.pool) as clients:
            try:
                for call in plan.calls:  # too long a question: none sent
                    await check_fits(clients.for_call(call), [call])
            except asyncio.CancelledError:
                self.result.interrupted = True
                raise
            with budget_scope(self.budget):
                await self.run_on(clients)
        return self.result

    async def run_on(self, clients: EndpointClients) -> OracleResult:
        """Run on clients the caller opened (a batch shares them across its items).

        No check before sending: a question too long for the window fails its own calls.
        """
        plan = self.plan
        self.bus.emit(run_started(self.run_id, "oracle", plan))
        try:
            changes = self.result.limit_changes
            with limit_changes_reported(clients.all, self.bus, self.run_id, changes):
                if plan.vote:  # ballots, counted as they come; the rest stopped once decided
                    await run_ballots(self, clients)
                else:
                    reporters = [CallReporter(self.run_id, self.bus, c) for c in plan.calls]
                    self._reporters = reporters
                    # The personas share what the budget has left, evenly.
                    reserve_together(
                        [(clients.for_call(r.call), r) for r in reporters], all_or_none=False
                    )
                    async with asyncio.TaskGroup() as group:
                        for reporter in reporters:
                            group.create_task(self.call(clients, reporter.call, reporter))
                if plan.rank:  # each persona ranks the others' answers, anonymously
                    await run_reviews(self, clients)
                if plan.arbiter is not None and self.result.answers:
                    await self._synthesize(clients)
        except asyncio.CancelledError:
            self.result.interrupted = True
            raise
        finally:
            release_unsettled(self._reporters)
            self.result.wall = time.monotonic() - self._started
            self.bus.emit(run_finished(self.run_id, self.result))
        return self.result

    def _record(self, call: CallSpec, outcome: CallOutcome) -> None:
        self.result.calls.append(outcome)
        if call.role == "arbiter":
            self.result.synthesis = outcome
        elif call.role == "reviewer":
            self.result.reviews[call.persona] = outcome
        else:
            self.result.outcomes[call.persona] = outcome

    async def call(
        self, client: EndpointClients, call: CallSpec, reporter: CallReporter | None = None
    ) -> None:
        """Run one call and record its outcome, whatever it is, cancellation included.

        `reporter`: one made by the caller, who may cancel the call on purpose (a vote).
        """
        reporter = reporter or CallReporter(self.run_id, self.bus, call)
        try:
            await run_call(client.for_call(call), reporter)
        finally:
            # run_call always leaves an outcome (a cancelled call's included); should
            # that ever fail, the call still ends as a failure, never as nothing.
            outcome = reporter.outcome or reporter.failed(
                internal_error(RuntimeError("the call ended without an outcome"))
            )
            self._record(call, outcome)

    async def _synthesize(self, client: EndpointClients) -> None:
        """The arbiter's synthesis; when its call fails, the next `arbiter_fallback` writes it."""
        answers = [(a.persona, a.text) for a in self.result.answers]
        failed = named(self.result.failures)  # "critic (429)": the arbiter says who is missing
        ranking = self.result.ranking
        ranked = [(n, ranking.borda[n]) for n in ranking.order] if ranking is not None else None
        for fallback in range(len(self.plan.arbiter_fallback) + 1):
            call = self.plan.synthesis_call(answers, failed, fallback, ranked)
            await self.call(client, call)
            synthesis = self.result.synthesis
            if synthesis is None or synthesis.answered or synthesis.cancelled:
                return
            if synthesis.error_kind == NOT_AFFORDABLE:
                return  # a fallback judge costs as much: the budget stops the synthesis
