"""What a run produced: an oracle's outcomes, a deliberation's rounds, exit codes and status.

Filled in while a run goes, so whoever holds a result (the CLI on Ctrl-C) has
everything that finished. Built from the model and the plans only, so renderers
and the history use results without importing the engines or the endpoint client.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from council.engine.budget import Budget
from council.engine.cost import total_cost
from council.engine.missing import Coverage
from council.engine.model import (
    CallOutcome,
    CallRecord,
    RankingResult,
    StopReason,
    Verdict,
    VoteResult,
    status_of,
)
from council.engine.plan import DeliberationPlan, OraclePlan
from council.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    ErrorKind,
)

if TYPE_CHECKING:  # built only by an arbiter (its map), --rank (engine/ranking.py), --escalate
    from council.engine.agreement import AgreementMap
    from council.engine.bias import BiasReport
    from council.engine.escalation import EscalationResult

__all__ = [
    "BatchProgress",
    "DeliberationResult",
    "OracleResult",
    "RoundResult",
    "batch_exit_code",
]


def _with_missing(found: AgreementMap | None, coverage: Coverage) -> AgreementMap | None:
    """A map of a council some members missed says so, as its answer does."""
    if found is None:
        return None
    return dataclasses.replace(found, missing=coverage.missing)


@dataclass
class OracleResult:
    """Everything a run produced, in plan order; filled in while the run goes."""

    run_id: str
    plan: OraclePlan
    outcomes: dict[str, CallOutcome] = field(default_factory=dict)  # persona name -> outcome
    synthesis: CallOutcome | None = None
    # --vote --synthesize on free answers: the arbiter's consistency pick (its call).
    consistency: CallOutcome | None = None
    wall: float = 0.0
    interrupted: bool = False
    interrupted_exit: int = EXIT_INTERRUPTED  # 143 for SIGTERM, 129 for SIGHUP
    # The endpoint's limit changes during the run: {"host", "old", "new", "reason"}.
    limit_changes: list[dict[str, Any]] = field(default_factory=list)
    # --vote: the ballots and their count; --rank: the peer ranking and its calls.
    vote: VoteResult | None = None
    ranking: RankingResult | None = None
    reviews: dict[str, CallOutcome] = field(default_factory=dict)  # reviewer -> its call
    # --rank's bias checks by call id, and what they measured (engine/bias.py).
    checks: dict[str, CallOutcome] = field(default_factory=dict)
    bias: BiasReport | None = None
    # Every call's outcome as it ended, failed syntheses before a fallback's included.
    calls: list[CallOutcome] = field(default_factory=list)
    budget: Budget | None = None  # the run's limits and spend (None: no limits)
    agreement: AgreementMap | None = None  # what the synthesis's arbiter mapped (oracle -s)
    escalation: EscalationResult | None = None  # --escalate: what the first panel decided

    @property
    def _not_asked(self) -> tuple[str, ...]:
        """Members never asked: a vote's stopped ballots, those an agreeing panel spared."""
        stopped = self.vote.stopped if self.vote is not None else ()
        spared = self.escalation.not_asked if self.escalation is not None else ()
        return (*stopped, *spared)

    @property
    def panel_answered(self) -> CallOutcome | None:
        """The first panel's answer when it stood for the council's (None: it did not)."""
        escalation = self.escalation
        if escalation is None or not escalation.not_asked or not self.answers:
            return None
        return self.answers[0]

    @property
    def agreement_map(self) -> AgreementMap | None:
        """The synthesis's agreement map, saying whose views it lacks; None without one."""
        return _with_missing(self.agreement, self.coverage)

    @property
    def cost_usd(self) -> float | None:
        """What the run's calls cost (the known part); None when no cost is known."""
        return total_cost([c.cost_usd for c in self.calls])

    @property
    def budget_stopped(self) -> bool:
        """The budget kept a persona or the synthesis from starting (a bias check it kept
        from starting is only not measured)."""
        stopped = (c for c in self.calls if c.role != "check")
        return any(c.error_kind == ErrorKind.NOT_AFFORDABLE for c in stopped)

    @property
    def answers(self) -> list[CallOutcome]:
        """The personas that answered, in plan order."""
        outcomes = (self.outcomes.get(p.name) for p in self.plan.personas)
        return [o for o in outcomes if o is not None and o.answered]

    @property
    def failures(self) -> list[CallOutcome]:
        """Failed or unfinished persona calls, in plan order (unfinished ones as cancelled).

        A ballot call the vote stopped once it was decided is not a failure.
        """
        failures: list[CallOutcome] = []
        stopped = self._not_asked
        for persona in self.plan.personas:
            if persona.name in stopped:
                continue
            outcome = self.outcomes.get(persona.name)
            if outcome is None:
                outcome = CallOutcome(
                    persona=persona.name, error_kind=ErrorKind.CANCELLED, message="did not finish"
                )
            if not outcome.answered:
                failures.append(outcome)
        return failures

    @property
    def answer(self) -> str | None:
        """The council's one answer: the arbiter's synthesis, when it wrote one; with
        --vote, the vote's ("B", "tie between A and B"), when a ballot could be read."""
        synthesis = self.synthesis
        if synthesis is not None and synthesis.answered:
            return synthesis.text
        if self.vote is not None:
            return self.vote.answer
        panel = self.panel_answered
        return panel.text if panel is not None else None

    @property
    def coverage(self) -> Coverage:
        """How many members the answer rests on, and who is missing (a vote's early stop
        is no one missing)."""
        stopped = self._not_asked
        total = len([p for p in self.plan.personas if p.name not in stopped])
        return Coverage.of(total, len(self.answers), self.failures)

    @property
    def answer_record(self) -> dict[str, Any]:
        """The council's answer as every output gives it: `text` (None: there is none),
        who wrote it (`persona`: the synthesis's author), and who it rests on."""
        synthesis = self.synthesis
        wrote = synthesis if synthesis is not None and synthesis.answered else None
        if wrote is None and self.vote is None:
            wrote = self.panel_answered  # an agreeing first panel's answer is the council's
        persona = wrote.persona if wrote is not None else None
        return {
            "text": self.answer,
            "persona": persona,
            **_covered(self.coverage),
            "agreement": _agreement(self.agreement_map),
        }

    @property
    def review_failures(self) -> list[CallOutcome]:
        """Ranking calls that did not answer (or whose ranking could not be read)."""
        return [r for r in self.reviews.values() if not r.answered]

    @property
    def sum_of_calls(self) -> float:
        """What the finished calls (answers and synthesis) would take one after another."""
        total = sum(a.latency for a in self.answers)
        if self.synthesis is not None and self.synthesis.answered:
            total += self.synthesis.latency
        return total

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return self.interrupted_exit
        if self.budget_stopped:
            return EXIT_PARTIAL  # what the budget allowed is shown
        if not self.answers:
            return _nothing_answered(self.failures)
        if self.failures or (self.synthesis is not None and not self.synthesis.answered):
            return EXIT_PARTIAL
        if self.review_failures or (self.vote is not None and not self.vote.winners):
            return EXIT_PARTIAL  # no ballot could be read: the vote has no answer
        return EXIT_OK

    @property
    def status(self) -> str:
        return "interrupted" if self.interrupted else status_of(self.exit_code)


