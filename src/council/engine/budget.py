"""A run's spending limit (--budget-usd, --max-tokens-total): reserve before a call, settle after.

Before a call is sent, its worst case is reserved: its prompt (estimated as
engine/fit.py does, on the careful side, and half as much again until the endpoint
has counted a prompt of the model's: UNCOUNTED_MARGIN) plus its `max_tokens`, at
its price. A
call whose worst case does not fit what is left is given a lower `max_tokens`
that fits (at least MIN_ANSWER_TOKENS), or is not started at all. After the call,
the reservation is settled with what it really cost (released, the cost counted),
so what one call did not use is there for the next. A call without `max_tokens`
is reserved (and sent) with ASSUMED_ANSWER_TOKENS: an unbounded answer cannot be
budgeted.

The spend can pass the limit only by what the estimates missed: a prompt that
took more tokens than estimated (its answer is bounded by `max_tokens`). That is
the target: never more over than one call's estimation error.

One Budget may be shared by several runs (a batch): reserve and settle take a
lock and never await, so they are safe from threads and from tasks alike. A run
passes its budget to each call's reporter (engine/calls.py reserves and settles
every call there, once).

    budget = Budget(usd=0.05)
    granted = budget.reserve(Ask(prompt=900, room=512, price=price))   # None: not started
    ...
    budget.settle(granted, cost_usd=0.0004, tokens=1130)
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from council.config.prices import Price

__all__ = [
    "ASSUMED_ANSWER_TOKENS",
    "MIN_ANSWER_TOKENS",
    "UNCOUNTED_MARGIN",
    "Ask",
    "Budget",
    "Reservation",
]

# A call is not started with less room than this for its answer: a budget that
# leaves fewer tokens would only buy a cut-off sentence.
MIN_ANSWER_TOKENS = 16
# The answer room reserved (and sent as max_tokens) for a call that sets none.
ASSUMED_ANSWER_TOKENS = 4096
# A prompt is reserved at this many times its estimate (three characters a token, so
# two characters a token) until its endpoint has counted one of the model's prompts:
# a dense tokenizer (code, many languages) must not make every first call overshoot.
UNCOUNTED_MARGIN = 1.5
MILLION = 1_000_000


@dataclass(frozen=True)
class Ask:
    """What a call would like: its prompt (estimated tokens), its answer room, its price."""

    prompt: int
    room: int | None  # the call's max_tokens; None: it sets none
    price: Price | None

    @property
    def wanted(self) -> int:
        return self.room if self.room is not None else ASSUMED_ANSWER_TOKENS

    @property
    def least(self) -> int:
        """The smallest answer room the call is worth starting with."""
        return min(MIN_ANSWER_TOKENS, self.wanted)

    def usd(self, answer: int) -> float:
        if self.price is None:
            return 0.0
        return (self.prompt * self.price.input + answer * self.price.output) / MILLION


@dataclass(frozen=True)
class Reservation:
    """What was set aside for one call: its `max_tokens` (maybe lowered), its USD and tokens."""

    max_tokens: int
    usd: float
    tokens: int
    lowered: bool  # max_tokens is below what the call asked for


@dataclass
class Budget:
    """Limits for a run (None: no limit of that kind) and what was spent and set aside."""

    usd: float | None = None
    tokens: int | None = None
    spent_usd: float = 0.0
    spent_tokens: int = 0
    reserved_usd: float = 0.0
    reserved_tokens: int = 0
    # Calls not started, and calls started with a lower max_tokens, by a label.
    refused: list[str] = field(default_factory=list)
    lowered: list[str] = field(default_factory=list)
    # Each lowered call: (label, the max_tokens it set or None, the max_tokens it got).
    lowered_to: list[tuple[str, int | None, int]] = field(default_factory=list)
    # The most one call cost over what was reserved for it (the estimate's error).
    worst_excess_usd: float = 0.0
    worst_excess_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def for_plan(cls, plan: Any) -> Budget | None:
        """The plan's limits (`budget_usd`, `max_tokens_total`) as a budget; None: no limits."""
        usd = getattr(plan, "budget_usd", None)
        tokens = getattr(plan, "max_tokens_total", None)
        return cls(usd=usd, tokens=tokens) if usd is not None or tokens is not None else None

    @property
    def limited(self) -> bool:
        return self.usd is not None or self.tokens is not None

    @property
    def stopped(self) -> bool:
        """The budget kept some call from starting."""
        return bool(self.refused)

    def reserve(self, ask: Ask, label: str = "") -> Reservation | None:
        """Set aside one call's worst case, its answer room lowered to fit; None: it does not."""
        with self._lock:
            granted = self._fit([ask])
            if granted is None:
                self.refused.append(label)
                return None
            return self._take(granted, [label])[0]

    def reserve_all(
        self,
        asks: Sequence[Ask],
        labels: Sequence[str],
        *,
        all_or_none: bool,
        tentative: bool = False,
    ) -> list[Reservation | None]:
        """Set aside several calls that start together, each answer room lowered alike.

        With `all_or_none` (a deliberation's round) either every call gets a
        reservation or none does; otherwise as many as fit, in order, do. A
        `tentative` refusal (a speculative round, asked again later) is not noted.
        """
        with self._lock:
            count = len(asks)
            while count > 0:
                granted = self._fit(asks[:count])
                if granted is not None:
                    taken: list[Reservation | None] = list(self._take(granted, labels[:count]))
                    self.refused.extend(labels[count:])
                    return taken + [None] * (len(asks) - count)
                if all_or_none:
                    break
                count -= 1
            if not tentative:
                self.refused.extend(labels)
            return [None] * len(asks)

    def release(self, reservation: Reservation | None) -> None:
        """Give back a reservation whose call was never sent."""
        if reservation is not None:
            self.settle(reservation, cost_usd=0.0, tokens=0)

    def settle(self, reservation: Reservation, *, cost_usd: float | None, tokens: int) -> None:
        """The call is over: release what was set aside, count what it spent.

        A cost that is unknown counts as the whole reservation (the worst case).
        """
        cost = reservation.usd if cost_usd is None else cost_usd
        with self._lock:
            self.reserved_usd = max(0.0, self.reserved_usd - reservation.usd)
            self.reserved_tokens = max(0, self.reserved_tokens - reservation.tokens)
            self.spent_usd += cost
            self.spent_tokens += tokens
            self.worst_excess_usd = max(self.worst_excess_usd, cost - reservation.usd)
            self.worst_excess_tokens = max(self.worst_excess_tokens, tokens - reservation.tokens)

    def to_dict(self) -> dict[str, Any]:
        return {
            "usd": self.usd,
            "max_tokens_total": self.tokens,
            "spent_usd": round(self.spent_usd, 8),
            "spent_tokens": self.spent_tokens,
            "stopped": self.stopped,
            "not_started": list(self.refused),
            "lowered_max_tokens": list(self.lowered),
        }

    # -- under the lock ----------------------------------------------------------------------

    def _left(self) -> tuple[float, float]:
        usd = math.inf if self.usd is None else self.usd - self.spent_usd - self.reserved_usd
        tokens = (
            math.inf
            if self.tokens is None
            else self.tokens - self.spent_tokens - self.reserved_tokens
        )
        return usd, tokens

    def _fits(self, asks: Sequence[Ask], cap: int) -> bool:
        usd, tokens = self._left()
        rooms = [min(a.wanted, cap) for a in asks]
        need_usd = sum(a.usd(room) for a, room in zip(asks, rooms, strict=True))
        need_tokens = sum(a.prompt + room for a, room in zip(asks, rooms, strict=True))
        # A hair of tolerance: sums of floats must not refuse an exact fit.
        return need_usd <= usd + 1e-12 and need_tokens <= tokens

    def _fit(self, asks: Sequence[Ask]) -> list[tuple[Ask, int]] | None:
        """Each ask with the largest common cap on its answer room that fits; None: none does."""
        if any(self.usd is not None and a.price is None for a in asks):
            return None  # no price: the USD limit cannot be kept (refused before the run)
        top = max(a.wanted for a in asks)
        if self._fits(asks, top):
            return [(a, a.wanted) for a in asks]
        least = max(a.least for a in asks)
        if not self._fits(asks, least):
            return None
        low, high = least, top  # the largest cap that fits, by bisection
        while low < high:
            middle = (low + high + 1) // 2
            if self._fits(asks, middle):
                low = middle
            else:
                high = middle - 1
        return [(a, min(a.wanted, low)) for a in asks]

    def _take(self, granted: list[tuple[Ask, int]], labels: Sequence[str]) -> list[Reservation]:
        taken: list[Reservation] = []
        for (ask, room), label in zip(granted, labels, strict=True):
            reservation = Reservation(
                max_tokens=room,
                usd=ask.usd(room),
                tokens=ask.prompt + room,
                lowered=room < ask.wanted,
            )
            self.reserved_usd += reservation.usd
            self.reserved_tokens += reservation.tokens
            if reservation.lowered:
                self.lowered.append(label)
                self.lowered_to.append((label, ask.room, room))
            taken.append(reservation)
        return taken
