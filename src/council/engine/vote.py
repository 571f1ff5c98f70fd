"""Counting a vote: the tally, the winners (ties as ties), and when it is decided early.

The ballot box takes each ballot as its call ends. The vote is decided once
the ballots still outstanding cannot change the outcome: the leader's count is
greater than the runner-up's count plus the ballots outstanding (a tie is an
outcome too, so "cannot catch up" means "cannot even draw level"). The engine
(oracle.py) then cancels the calls still running; they are stopped, not failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from council.engine.ballots import choice_key, read_ballot
from council.engine.clients import EndpointClients
from council.engine.model import VOTE_DECIDED, Ballot, CallOutcome, CallSpec, VoteResult
from council.engine.plan import OraclePlan
from council.engine.reporter import CallReporter
from council.engine.results import OracleResult

__all__ = [
    "BallotBox",
    "BallotRun",
    "round_vote",
    "run_ballots",
    "tally_of",
    "unanimous",
]


def tally_of(ballots: Sequence[Ballot], choices: Sequence[str] = ()) -> dict[str, int]:
    """Votes per choice, most first (the choices' own order, then first seen, breaks ties).

    Every given choice is listed, with 0 when nobody chose it; free answers are
    counted together when they differ only in case, spaces or trailing dots, under
    their first spelling.
    """
    counts: dict[str, int] = {c: 0 for c in choices}
    spelling: dict[str, str] = {choice_key(c): c for c in choices}
    for ballot in ballots:
        if ballot.choice is None:
            continue
        name = spelling.setdefault(choice_key(ballot.choice), ballot.choice)
        counts[name] = counts.get(name, 0) + 1
    order = {name: i for i, name in enumerate(counts)}
    return dict(sorted(counts.items(), key=lambda item: (-item[1], order[item[0]])))


def _winners(tally: dict[str, int]) -> tuple[str, ...]:
    best = max(tally.values(), default=0)
    return tuple(name for name, count in tally.items() if count == best) if best else ()


class BallotBox:
    """Ballots as they come, and whether the ones still out can change the outcome.

    Usage:
        box = BallotBox(voters=3, choices=("A", "B"))
        box.add(ballot)               # as each ballot call ends (a failed call: box.lost())
        box.decided()                 # True: cancel the rest
        box.result(stopped=..., outcomes=...)
    """

    def __init__(self, voters: int, choices: Sequence[str] = (), order: Sequence[str] = ()) -> None:
        self.voters = voters
        self.choices = tuple(choices)
        # The council's order of voters: the vote (and a tie's "first seen" order) is the
        # same whichever ballot call happens to end first.
        self.order = {name: at for at, name in enumerate(order)}
        self.ballots: dict[str, Ballot] = {}
        self._lost = 0  # calls that ended without a ballot (failed)

    @property
    def outstanding(self) -> int:
        return self.voters - len(self.ballots) - self._lost

    def add(self, ballot: Ballot) -> None:
        self.ballots[ballot.persona] = ballot

    def lost(self) -> None:
        """A ballot call failed: one ballot fewer can still come."""
        self._lost += 1

    def decided(self) -> bool:
        """True when no ballot still outstanding can change the winners (ties included)."""
        if self.outstanding <= 0:
            return False  # nothing to stop
        counts = sorted(tally_of(list(self.ballots.values())).values(), reverse=True)
        leader = counts[0] if counts else 0
        runner_up = counts[1] if len(counts) > 1 else 0
        return leader > runner_up + self.outstanding

    def result(
        self, *, stopped: Sequence[str] = (), outcomes: Sequence[CallOutcome] = ()
    ) -> VoteResult:
        """The vote; `outcomes` are the stopped calls' (what they had streamed is not saved)."""
        last = len(self.order)
        in_order = dict(
            sorted(self.ballots.items(), key=lambda item: self.order.get(item[0], last))
        )
        tally = tally_of(list(in_order.values()), self.choices)
        finished = [o.tokens_out for o in outcomes if o.answered and o.tokens_out is not None]
        mean = sum(finished) / len(finished) if finished else 0.0
        streamed = {o.persona: o.tokens_out or 0 for o in outcomes if o.cancelled}
        saved = sum(max(0, round(mean) - streamed.get(name, 0)) for name in stopped)
        return VoteResult(
            winners=_winners(tally),
            tally=tally,
            ballots=in_order,
            decided_early=bool(stopped),
            stopped=tuple(stopped),
            tokens_saved=saved,
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
    box = BallotBox(voters, plan.choices, order=[c.persona for c in plan.calls])
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
            if pending and plan.vote_early_stop and early_stop and box.decided():
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