def _nothing_answered(failures: list[CallOutcome]) -> int:
    """Exit code when no persona answered: a usage error if every call was refused the key."""
    if failures and all(f.error_kind == ErrorKind.AUTH for f in failures):
        return EXIT_USAGE
    return EXIT_FAILURE


@dataclass
class RoundResult:
    """A kept round: every persona's outcome, in plan order, and the arbiter's verdict on it.

    `positions` says, per persona that answered, whether it kept or changed its
    position since the previous round ("kept"/"changed" as it stated them,
    "kept?"/"changed?" when guessed, "new" when it had no previous answer).
    """

    number: int
    outcomes: dict[str, CallOutcome]
    speculative: bool = False
    positions: dict[str, str] = field(default_factory=dict)
    arbiter: CallOutcome | None = None
    verdict: Verdict | None = None
    vote: VoteResult | None = None  # deliberate --vote: the round's ballots

    @property
    def answers(self) -> list[CallOutcome]:
        return [o for o in self.outcomes.values() if o.answered]

    @property
    def failures(self) -> list[CallOutcome]:
        return [o for o in self.outcomes.values() if not o.answered]

    @property
    def critical_path(self) -> float:
        """This round's time run on its own: its slowest persona, then its arbiter.

        Only the calls this run made: an answer a resumed run took from an earlier
        one took no time in it.
        """
        slowest = max((a.latency for a in self.answers if a.reused_from is None), default=0.0)
        arbiter = self.arbiter
        made = arbiter is not None and arbiter.answered and arbiter.reused_from is None
        return slowest + (arbiter.latency if arbiter is not None and made else 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.number,
            "speculative": self.speculative,
            "answers": [a.to_dict() for a in self.answers],
            "errors": [f.to_dict() for f in self.failures],
            "positions": self.positions,
            "arbiter": self.arbiter.to_dict() if self.arbiter is not None else None,
            "verdict": self.verdict.to_dict() if self.verdict is not None else None,
            "vote": self.vote.to_dict() if self.vote is not None else None,
        }


