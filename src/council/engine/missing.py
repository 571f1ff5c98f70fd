"""Who is missing from a council's answer, and why, said the same way everywhere.

A synthesis or verdict written while some members failed is a degraded answer:
the arbiter's prompt names who is missing (`prompts.py`), and the answer panel,
the Markdown and `--json` (`answer.missing`) say it in one line:

    2 of 4 answered; missing: skeptic (timeout), critic (429)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from council.engine.model import CallOutcome
from council.errors import ErrorKind

__all__ = ["Coverage", "why_missing"]

# A failure as one word or number, as a person reads it in the line above.
_SHORT = {ErrorKind.RATE_LIMITED: "429", ErrorKind.NOT_FOUND: "404", ErrorKind.AUTH: "401"}


def why_missing(outcome: CallOutcome) -> str:
    """A failed call's reason in a word: "timeout", "429", "connection", "budget"."""
    kind = outcome.error_kind or "no answer"
    return _SHORT.get(kind, kind.replace("_", " "))


def named(failures: Iterable[CallOutcome]) -> list[str]:
    """Each failed member as "name (why)", for an arbiter's prompt."""
    return [f"{f.persona} ({why_missing(f)})" for f in failures]


@dataclass(frozen=True)
class Coverage:
    """How many members an answer rests on: `answered` of `total`, and who is missing."""

    answered: int
    total: int
    missing: tuple[tuple[str, str], ...] = ()  # (persona, why)

    @classmethod
    def of(cls, total: int, answered: int, failures: Sequence[CallOutcome]) -> Coverage:
        return cls(answered, total, tuple((f.persona, why_missing(f)) for f in failures))

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def alone(self) -> bool:
        """One member answered of several: its answer is that member's, not a council's."""
        return self.answered == 1 and self.total > 1

    def line(self) -> str | None:
        """ "2 of 4 answered; missing: skeptic (timeout), critic (429)"; None when complete."""
        if self.complete:
            return None
        who = ", ".join(f"{name} ({why})" for name, why in self.missing)
        return f"{self.answered} of {self.total} answered; missing: {who}"

    def to_list(self) -> list[dict[str, str]]:
        return [{"persona": name, "reason": why} for name, why in self.missing]
