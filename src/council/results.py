"""What a run produced: answers, failures and the run's result, filled in as it goes.

Kept apart from the engines so that renderers (and `--dry-run`) can use these
types without importing the endpoint client and its openai dependency.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from council.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE
from council.plan import OraclePlan

__all__ = ["Answer", "CallOutcome", "Failure", "OracleResult"]


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
            failures = self.failures
            if failures and all(f.error_kind == "auth" for f in failures):
                return EXIT_USAGE
            return EXIT_FAILURE
        if self.failures or isinstance(self.synthesis, Failure):
            return EXIT_PARTIAL
        return EXIT_OK

    @property
    def status(self) -> str:
        return {
            EXIT_OK: "ok",
            EXIT_PARTIAL: "partial",
            EXIT_INTERRUPTED: "interrupted",
        }.get(self.exit_code, "failed")
