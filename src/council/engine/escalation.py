"""Escalate only where there is doubt: a small first panel, then the full council if needed.

With `--escalate` the oracle asks its first panel (the council's first persona, or
its first two or three, or the members named) before anyone else. Each panel answer
is read as a ballot (engine/ballots.py): `--vote`'s JSON ballot, or, for free
answers, the "Answer: ..." and "Confidence: N%" lines every persona of such a run is
asked to end with. The panel *agrees* when every member gave a readable ballot, all
for the same choice, and the lowest confidence stated reaches the threshold; a
confidence not stated is doubt. Then the panel's answer is the council's and no one
else is asked (nor the arbiter). Otherwise the rest of the council runs, the panel's
answers counted as they are: nobody is asked twice.

A *shadow* run (`--shadow-rate`) runs the full council even when the panel agreed,
and records whether the full council's answer (the vote's winner, or the majority of
the members' "Answer:" lines) differs from the panel's: the saving is measured.

Pure and stdlib-only but for the ballot reader: the engine (oracle.py) calls it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from council.engine.ballots import choice_key
from council.engine.model import Ballot

__all__ = [
    "DEFAULT_PANEL",
    "DEFAULT_THRESHOLD",
    "MAX_PANEL",
    "Escalation",
    "EscalationResult",
    "PanelDecision",
    "decide",
    "panel_names",
]

# One persona first: the cheapest panel, and what saves most when it is sure. A vote of
# two or three (`--panel 2`) costs more each time and doubts less often wrongly.
DEFAULT_PANEL = 1
MAX_PANEL = 3
# A panel member's stated confidence must reach this (0 to 1) for its answer to stand.
DEFAULT_THRESHOLD = 0.8


@dataclass(frozen=True)
class Escalation:
    """A plan's escalation: who is asked first, the confidence their agreement needs,
    and whether this run is a shadow run (the full council asked anyway)."""

    panel: tuple[str, ...]
    threshold: float = DEFAULT_THRESHOLD
    shadow_rate: float = 0.0
    shadow: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "panel": list(self.panel),
            "threshold": self.threshold,
            "shadow_rate": self.shadow_rate,
            "shadow": self.shadow,
        }


def panel_names(members: Sequence[str], panel: int | Sequence[str]) -> tuple[str, ...]:
    """The first panel: the first `panel` members, or the members named, in council order.

    Raises ValueError with the reason when the panel is not a part of the council.
    """
    if isinstance(panel, int):
        if not 1 <= panel <= MAX_PANEL:
            raise ValueError(f"a panel is 1 to {MAX_PANEL} personas, not {panel}")
        if panel >= len(members):
            raise ValueError(
                f"a panel of {panel} is the whole council of {len(members)}: nothing to save"
            )
        return tuple(members[:panel])
    names = list(dict.fromkeys(panel))
    unknown = [n for n in names if n not in members]
    if unknown:
        raise ValueError(f"{', '.join(unknown)} not in the council ({', '.join(members)})")
    if not 1 <= len(names) <= MAX_PANEL:
        raise ValueError(f"a panel is 1 to {MAX_PANEL} personas, not {len(names)}")
    if len(names) >= len(members):
        raise ValueError("the panel is the whole council: nothing to save")
    return tuple(m for m in members if m in names)


@dataclass(frozen=True)
class PanelDecision:
    """What the first panel said: whether it agreed (its answer stands), on what, how
    sure its least sure member was, and why not when it did not."""

    agreed: bool
    choice: str | None
    confidence: float | None
    reason: str
    ballots: tuple[Ballot, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "agreed": self.agreed,
            "choice": self.choice,
            "confidence": self.confidence,
            "reason": self.reason,
            "ballots": [
                {"persona": b.persona, "choice": b.choice, "confidence": b.confidence}
                for b in self.ballots
            ],
        }


def decide(ballots: Sequence[Ballot], panel: int, threshold: float) -> PanelDecision:
    """The panel agrees when all `panel` members gave a ballot for one choice, each with a
    stated confidence of at least `threshold`; anything else is doubt."""
    kept = tuple(ballots)
    read = [b for b in kept if b.choice is not None]
    if len(read) < panel:
        missing = panel - len(read)
        return PanelDecision(
            False, None, None, f"{missing} of {panel} gave no readable answer", kept
        )
    keys = {choice_key(b.choice or "") for b in read}
    stated = [b.confidence for b in read if b.confidence is not None]
    lowest = min(stated) if len(stated) == len(read) else None
    if len(keys) > 1:
        choices = ", ".join(f"{b.persona}: {b.choice}" for b in read)
        return PanelDecision(False, None, lowest, f"the panel differs ({choices})", kept)
    choice = read[0].choice
    if lowest is None:
        return PanelDecision(False, choice, None, "a confidence was not stated", kept)
    if lowest < threshold:
        return PanelDecision(
            False, choice, lowest, f"confidence {lowest:.2g} is below {threshold:g}", kept
        )
    return PanelDecision(True, choice, lowest, f"confidence {lowest:.2g} ≥ {threshold:g}", kept)


@dataclass
class EscalationResult:
    """What escalation did in one run, for every output.

    `calls_full` is what the full council makes (its personas, and the synthesis when
    asked); `calls_saved` those not made. `cost_saved_usd` is an estimate: the panel's
    mean cost a call times the calls saved (`basis` says so); None when no cost is known.
    A shadow run saves nothing; `changed` says whether the full council's answer
    differs from the panel's (None: not a shadow run, or nothing to compare).
    """

    escalation: Escalation
    decision: PanelDecision | None = None
    escalated: bool = False
    calls_full: int = 0
    calls_saved: int = 0
    cost_saved_usd: float | None = None
    basis: str = ""
    full_choice: str | None = None
    changed: bool | None = None
    not_asked: tuple[str, ...] = field(default=())

    @property
    def panel(self) -> tuple[str, ...]:
        return self.escalation.panel

    def to_dict(self) -> dict[str, Any]:
        return {
            "escalated": self.escalated,
            "calls_saved": self.calls_saved,
            "calls_full": self.calls_full,
            "cost_saved_usd": None
            if self.cost_saved_usd is None
            else round(self.cost_saved_usd, 8),
            "basis": self.basis,
            "panel": list(self.panel),
            "threshold": self.escalation.threshold,
            "decision": self.decision.to_dict() if self.decision is not None else None,
            "shadow": self.escalation.shadow,
            "shadow_rate": self.escalation.shadow_rate,
            "full_choice": self.full_choice,
            "changed": self.changed,
        }

    def saved(self, count: int, panel_costs: Sequence[float | None]) -> None:
        """`count` calls not made, costed at the panel's mean cost a call when known."""
        self.calls_saved = count
        known = [c for c in panel_costs if c is not None]
        if not count:
            self.cost_saved_usd = 0.0 if known else None
            self.basis = "no call saved"
            return
        if not known:
            self.basis = f"{count} calls not made; no price known for the panel's"
            return
        mean = sum(known) / len(known)
        self.cost_saved_usd = mean * count
        self.basis = f"{count} calls not made × the panel's mean cost a call (${mean:.6f})"
