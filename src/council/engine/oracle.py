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
import dataclasses
from collections.abc import Sequence

from council.endpoint.errors import internal_error
from council.engine.calls import run_call
from council.engine.clients import EndpointClients
from council.engine.lifecycle import EngineRun
from council.engine.missing import named
from council.engine.model import CONSISTENCY_CALL, CallOutcome, CallSpec, Mode
from council.engine.plan import OraclePlan
from council.engine.reporter import CallReporter
from council.engine.results import OracleResult
from council.errors import ErrorKind

__all__ = ["OracleRun"]


class OracleRun(EngineRun[OraclePlan, OracleResult]):
    """Runs an OraclePlan: every persona at once, then the optional synthesis.

    Usage:
        run = OracleRun(plan, bus)   # budget=, pool=: shared with other runs when given
        await run.execute()          # or asyncio.run(run.execute())
        run.result.exit_code

    The personas' calls are reserved together: when the budget cannot hold them all
    at their max_tokens, each gets less room, and those that do not fit at all are
    not started. What every run does around its calls is `EngineRun`'s.
    """

    mode = Mode.ORACLE

    def _new_result(self) -> OracleResult:
        return OracleResult(run_id=self.run_id, plan=self.plan, budget=self.budget)

    def _opening_calls(self) -> list[CallSpec]:
        return list(self.plan.calls)

    async def _run(self, clients: EndpointClients) -> None:
        plan = self.plan
        if plan.escalation is not None:
            # Imported here: a run that does not escalate (most) never pays for it.
            from council.engine.escalate import run_panel_first

            if not await run_panel_first(self, clients):
                return  # the first panel agreed: its answer is the council's
        else:
            await self.ask(clients, plan.calls)
        if plan.rank:  # each persona ranks the others' answers, anonymously
            from council.engine.ranking import run_reviews

            await run_reviews(self, clients)
        if plan.arbiter is not None and plan.vote:  # free answers: the most consistent
            from council.engine.vote import pick_consistent

            await pick_consistent(self, clients)
        elif plan.arbiter is not None and self.result.answers:
            await self._synthesize(clients)

    async def ask(
        self, clients: EndpointClients, calls: Sequence[CallSpec], *, early_stop: bool = True
    ) -> None:
        """These persona calls at once: ballots counted as they come with --vote (the rest
        stopped once decided), else answers sharing what the budget has left, evenly."""
        if self.plan.vote:
            # Imported here: a run that neither votes nor ranks (most) never pays for them.
            from council.engine.vote import run_ballots

            await run_ballots(self, clients, calls, early_stop=early_stop)
            return
        reporters = [self.reporter(c) for c in calls]
        self.reserve_together([(clients.for_call(r.call), r) for r in reporters], all_or_none=False)
        async with asyncio.TaskGroup() as group:
            for reporter in reporters:
                group.create_task(self.call(clients, reporter.call, reporter))

    def _record(self, call: CallSpec, outcome: CallOutcome) -> None:
        self.result.calls.append(outcome)
        if call.call_id == CONSISTENCY_CALL:  # a pick, read by engine/consistency.py
            self.result.consistency = outcome
        elif call.role == "arbiter":
            if outcome.text:  # the answer is the text; the map it ends with is apart
                # (a synthesis stopped mid-map too: what streamed of it is no answer)
                # Imported here: the map's classes are no part of the way to the first request.
                from council.engine.agreement import split_synthesis

                text, self.result.agreement = split_synthesis(outcome.text)
                outcome = dataclasses.replace(outcome, text=text)
            self.result.synthesis = outcome
        elif call.role == "reviewer":
            self.result.reviews[call.persona] = outcome
        elif call.role == "check":  # a bias check (engine/ranking.py): never the ranking's
            self.result.checks[call.call_id] = outcome
        else:
            self.result.outcomes[call.persona] = outcome

    async def call(
        self, client: EndpointClients, call: CallSpec, reporter: CallReporter | None = None
    ) -> None:
        """Run one call and record its outcome, whatever it is, cancellation included.

        `reporter`: one made by the caller, who may cancel the call on purpose (a vote).
        """
        reporter = reporter or self.reporter(call)
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
            if synthesis.error_kind == ErrorKind.NOT_AFFORDABLE:
                return  # a fallback judge costs as much: the budget stops the synthesis
