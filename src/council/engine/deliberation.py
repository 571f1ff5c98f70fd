"""Rounds of personas revising against each other, an arbiter's verdict after each, speculation.

Each round runs as one task: its persona calls at once, then (if anyone answered)
the arbiter's verdict on it. The main loop walks the rounds in order and decides,
one verdict at a time, whether the council goes on.

With speculation the next round starts the moment a round's answers are in,
while the arbiter judges that round: its prompts depend only on those answers,
so it is the same round the sequential schedule would run, only sooner. A
verdict that ends the council cancels it (its streams close, so the endpoint
stops generating) and its tokens are counted as wasted. Speculation stays one
round ahead: round N+1 is started only by the main loop, after verdict N-1.

With --vote every answer ends with a ballot line; a round whose ballots are
unanimous ends the council without asking the arbiter (stop reason "unanimous").

A verdict cut at max_tokens before it could be read is asked for once more, with
twice the room (or VERDICT_ROOM when the arbiter had no limit), before it counts
as unreadable.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

from council.endpoint.pool import EndpointPool
from council.engine.budget import Budget
from council.engine.calls import run_call
from council.engine.clients import EndpointClients
from council.engine.convergence import ends_council, parse_verdict, position_label
from council.engine.events import (
    ArbiterVerdict,
    EventBus,
    RoundDiscarded,
    RoundFinished,
)
from council.engine.lifecycle import EngineRun
from council.engine.missing import named
from council.engine.model import (
    CallOutcome,
    CallRecord,
    CallSpec,
    Mode,
    ResumeState,
    StopReason,
    VoteResult,
)
from council.engine.plan import DeliberationPlan
from council.engine.reporter import CallReporter
from council.engine.results import DeliberationResult, RoundResult
from council.engine.vote import round_vote, unanimous
from council.errors import ErrorKind

__all__ = ["VERDICT_ROOM", "DeliberationRun"]

# max_tokens for the second try of a verdict cut at the server's own limit: enough
# for a synthesis of several answers, not so much that a runaway reply costs a lot.
VERDICT_ROOM = 4096


def _cut_before_readable(outcome: CallOutcome) -> bool:
    """A verdict that stopped at max_tokens before the JSON object was complete."""
    return (
        outcome.answered
        and outcome.finish_reason == "length"
        and parse_verdict(outcome.text).problem is not None
    )


def _judged(outcome: CallOutcome | None) -> bool:
    """A verdict that was given and can be read (or a call cancelled: nobody judges then)."""
    if outcome is None:
        return False
    if outcome.cancelled:
        return True
    return outcome.answered and parse_verdict(outcome.text).problem is None


def _unreadable(outcome: CallOutcome | None) -> bool:
    return outcome is not None and outcome.answered and not _judged(outcome)


class _Round:
    """One round in flight: its persona calls, then the arbiter's call on its answers."""

    def __init__(self, number: int, speculative: bool) -> None:
        self.number = number
        self.speculative = speculative  # started before the previous verdict was in
        self.reporters: list[CallReporter] = []
        self.arbiter: CallReporter | None = None
        self.cut_verdicts: list[CallReporter] = []  # asked again, or judged by a fallback
        self.answers_in = asyncio.Event()
        self.verdict_in = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.vote: VoteResult | None = None  # --vote: the round's answers as ballots
        # The budget could not hold the round's calls: none was sent. A speculative
        # round is asked again once the verdict before it is in (it may fit then).
        self.not_affordable = False

    @property
    def all_reporters(self) -> list[CallReporter]:
        arbiter = [self.arbiter] if self.arbiter else []
        return [*self.reporters, *self.cut_verdicts, *arbiter]

    def answered(self) -> list[tuple[str, str]]:
        outcomes = [r.outcome for r in self.reporters if r.outcome is not None]
        return [(o.persona, o.text) for o in outcomes if o.answered]

    def failed(self) -> list[str]:
        outcomes = [r.outcome for r in self.reporters if r.outcome is not None]
        return [o.persona for o in outcomes if not o.answered]

    def missing(self) -> list[str]:
        """Who failed and why ("critic (429)"), for the arbiter."""
        outcomes = [r.outcome for r in self.reporters if r.outcome is not None]
        return named(o for o in outcomes if not o.answered)


