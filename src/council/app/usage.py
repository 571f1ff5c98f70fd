"""What a run's calls used, counted from its events: every call, whatever became of it
(a vote's stopped ballots, a ranking's reviews, a discarded speculative round's calls)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from council.engine.cost import total_cost
from council.engine.events import CallEnded, Event

__all__ = ["Usage"]


@dataclass
class Usage:
    """Calls, tokens and cost summed over a run's `CallEnded` events; subscribe `handle`."""

    calls: int = 0
    # None: no call reported that count (a local llama.cpp server may not): unknown, not 0.
    tokens_in: int | None = None
    tokens_out: int | None = None
    costs: list[float | None] = field(default_factory=list)  # None: that call's is unknown
    failures: list[Any] = field(default_factory=list)

    def handle(self, event: Event) -> None:
        if not isinstance(event, CallEnded):
            return
        outcome = event.outcome
        self.calls += 1
        if outcome.tokens_in is not None:
            self.tokens_in = (self.tokens_in or 0) + outcome.tokens_in
        if outcome.tokens_out is not None:
            self.tokens_out = (self.tokens_out or 0) + outcome.tokens_out
        cost = outcome.cost_usd
        self.costs.append(float(cost) if isinstance(cost, int | float) else None)
        if not outcome.answered:
            self.failures.append(outcome)

    @property
    def cost_usd(self) -> float | None:
        total = total_cost(self.costs)  # free calls beside unknown ones: unknown, not $0
        return None if total is None else round(total, 8)

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": self.cost_usd,
        }