@dataclass
class DeliberationResult:
    """A deliberation's kept rounds, verdicts and timeline; filled in while it runs."""

    run_id: str
    plan: DeliberationPlan
    rounds: list[RoundResult] = field(default_factory=list)
    failed_round: RoundResult | None = None  # a round in which every persona failed
    timeline: list[CallRecord] = field(default_factory=list)
    discarded_rounds: list[int] = field(default_factory=list)
    speculation_skipped: list[int] = field(default_factory=list)  # rounds run after the verdict
    stop_reason: str = ""
    wasted_tokens: int = 0
    wall: float = 0.0
    interrupted: bool = False
    interrupted_exit: int = EXIT_INTERRUPTED  # 143 for SIGTERM, 129 for SIGHUP
    # The endpoint's limit changes during the run: {"host", "old", "new", "reason"}.
    limit_changes: list[dict[str, Any]] = field(default_factory=list)
    budget: Budget | None = None  # the run's limits and spend (None: no limits)
    escalation: EscalationResult | None = None  # --escalate: what the first panel decided

    @property
    def panel_round(self) -> RoundResult | None:
        """--escalate: the one round of an agreeing first panel, whose answer stands."""
        last = self.final_round
        return last if self.stop_reason == StopReason.PANEL_AGREED else None

    @property
    def cost_usd(self) -> float | None:
        """What every call that ran cost (discarded and cancelled ones included); None: unknown."""
        return total_cost([c.cost_usd for c in self.timeline])

    @property
    def wasted_cost_usd(self) -> float | None:
        """The cost of the calls the council did not keep (speculation, cut verdicts)."""
        return total_cost([c.cost_usd for c in self.timeline if not c.kept])

    @property
    def budget_stopped(self) -> bool:
        return self.stop_reason == StopReason.BUDGET

    @property
    def final_round(self) -> RoundResult | None:
        return self.rounds[-1] if self.rounds else None

    @property
    def verdict_round(self) -> RoundResult | None:
        """The latest kept round with a verdict: its synthesis is the council's answer."""
        return next((r for r in reversed(self.rounds) if r.verdict is not None), None)

    @property
    def agreement_map(self) -> AgreementMap | None:
        """The answering verdict's agreement map, saying whose views it lacks; None without one."""
        judged = self.verdict_round
        verdict = judged.verdict if judged is not None else None
        return _with_missing(verdict.agreement if verdict is not None else None, self.coverage)

    @property
    def unanimous_round(self) -> RoundResult | None:
        """deliberate --vote: the round whose ballots all agreed, which ended the council."""
        last = self.final_round
        if self.stop_reason != StopReason.UNANIMOUS or last is None or last.vote is None:
            return None
        return last

    @property
    def answer(self) -> str | None:
        panel = self.panel_round
        if panel is not None:
            return panel.answers[0].text if panel.answers else None
        unanimous = self.unanimous_round
        if unanimous is not None and unanimous.vote is not None:
            return unanimous.vote.answer
        judged = self.verdict_round
        return judged.verdict.synthesis if judged and judged.verdict else None

    @property
    def coverage(self) -> Coverage:
        """How many members the answer's round rests on (the judged round, else the last)."""
        judged = self.unanimous_round or self.verdict_round or self.final_round
        spared = self.escalation.not_asked if self.escalation is not None else ()
        total = len(self.plan.personas) - len(spared)
        if judged is None:
            return Coverage.of(total, 0, self.failed_round.failures if self.failed_round else [])
        return Coverage.of(total, len(judged.answers), judged.failures)

    @property
    def answer_record(self) -> dict[str, Any]:
        """The council's answer as every output gives it: the unanimous round's choice,
        else the latest verdict's synthesis, who wrote it and how settled it is (every
        field None, dissent empty, when no round got a verdict), and who it rests on."""
        return {
            **self._answer_source(),
            **_covered(self.coverage),
            "agreement": _agreement(self.agreement_map),
        }

    def _answer_source(self) -> dict[str, Any]:
        panel = self.panel_round
        if panel is not None and panel.answers:
            confidence = self.escalation.decision if self.escalation is not None else None
            return {
                "text": panel.answers[0].text,
                "persona": panel.answers[0].persona,
                "round": panel.number,
                "judged_by": None,
                "converged": True,
                "confidence": confidence.confidence if confidence is not None else None,
                "dissent": [],
            }
        unanimous = self.unanimous_round
        if unanimous is not None:
            return {
                "text": self.answer,
                "persona": None,
                "round": unanimous.number,
                "judged_by": None,
                "converged": True,
                "confidence": None,
                "dissent": [],
                "unanimous": True,
            }
        judged = self.verdict_round
        verdict = judged.verdict if judged is not None else None
        if judged is None or verdict is None:
            return dict.fromkeys(_ANSWER_FIELDS) | {"dissent": []}
        judge = judged.arbiter.persona if judged.arbiter is not None else None
        return {
            "text": verdict.synthesis,
            "persona": judge,
            "round": judged.number,
            "judged_by": judge,  # the same as persona; kept as it was
            "converged": verdict.converged,
            "confidence": verdict.confidence,
            "dissent": list(verdict.dissent),
        }

    @property
    def sequential_estimate(self) -> float:
        """The time the kept calls would have taken one round, then one verdict, at a time."""
        return sum(r.critical_path for r in self.rounds)

    @property
    def kept_failures(self) -> list[CallOutcome]:
        rounds = [*self.rounds, *([self.failed_round] if self.failed_round else [])]
        return [f for r in rounds for f in r.failures]

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return self.interrupted_exit
        if self.budget_stopped:
            return EXIT_PARTIAL  # the best answer so far is shown
        if not any(r.answers for r in self.rounds):
            return _nothing_answered(self.kept_failures)
        if (
            self.stop_reason in (StopReason.ALL_FAILED, StopReason.ARBITER_FAILED)
            or self.kept_failures
        ):
            return EXIT_PARTIAL
        if self.unanimous_round is not None or self.panel_round is not None:
            return EXIT_OK  # the ballots, or the first panel, agreed: no verdict was needed
        if not any(r.verdict is not None and r.verdict.problem is None for r in self.rounds):
            return EXIT_PARTIAL  # no verdict could ever be read: no real answer
        return EXIT_OK

    @property
    def status(self) -> str:
        return "interrupted" if self.interrupted else status_of(self.exit_code)