class DeliberationRun(EngineRun[DeliberationPlan, DeliberationResult]):
    """Runs a DeliberationPlan to a verdict, the last round, or a failure.

    Usage:
        run = DeliberationRun(plan, bus)   # budget=, pool=: shared with other runs when given
        await run.execute()
        run.result.answer, run.result.exit_code

    With a budget (the plan's limits, or one shared with other runs), a round starts
    only when all its calls fit (their max_tokens lowered alike if need be); a round or
    a verdict that does not fit stops the council with stop reason "budget", the
    last complete round's answers and verdict kept. What every run does around its
    calls is `EngineRun`'s.
    """

    mode = Mode.DELIBERATE

    def __init__(
        self,
        plan: DeliberationPlan,
        bus: EventBus,
        run_id: str | None = None,
        resume: ResumeState | None = None,
        budget: Budget | None = None,
        pool: EndpointPool | None = None,
    ) -> None:
        super().__init__(plan, bus, run_id, budget, pool)
        self.resume = resume
        self._rounds: dict[int, _Round] = {}
        self._not_speculated: set[int] = set()  # held back by --max-wasted-tokens
        self._client: EndpointClients | None = None
        # --escalate: the first panel's round-1 calls, made first; round 1 takes them as
        # they are, so that nobody is asked twice.
        self._panel: dict[str, CallReporter] = {}

    def _new_result(self) -> DeliberationResult:
        return DeliberationResult(run_id=self.run_id, plan=self.plan, budget=self.budget)

    def _opening_calls(self) -> list[CallSpec]:
        return [self.plan.persona_call(p, 1) for p in self.plan.personas]

    def _interrupted_before_sending(self) -> None:
        super()._interrupted_before_sending()
        self.result.stop_reason = StopReason.INTERRUPTED

    def _finishing(self) -> None:
        self.result.timeline = self._timeline()

    async def _run(self, clients: EndpointClients) -> None:
        self._client = clients
        try:
            if self.plan.escalation is not None and not await self._panel_first(clients):
                return  # the first panel agreed: its answer is the council's
            last_kept = await self._deliberate()
        except BaseException as exc:
            # Ctrl-C (or a bug): close every stream before the client goes away.
            if isinstance(exc, asyncio.CancelledError):
                self.result.interrupted = True
                self.result.stop_reason = StopReason.INTERRUPTED
            await self._stop_rounds(after=0, reason="interrupted")
            raise
        # Ctrl-C while the discarded round closes: the council is done, but the user
        # asked to stop, and that is what the exit says (the run is marked interrupted).
        await self._stop_rounds(after=last_kept, reason="superseded")
        escalation = self.result.escalation
        if escalation is not None and escalation.escalation.shadow and self.result.rounds:
            from council.engine.escalate import shadow_compared

            if escalation.decision is not None and escalation.decision.agreed:
                shadow_compared(escalation, self.result.rounds[-1].answers)

    async def _panel_first(self, clients: EndpointClients) -> bool:
        """--escalate: round 1's first panel, asked first; False when it agreed (and this
        is no shadow run), its answers then the council's one round."""
        # Imported here: a deliberation that does not escalate (most) never pays for it.
        from council.engine.escalate import panel_decision

        plan = self.plan
        spec = plan.escalation
        assert spec is not None
        members = [p for p in plan.personas if p.name in spec.panel]
        reporters = [self.reporter(plan.persona_call(p, 1)) for p in members]
        self._panel = {r.call.persona: r for r in reporters}
        # Round 1 so far, for the timeline (and its cost) however the run ends; round 1
        # proper, when it runs, takes these reporters in.
        first = _Round(1, speculative=False)
        first.reporters = list(reporters)
        self._rounds[1] = first
        self.reserve_together([(clients.for_call(r.call), r) for r in reporters], all_or_none=False)
        async with asyncio.TaskGroup() as group:
            for reporter in reporters:
                group.create_task(run_call(clients.for_call(reporter.call), reporter))
        outcomes = {r.call.persona: r.outcome for r in reporters if r.outcome is not None}
        # The full council's first round and its verdict; later rounds would add more.
        full = len(plan.personas) + 1
        members = [p.name for p in plan.personas]
        record = panel_decision(spec, members, outcomes, full, plan.choices)
        self.result.escalation = record
        if not record.not_asked:
            return True
        self.result.rounds.append(
            RoundResult(1, outcomes, positions=dict.fromkeys(outcomes, "new"))
        )
        self.result.stop_reason = StopReason.PANEL_AGREED
        return False

    # -- the main loop: one round, one verdict at a time ------------------------------

    async def _deliberate(self) -> int:
        """Walk the rounds in order; return the number of the last round kept."""
        plan, result = self.plan, self.result
        self._start_round(1)
        number = 1
        while True:
            current = self._rounds[number]
            await self._wait(current, current.answers_in)
            if current.not_affordable:
                result.stop_reason = StopReason.BUDGET  # the last kept round stands
                return number - 1
            kept = self._keep(current)
            if not kept.answers:
                result.rounds.pop()
                result.failed_round = kept
                result.stop_reason = StopReason.ALL_FAILED
                return number
            if unanimous(kept.vote, len(plan.personas)):
                result.stop_reason = StopReason.UNANIMOUS  # the ballots agree: no verdict needed
                return number
            if plan.speculative and number < plan.rounds:
                if self._speculation_affordable(current):
                    self._start_round(number + 1)
                else:
                    self._not_speculated.add(number + 1)
            await self._wait(current, current.verdict_in)
            kept.arbiter = self._verdict_outcome(current)
            if kept.arbiter.error_kind == ErrorKind.NOT_AFFORDABLE:
                kept.arbiter = None  # no verdict was asked: the round's answers stand
                result.stop_reason = StopReason.BUDGET
                return number
            if not kept.arbiter.answered:
                result.stop_reason = StopReason.ARBITER_FAILED
                return number
            verdict = parse_verdict(kept.arbiter.text)
            if verdict.problem and kept.arbiter.finish_reason == "length":
                problem = f"{verdict.problem}; the reply was cut at max_tokens, twice"
                verdict = dataclasses.replace(verdict, problem=problem)
            kept.verdict = verdict
            ends = ends_council(verdict, plan.threshold)
            self.bus.emit(
                ArbiterVerdict(
                    run_id=self.run_id,
                    round=number,
                    converged=verdict.converged,
                    confidence=verdict.confidence,
                    synthesis=verdict.synthesis,
                    dissent=verdict.dissent,
                    ends_council=ends,
                    problem=verdict.problem,
                )
            )
            if ends:
                result.stop_reason = StopReason.CONVERGED
                return number
            if number == plan.rounds:
                result.stop_reason = StopReason.MAX_ROUNDS
                return number
            ahead = self._rounds.get(number + 1)
            if ahead is None or ahead.not_affordable:  # a speculative round that did not fit
                self._start_round(number + 1)  # may fit now that the verdict is settled
            number += 1

    def _verdict_outcome(self, current: _Round) -> CallOutcome:
        """The outcome of the round's verdict call (a failure should there be none)."""
        arbiter = current.arbiter
        if arbiter is not None and arbiter.outcome is not None:
            return arbiter.outcome
        # A round with answers always asks for its verdict, and run_call always
        # leaves an outcome; should that ever break, the council still ends cleanly.
        return CallOutcome(
            persona=self.plan.arbiter.name,
            role="arbiter",
            error_kind=ErrorKind.INTERNAL,
            message="internal error (the round ended without its verdict); please report it",
        )

    async def _wait(self, current: _Round, event: asyncio.Event) -> None:
        """Wait for a round's event; a round task that crashed raises here instead of hanging."""
        task = current.task
        if task is None:
            raise RuntimeError(f"round {current.number} was never started")
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not event.is_set() and task.done():
            task.result()  # re-raises the round's unexpected error
            raise RuntimeError(f"round {current.number} ended without its result")

    def _keep(self, current: _Round) -> RoundResult:
        """Record a round whose answers are in as part of the council."""
        previous = self.result.rounds[-1] if self.result.rounds else None
        outcomes = {r.call.persona: r.outcome for r in current.reporters if r.outcome}
        kept = RoundResult(current.number, outcomes, speculative=current.speculative)
        kept.vote = current.vote
        for answer in kept.answers:
            before = previous.outcomes.get(answer.persona) if previous else None
            earlier = before.text if before is not None and before.answered else None
            kept.positions[answer.persona] = (
                position_label(earlier, answer.text) if previous else "new"
            )
        self.result.rounds.append(kept)
        return kept

    def _speculation_affordable(self, current: _Round) -> bool:
        """Within --max-wasted-tokens, counting the next round as costing what this one did."""
        budget = self.plan.max_wasted_tokens
        if budget is None:
            return True
        at_risk = sum(r.tokens_spent for r in current.reporters)
        return self.result.wasted_tokens + at_risk <= budget

    # -- rounds ----------------------------------------------------------------------------

    def _start_round(self, number: int) -> None:
        previous = self._rounds.get(number - 1)
        speculative = previous is not None and not previous.verdict_in.is_set()
        current = _Round(number, speculative)
        if number in self._not_speculated:
            self.result.speculation_skipped.append(number)
        self._rounds[number] = current
        current.task = asyncio.create_task(self._run_round(current, previous))

    async def _run_round(self, current: _Round, previous: _Round | None) -> None:
        plan, client = self.plan, self._client
        if client is None:
            raise RuntimeError("rounds run inside execute()")
        earlier = previous.answered() if previous else None
        missing = previous.failed() if previous else None
        panel = self._panel if current.number == 1 else {}
        current.reporters = [
            panel.get(persona.name)
            or self.reporter(
                plan.persona_call(persona, current.number, earlier, missing),
                speculative=current.speculative,
            )
            for persona in plan.personas
        ]
        reused = self.resume.answers.get(current.number, {}) if self.resume else {}
        asked = [r for r in current.reporters if r.call.persona not in reused]
        asked = [r for r in asked if r.call.persona not in panel]  # asked first, once
        pairs = [(client.for_call(r.call), r) for r in asked]
        if not self.reserve_together(pairs, all_or_none=True, tentative=current.speculative):
            current.not_affordable = True  # nothing was sent, nothing reserved
            current.answers_in.set()
            current.verdict_in.set()
            return
        async with asyncio.TaskGroup() as group:
            for reporter in current.reporters:
                earlier_answer = reused.get(reporter.call.persona)
                if reporter.call.persona in panel:
                    continue  # the first panel's answer, as it came
                if earlier_answer is not None and self.resume is not None:
                    reporter.reuse(earlier_answer, self.resume.run_id)
                else:
                    group.create_task(run_call(client.for_call(reporter.call), reporter))
        current.answers_in.set()
        self.bus.emit(
            RoundFinished(
                run_id=self.run_id,
                round=current.number,
                answered=tuple(name for name, _ in current.answered()),
                failed=tuple(current.failed()),
                speculative=current.speculative,
            )
        )
        if plan.vote:
            current.vote = round_vote(
                [r.outcome for r in current.reporters if r.outcome], plan.choices
            )
        if not current.answered() or unanimous(current.vote, len(plan.personas)):
            current.verdict_in.set()  # nothing to judge, or nothing left to judge
            return
        # The verdict is speculative too while the previous one is still out.
        speculative = previous is not None and not previous.verdict_in.is_set()
        current.arbiter = self.reporter(
            plan.verdict_call(current.number, current.answered(), current.missing()),
            speculative=speculative,
        )
        earlier_verdict = self.resume.verdicts.get(current.number) if self.resume else None
        try:
            if earlier_verdict is not None and self.resume is not None:
                current.arbiter.reuse(earlier_verdict, self.resume.run_id)
            else:
                await self._judge(client, current)
        finally:
            current.verdict_in.set()

    async def _judge(self, client: EndpointClients, current: _Round) -> None:
        """The round's verdict: the arbiter's, or, when its call fails or its verdict cannot
        be read twice, the next `arbiter_fallback` persona's. All failing, the last stands."""
        fallbacks = len(self.plan.arbiter_fallback)
        for fallback in range(fallbacks + 1):
            if fallback > 0:
                first = current.arbiter
                assert first is not None
                current.cut_verdicts.append(first)  # kept in the timeline, not as the verdict
                call = self.plan.verdict_call(
                    current.number, current.answered(), current.missing(), fallback
                )
                current.arbiter = self.reporter(call, speculative=first.speculative)
            assert current.arbiter is not None
            outcome = await run_call(client.for_call(current.arbiter.call), current.arbiter)
            if outcome.error_kind == ErrorKind.NOT_AFFORDABLE:
                return  # a fallback judge would cost as much: the budget stops here
            if _cut_before_readable(outcome):
                await self._verdict_with_more_room(client, current)
            if fallback == fallbacks or _judged(current.arbiter.outcome):
                break
            if _unreadable(current.arbiter.outcome):  # read once more before moving on
                await self._verdict_again(client, current)
                if _judged(current.arbiter.outcome):
                    return
        last = current.arbiter
        if fallbacks and last is not None and not _unreadable(last.outcome):
            # Nobody judged: a verdict that was given, if unreadable, beats a failed call
            # (the council goes on without it, as it does with no fallback at all).
            given = next((r for r in current.cut_verdicts if _unreadable(r.outcome)), None)
            if given is not None and not _judged(last.outcome):
                current.cut_verdicts.remove(given)
                current.cut_verdicts.append(last)
                current.arbiter = given

    async def _verdict_again(self, client: EndpointClients, current: _Round) -> None:
        """Ask the same judge once more for a verdict that could not be read."""
        first = current.arbiter
        assert first is not None
        again = dataclasses.replace(first.call, call_id=f"{first.call.call_id}-again")
        current.cut_verdicts.append(first)
        current.arbiter = self.reporter(again, speculative=first.speculative)
        await run_call(client.for_call(current.arbiter.call), current.arbiter)

    async def _verdict_with_more_room(self, client: EndpointClients, current: _Round) -> None:
        """Ask once more for a verdict that max_tokens cut before it could be read."""
        first = current.arbiter
        if first is None or first.outcome is None:
            return
        call = first.call
        spent = first.outcome.tokens_out or 0
        room = 2 * call.max_tokens if call.max_tokens else max(VERDICT_ROOM, 2 * spent)
        again = dataclasses.replace(call, call_id=f"{call.call_id}-more-room", max_tokens=room)
        current.cut_verdicts.append(first)
        current.arbiter = self.reporter(again, speculative=first.speculative)
        await run_call(client.for_call(current.arbiter.call), current.arbiter)

    async def _stop_rounds(self, *, after: int, reason: str) -> None:
        """Cancel every round after `after` and wait until their calls have closed.

        A round the council did not keep ("superseded") is discarded and its tokens
        are wasted; on an interruption every round still running is cancelled.
        """
        superseded = reason == "superseded"
        stopping = [r for n, r in sorted(self._rounds.items()) if n > after or not superseded]
        for current in stopping:
            for reporter in current.all_reporters:
                reporter.cancel_reason = reason
            if current.task is not None:
                current.task.cancel()
        tasks = [r.task for r in stopping if r.task is not None]
        interrupted = False
        if tasks:
            closing = asyncio.gather(*tasks, return_exceptions=True)
            # Shielded, so that a Ctrl-C meanwhile cannot leave a stream open behind
            # us; it is not swallowed either: once every stream is closed, it stands.
            while not closing.done():
                try:
                    await asyncio.shield(closing)
                except asyncio.CancelledError:
                    interrupted = True
        if superseded:
            for current in stopping:
                if current.not_affordable:
                    continue  # never sent: nothing was discarded
                wasted = sum(r.tokens_spent for r in current.all_reporters if r.started_at)
                self.result.discarded_rounds.append(current.number)
                self.result.wasted_tokens += wasted
                self.bus.emit(
                    RoundDiscarded(run_id=self.run_id, round=current.number, wasted_tokens=wasted)
                )
        if interrupted:
            raise asyncio.CancelledError

    def _timeline(self) -> list[CallRecord]:
        kept = {r.number for r in self.result.rounds}
        if self.result.failed_round is not None:
            kept.add(self.result.failed_round.number)
        records: list[CallRecord] = []
        for number, current in sorted(self._rounds.items()):
            for reporter in current.all_reporters:
                if reporter.started_at is None:
                    continue  # cancelled while queued: it never reached the endpoint
                outcome = reporter.outcome
                is_kept = number in kept and not (outcome is not None and outcome.cancelled)
                if reporter in current.cut_verdicts:
                    status, is_kept = "retried", False
                elif outcome is None or outcome.cancelled:
                    status = "cancelled"
                elif outcome.reused_from is not None:
                    status = "reused"
                elif outcome.answered:
                    status = "answered" if is_kept else "discarded"
                else:
                    status = "failed"
                end = reporter.ended_at or time.monotonic()
                records.append(
                    CallRecord(
                        call_id=reporter.call.call_id,
                        persona=reporter.call.persona,
                        role=reporter.call.role,
                        round=number,
                        start=reporter.started_at - self._started,
                        end=end - self._started,
                        speculative=reporter.speculative,
                        status=status,
                        kept=is_kept,
                        tokens_out=reporter.tokens_spent,
                        cost_usd=outcome.cost_usd if outcome is not None else None,
                    )
                )
        return sorted(records, key=lambda c: (c.start, c.round, c.role != "persona"))
