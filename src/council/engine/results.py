"""What a run produced: answers, failures and the run's result, filled in as it goes.

Kept apart from the engines so that renderers (and `--dry-run`) can use these
types without importing the endpoint client and its openai dependency.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from council.engine.convergence import Verdict
from council.engine.deliberation_plan import DeliberationPlan
from council.engine.plan import OraclePlan
from council.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE

__all__ = [
    "Answer",
    "CallOutcome",
    "CallRecord",
    "DeliberationResult",
    "Failure",
    "OracleResult",
    "RoundResult",
]


@dataclass
class Answer:
    """A persona's (or the arbiter's) finished answer and what it cost."""

    persona: str
    text: str
    latency: float
    ttft: float | None
    tokens_in: int | None
    tokens_out: int | None
    retries: int
    role: str = "persona"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["latency"] = round(self.latency, 4)
        data["ttft"] = None if self.ttft is None else round(self.ttft, 4)
        return data


@dataclass
class Failure:
    """A call that did not produce an answer: failed (error_kind) or cancelled."""

    persona: str
    error_kind: str
    message: str
    retries: int
    role: str = "persona"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CallOutcome = Answer | Failure


@dataclass
class OracleResult:
    """Everything a run produced, in plan order; filled in while the run goes."""

    run_id: str
    plan: OraclePlan
    outcomes: dict[str, CallOutcome] = field(default_factory=dict)  # persona name -> outcome
    synthesis: CallOutcome | None = None
    wall: float = 0.0
    interrupted: bool = False

    @property
    def answers(self) -> list[Answer]:
        return [o for p in self.plan.personas if isinstance(o := self.outcomes.get(p.name), Answer)]

    @property
    def failures(self) -> list[Failure]:
        """Failed or unfinished persona calls, in plan order (unfinished ones as cancelled)."""
        failures: list[Failure] = []
        for persona in self.plan.personas:
            outcome = self.outcomes.get(persona.name)
            if isinstance(outcome, Failure):
                failures.append(outcome)
            elif outcome is None:
                failures.append(Failure(persona.name, "cancelled", "did not finish", 0))
        return failures

    @property
    def sum_of_calls(self) -> float:
        """What the finished calls (answers and synthesis) would take one after another."""
        total = sum(a.latency for a in self.answers)
        if isinstance(self.synthesis, Answer):
            total += self.synthesis.latency
        return total

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if not self.answers:
            return _nothing_answered(self.failures)
        if self.failures or isinstance(self.synthesis, Failure):
            return EXIT_PARTIAL
        return EXIT_OK

    @property
    def status(self) -> str:
        return status_of(self.exit_code)


def _nothing_answered(failures: list[Failure]) -> int:
    """Exit code when no persona answered: a usage error if every call was refused the key."""
    if failures and all(f.error_kind == "auth" for f in failures):
        return EXIT_USAGE
    return EXIT_FAILURE


def status_of(exit_code: int) -> str:
    return {EXIT_OK: "ok", EXIT_PARTIAL: "partial", EXIT_INTERRUPTED: "interrupted"}.get(
        exit_code, "failed"
    )


@dataclass
class CallRecord:
    """One call on a deliberation's timeline; times are seconds from the run's start.

    `status`: answered, failed, cancelled (stopped in flight), or discarded (it finished,
    but its round was speculative and the council ended before it). Only calls of kept
    rounds count towards the answer; the tokens of the others are the wasted ones.
    """

    call_id: str
    persona: str
    role: str
    round: int
    start: float
    end: float
    speculative: bool
    status: str
    kept: bool
    tokens_out: int

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["start"], data["end"] = round(self.start, 4), round(self.end, 4)
        return data


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

    @property
    def answers(self) -> list[Answer]:
        return [o for o in self.outcomes.values() if isinstance(o, Answer)]

    @property
    def failures(self) -> list[Failure]:
        return [o for o in self.outcomes.values() if isinstance(o, Failure)]

    @property
    def critical_path(self) -> float:
        """This round's time run on its own: its slowest persona, then its arbiter."""
        slowest = max((a.latency for a in self.answers), default=0.0)
        arbiter = self.arbiter.latency if isinstance(self.arbiter, Answer) else 0.0
        return slowest + arbiter

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.number,
            "speculative": self.speculative,
            "answers": [a.to_dict() for a in self.answers],
            "errors": [f.to_dict() for f in self.failures],
            "positions": self.positions,
            "arbiter": self.arbiter.to_dict() if self.arbiter is not None else None,
            "verdict": self.verdict.to_dict() if self.verdict is not None else None,
        }


# Why a deliberation stopped.
STOP_REASONS = {
    "converged": "the arbiter judged the council converged",
    "max_rounds": "the last round was reached",
    "all_failed": "every persona failed in a round",
    "arbiter_failed": "the arbiter failed",
    "interrupted": "interrupted",
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

    @property
    def final_round(self) -> RoundResult | None:
        return self.rounds[-1] if self.rounds else None

    @property
    def verdict_round(self) -> RoundResult | None:
        """The latest kept round with a verdict: its synthesis is the council's answer."""
        return next((r for r in reversed(self.rounds) if r.verdict is not None), None)

    @property
    def answer(self) -> str | None:
        judged = self.verdict_round
        return judged.verdict.synthesis if judged and judged.verdict else None

    @property
    def sequential_estimate(self) -> float:
        """The time the kept calls would have taken one round, then one verdict, at a time."""
        return sum(r.critical_path for r in self.rounds)

    @property
    def kept_failures(self) -> list[Failure]:
        rounds = [*self.rounds, *([self.failed_round] if self.failed_round else [])]
        return [f for r in rounds for f in r.failures]

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if not any(r.answers for r in self.rounds):
            return _nothing_answered(self.kept_failures)
        if self.stop_reason in ("all_failed", "arbiter_failed") or self.kept_failures:
            return EXIT_PARTIAL
        return EXIT_OK

    @property
    def status(self) -> str:
        return status_of(self.exit_code)