def _covered(coverage: Coverage) -> dict[str, Any]:
    """Who an answer rests on: how many `answered` of the `members`, and who is `missing`
    ([{"persona", "reason"}], empty when everyone answered)."""
    return {"answered": coverage.answered, "members": coverage.total, "missing": coverage.to_list()}


def _agreement(found: AgreementMap | None) -> dict[str, Any] | None:
    """The arbiter's agreement map (None without one): its six fields, and `missing`."""
    return found.to_dict() if found is not None else None


# A deliberation's answer fields, in the order the --json document has them.
_ANSWER_FIELDS = ("text", "persona", "round", "judged_by", "converged", "confidence", "dissent")


@dataclass
class BatchProgress:
    """Where a batch is: what the progress view shows and the summary says."""

    total: int | None = None  # items to run, when known
    skipped: int = 0  # items an earlier run already wrote (and are not redone)
    skipped_failed: int = 0  # ... of which failed (kept as they were)
    done: int = 0  # items that ended ok in this run
    failed: int = 0  # items that ended failed in this run
    running: int = 0
    calls: int = 0  # calls ended
    calls_in_flight: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    rate_limited: int = 0  # answers of 429 seen (each re-sent or retried)
    limit: int = 0  # calls the run's endpoint takes at once, as its limiter has it now
    ceiling: int = 0
    stopped_by: str | None = None  # a budget that stopped the batch from starting items
    # The endpoint stopped answering at this wall-clock time (None: it answers); items
    # waiting for it to come back (engine/outage.py).
    down_since: float | None = None
    waiting: int = 0
    outages: int = 0  # outages the batch waited through or gave up on
    started_at: float = field(default_factory=time.monotonic)
    # Reads (calls in flight, limit) from the endpoint's limiter now; set while it runs.
    sample: Callable[[], tuple[int, int]] | None = field(default=None, repr=False)

    def current(self) -> tuple[int, int]:
        """Calls in flight and the limit, as they are now (as last seen once the run ended)."""
        if self.sample is not None:
            self.calls_in_flight, self.limit = self.sample()
        return self.calls_in_flight, self.limit

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "skipped": self.skipped,
            "done": self.done,
            "failed": self.failed,
            "calls": self.calls,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "rate_limited": self.rate_limited,
            "limit": self.limit,
            "ceiling": self.ceiling,
            "stopped_by": self.stopped_by,
            "outages": self.outages,
            "wall": round(self.elapsed(), 3),
        }


def batch_exit_code(ok: int, failed: int) -> int:
    """0 when no item failed, 1 when none was ok (and some failed), else 3."""
    if not failed:
        return EXIT_OK
    return EXIT_FAILURE if not ok else EXIT_PARTIAL
