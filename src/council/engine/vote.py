"""Counting a vote: the tally, the winners (ties as ties), and when it is decided early.

The ballot box takes each ballot as its call ends. The vote is decided once its
stopping rule (engine/stopping.py) is met; the floor of every rule is that the
ballots still outstanding cannot change the outcome: the leader's total is
greater than the runner-up's plus what the ballots outstanding could add (a tie
is an outcome too, so "cannot catch up" means "cannot even draw level"). The
engine (oracle.py) then cancels the calls still running; they are stopped, not
failed. With `weighting="confidence"` each ballot counts for its stated confidence
(model.UNSTATED_WEIGHT when it states none), and the winners are the weighted tally's.

Whatever the order the ballots arrive in, the result is counted in the council's
order: the arrival order decides only *when* the vote stops (and so which ballots
are counted), never the tally of the ballots counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from council.engine.ballots import choice_key, read_ballot
from council.engine.clients import EndpointClients
from council.engine.consistency import read_pick, with_pick
from council.engine.model import (
    VOTE_DECIDED,
    Ballot,
    CallOutcome,
    CallSpec,
    ConsistencyPick,
    VoteResult,
)
from council.engine.plan import OraclePlan
from council.engine.reporter import CallReporter
from council.engine.results import OracleResult
from council.engine.stopping import StopRule

__all__ = [
    "BallotBox",
    "BallotRun",
    "pick_consistent",
    "round_vote",
    "run_ballots",
    "tally_of",
    "unanimous",
    "weighted_tally_of",
]


def tally_of(ballots: Sequence[Ballot], choices: Sequence[str] = ()) -> dict[str, int]:
    """Votes per choice, most first (the choices' own order, then first seen, breaks ties).

    Every given choice is listed, with 0 when nobody chose it; free answers are
    counted together when they differ only in case, spaces or trailing dots, under
    their first spelling.
    """
    counts = _sums(ballots, choices, lambda _: 1)
    return {name: int(n) for name, n in counts.items()}


def weighted_tally_of(
    ballots: Sequence[Ballot], choices: Sequence[str] = (), weighting: str = "confidence"
) -> dict[str, float]:
    """`tally_of` with each ballot counting `Ballot.weight` (rounded to 4 places: a sum is
    the same whichever order it was added in)."""
    sums = _sums(ballots, choices, lambda b: b.weight(weighting))
    rounded = {name: round(total, 4) for name, total in sums.items()}
    order = {name: i for i, name in enumerate(rounded)}
    return dict(sorted(rounded.items(), key=lambda item: (-item[1], order[item[0]])))


def _sums(
    ballots: Sequence[Ballot], choices: Sequence[str], weight: Callable[[Ballot], float]
) -> dict[str, float]:
    counts: dict[str, float] = {c: 0 for c in choices}
    spelling: dict[str, str] = {choice_key(c): c for c in choices}
    for ballot in ballots:
        if ballot.choice is None:
            continue
        name = spelling.setdefault(choice_key(ballot.choice), ballot.choice)
        counts[name] = counts.get(name, 0) + weight(ballot)
    order = {name: i for i, name in enumerate(counts)}
    return dict(sorted(counts.items(), key=lambda item: (-item[1], order[item[0]])))


def _winners(tally: Mapping[str, float]) -> tuple[str, ...]:
    best = max(tally.values(), default=0)
    return tuple(name for name, count in tally.items() if count == best) if best else ()


class BallotBox:
    """Ballots as they come, and whether the ones still out can change the outcome.

    Usage:
        box = BallotBox(voters=3, choices=("A", "B"))   # rule=StopRule("posterior", 0.95)
        box.add(ballot)               # as each ballot call ends (a failed call: box.lost())
        box.decided()                 # True: cancel the rest
        box.result(stopped=..., outcomes=...)
    """

    def __init__(
        self,
        voters: int,
        choices: Sequence[str] = (),
        order: Sequence[str] = (),
        *,
        rule: StopRule | None = None,
        weighting: str = "equal",
    ) -> None:
        self.voters = voters
        self.choices = tuple(choices)
        # The council's order of voters: the vote (and a tie's "first seen" order) is the
        # same whichever ballot call happens to end first.
        self.order = {name: at for at, name in enumerate(order)}
        self.ballots: dict[str, Ballot] = {}
        self.rule = rule or StopRule()
        self.weighting = weighting
        self._arrivals: list[str | None] = []  # choices as their ballots came (window rule)
        self._lost = 0  # calls that ended without a ballot (failed)

    @property
    def outstanding(self) -> int:
        return self.voters - len(self.ballots) - self._lost

    def add(self, ballot: Ballot) -> None:
        self.ballots[ballot.persona] = ballot
        self._arrivals.append(None if ballot.choice is None else choice_key(ballot.choice))

    def lost(self) -> None:
        """A ballot call failed: one ballot fewer can still come."""
        self._lost += 1

    def decided(self) -> bool:
        """True when the stopping rule is met; always once no ballot still outstanding can
        change the winners (ties included)."""
        ballots = list(self.ballots.values())
        if self.weighting == "confidence":
            totals = list(weighted_tally_of(ballots, (), self.weighting).values())
        else:
            totals = [float(n) for n in tally_of(ballots).values()]
        return self.rule.met(totals, self.outstanding, self._arrivals)

    def result(
        self, *, stopped: Sequence[str] = (), outcomes: Sequence[CallOutcome] = ()
    ) -> VoteResult:
        """The vote; `outcomes` are the stopped calls' (what they had streamed is not saved)."""
        last = len(self.order)
        in_order = dict(
            sorted(self.ballots.items(), key=lambda item: self.order.get(item[0], last))
        )
        tally = tally_of(list(in_order.values()), self.choices)
        weighted = None
        if self.weighting == "confidence":
            weighted = weighted_tally_of(list(in_order.values()), self.choices, self.weighting)
        finished = [o.tokens_out for o in outcomes if o.answered and o.tokens_out is not None]
        mean = sum(finished) / len(finished) if finished else 0.0
        streamed = {o.persona: o.tokens_out or 0 for o in outcomes if o.cancelled}
        saved = sum(max(0, round(mean) - streamed.get(name, 0)) for name in stopped)
        return VoteResult(
            # Every weight 0 (each said it was not sure at all): the count decides.
            winners=(weighted is not None and _winners(weighted)) or _winners(tally),
            tally=tally,
            ballots=in_order,
            decided_early=bool(stopped),
            stopped=tuple(stopped),
            tokens_saved=saved,
            stop_rule=self.rule,
            weighting=self.weighting,
            weighted_tally=weighted,
        )


class BallotRun(Protocol):
    """What asking for ballots needs of the run that asks (an OracleRun): its plan, its
    result (the outcomes land there as calls end), and a call run to its outcome."""

    @property
    def plan(self) -> OraclePlan: ...
    @property
    def result(self) -> OracleResult: ...
    def reporter(self, call: CallSpec, *, speculative: bool = False) -> CallReporter: ...
    async def call(
        self, client: EndpointClients, call: CallSpec, reporter: CallReporter | None = None
    ) -> None: ...


async def run_ballots(
    run: BallotRun,
    clients: EndpointClients,
    calls: Sequence[CallSpec] | None = None,
    *,
    early_stop: bool = True,
) -> None:
    """Every persona's ballot call at once, each ballot counted as its call ends; once
    the vote is decided (and the plan allows it), the calls still running are cancelled
    with the reason VOTE_DECIDED. `run.result.vote` holds the count so far throughout.

    `calls`: only these (an escalation's panel, then the rest); ballots already in the
    result (the panel's) are counted as they are, never asked again.
    """
    plan, result = run.plan, run.result
    asked = list(plan.calls if calls is None else calls)
    earlier = [o for o in result.outcomes.values() if o.persona not in {c.persona for c in asked}]
    voters = len(earlier) + len(asked)
    box = BallotBox(
        voters,
        plan.choices,
        order=[c.persona for c in plan.calls],
        rule=plan.vote_stop if plan.vote_early_stop and early_stop else StopRule("none"),
        weighting=plan.vote_weighting,
    )
    for outcome in earlier:
        if outcome.answered:
            box.add(read_ballot(outcome.persona, outcome.text, plan.choices))
        else:
            box.lost()
    reporters = {c.persona: run.reporter(c) for c in asked}
    tasks = {
        name: asyncio.create_task(run.call(clients, r.call, r)) for name, r in reporters.items()
    }
    counted: set[str] = set()
    stopped: list[str] = []
    try:
        pending = set(tasks.values())
        while pending:
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for name in reporters:
                outcome = result.outcomes.get(name)
                if name in counted or outcome is None:
                    continue
                counted.add(name)
                if outcome.answered:
                    box.add(read_ballot(name, outcome.text, plan.choices))
                else:
                    box.lost()
            result.vote = box.result()
            if pending and box.decided():
                stopped = [name for name, task in tasks.items() if not task.done()]
                for name in stopped:
                    reporters[name].cancel_reason = VOTE_DECIDED
                    tasks[name].cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                break
    except asyncio.CancelledError:  # Ctrl-C: every stream closed before the client goes
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        raise
    finally:
        result.vote = box.result(stopped=stopped, outcomes=list(result.outcomes.values()))


async def pick_consistent(run: BallotRun, clients: EndpointClients) -> None:
    """After the ballots: the arbiter picks the most consistent answer (one call, none
    when the ballots all agree); `run.result.vote` gets the pick."""
    vote = run.result.vote
    if vote is None:
        return
    counted = [b for b in vote.ballots.values() if b.choice is not None]
    if not counted:
        return
    if len({choice_key(b.choice or "") for b in counted}) == 1:
        why = "every ballot gave the same answer: no arbiter was asked"
        run.result.vote = with_pick(
            vote, ConsistencyPick(counted[0].persona, counted[0].choice, why, asked=False)
        )
        return
    responses = [(f"Response {i}", b) for i, b in enumerate(counted, 1)]
    await run.call(clients, run.plan.consistency_call(responses))
    outcome = run.result.consistency
    label, reason = (None, "")
    if outcome is not None and outcome.answered:
        label, reason = read_pick(outcome.text, [name for name, _ in responses])
    if label is None:
        why = "the arbiter's pick could not be read: the count decides"
        run.result.vote = with_pick(vote, ConsistencyPick(None, None, why, asked=True))
        return
    ballot = dict(responses)[label]
    pick = ConsistencyPick(ballot.persona, ballot.choice, reason, asked=True)
    run.result.vote = with_pick(vote, pick)


def round_vote(outcomes: Sequence[CallOutcome], choices: Sequence[str] = ()) -> VoteResult:
    """deliberate --vote: a round's answers read as ballots (their "Choice: X" line)."""
    box = BallotBox(len(outcomes), choices)
    for outcome in outcomes:
        if outcome.answered:
            box.add(read_ballot(outcome.persona, outcome.text, choices))
    return box.result()


def unanimous(vote: VoteResult | None, voters: int) -> bool:
    """Every one of `voters` (two or more) gave a readable ballot, and all the same choice."""
    if vote is None or voters < 2 or len(vote.ballots) != voters or vote.abstentions:
        return False
    return vote.winner is not None and vote.tally[vote.winner] == voters
