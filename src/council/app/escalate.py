"""`--escalate` from flags, a preset's `escalate:` or the API's `escalate=`, to a plan's part.

    options = escalate_options(True)                       # the defaults
    options = escalate_options({"panel": 2, "shadow_rate": 0.1})
    plan = plan_oracle(council, flags, query, synthesize=True, escalate=options)

Precedence: the command line (or the API's argument) over the preset. Whether this run
is a shadow run is drawn here, once, from `shadow_rate` (`-o seed N` makes it
repeatable), so that the plan says it and `--dry-run` shows it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from council.engine.escalation import (
    DEFAULT_PANEL,
    DEFAULT_THRESHOLD,
    MAX_PANEL,
    Escalation,
    panel_names,
)
from council.errors import UsageError

__all__ = [
    "EscalateFlags",
    "EscalateOptions",
    "escalate_options",
    "escalation_for",
    "escalation_line",
    "escalation_metrics",
    "escalation_summary",
    "parse_panel",
]

Panel = int | tuple[str, ...]


@dataclass(frozen=True)
class EscalateOptions:
    """How to escalate: the first panel (how many of the council's first personas, or
    their names), the confidence its agreement needs, the share of shadow runs."""

    panel: Panel = DEFAULT_PANEL
    threshold: float = DEFAULT_THRESHOLD
    shadow_rate: float = 0.0


def parse_panel(text: str | int | Sequence[str], what: str = "--panel") -> Panel:
    """`2`, or `judge,critic` (a list too): a number of first personas, or their names."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    if isinstance(text, str):
        stripped = text.strip()
        if stripped.isdigit():
            return int(stripped)
        names = tuple(n.strip() for n in stripped.split(",") if n.strip())
    else:
        names = tuple(str(n).strip() for n in text)
    if not names:
        raise UsageError(
            f"{what} is empty", f"give 1 to {MAX_PANEL}, or the personas' names: judge,critic"
        )
    return names


def _fraction(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise UsageError(f"{what} {value!r}: expected a number from 0 to 1", f"e.g. {what} 0.8")
    return float(value)


def escalate_options(
    value: bool | Mapping[str, Any] | EscalateOptions | None,
) -> EscalateOptions | None:
    """The API's `escalate=` or a preset's `escalate:` as options; None: no escalation."""
    if value is None or value is False:
        return None
    if value is True:
        return EscalateOptions()
    if isinstance(value, EscalateOptions):
        return value
    if not isinstance(value, Mapping):
        raise UsageError(
            f"escalate={value!r}: expected True, False or a mapping",
            'e.g. escalate={"panel": 2, "threshold": 0.8, "shadow_rate": 0.1}',
        )
    unknown = sorted(set(value) - {"panel", "threshold", "shadow_rate"})
    if unknown:
        raise UsageError(
            f"escalate takes no {', '.join(unknown)}", "its keys: panel, threshold, shadow_rate"
        )
    return EscalateOptions(
        panel=parse_panel(value.get("panel", DEFAULT_PANEL), "panel"),
        threshold=_fraction(value.get("threshold", DEFAULT_THRESHOLD), "threshold"),
        shadow_rate=_fraction(value.get("shadow_rate", 0.0), "shadow_rate"),
    )


def escalation_for(
    options: EscalateOptions, members: Sequence[str], seed: Any = None
) -> Escalation:
    """The plan's escalation for this council: its panel checked, a shadow run drawn."""
    try:
        panel = panel_names(list(members), options.panel)
    except ValueError as error:
        raise UsageError(
            f"--escalate: {error}",
            f"give --panel 1 to {MAX_PANEL} (fewer than the council), or members' names",
        ) from None
    rate = options.shadow_rate
    # Seeded (`-o seed N`, with the question): the same question is drawn the same way.
    draw = random.Random(repr(seed)) if seed is not None else random
    shadow = rate >= 1 or (rate > 0 and draw.random() < rate)
    return Escalation(panel=panel, threshold=options.threshold, shadow_rate=rate, shadow=shadow)


@dataclass(frozen=True)
class EscalateFlags:
    """`council oracle`'s --escalate/--no-escalate, --panel, --escalate-threshold and
    --shadow-rate as given (None: not given; a preset's `escalate:` may say)."""

    escalate: bool | None = None
    panel: str | None = None
    threshold: float | None = None
    shadow_rate: float | None = None

    def options(self, preset: Any) -> EscalateOptions | None:
        """The run's escalation: the flags over the preset's; None: none."""
        tuning = {"--panel": self.panel, "--escalate-threshold": self.threshold}
        tuning["--shadow-rate"] = self.shadow_rate
        given = [flag for flag, value in tuning.items() if value is not None]
        base = None if self.escalate is False else escalate_options(preset)
        if self.escalate and base is None:
            base = EscalateOptions()
        if base is None:
            if given:
                raise UsageError(
                    f"{given[0]} goes with --escalate",
                    "add --escalate (or escalate: in the preset), or drop it",
                )
            return None
        return EscalateOptions(
            panel=parse_panel(self.panel) if self.panel is not None else base.panel,
            threshold=_fraction(self.threshold, "--escalate-threshold")
            if self.threshold is not None
            else base.threshold,
            shadow_rate=_fraction(self.shadow_rate, "--shadow-rate")
            if self.shadow_rate is not None
            else base.shadow_rate,
        )


def escalation_metrics(escalation: dict[str, Any]) -> dict[str, Any]:
    """One run's escalation, as a result line keeps it (`council eval --out`)."""
    decision = escalation.get("decision") or {}
    return {
        "escalated": escalation["escalated"],
        "agreed": decision.get("agreed"),
        "calls_saved": escalation["calls_saved"],
        "calls_full": escalation["calls_full"],
        "cost_saved_usd": escalation["cost_saved_usd"],
        "shadow": escalation["shadow"],
        "changed": escalation["changed"],
    }


def escalation_summary(lines: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Escalating runs summed up: how many escalated, the calls saved of those a full
    council makes, and the shadow runs' measure (how often the full council changed an
    answer the panel agreed on). None: no escalating run among `lines`."""
    runs = [
        line["metrics"]["escalation"]
        for line in lines
        if isinstance(line.get("metrics"), dict) and line["metrics"].get("escalation")
    ]
    if not runs:
        return None
    full = sum(int(r.get("calls_full") or 0) for r in runs)
    saved = sum(int(r.get("calls_saved") or 0) for r in runs)
    shadows = [r for r in runs if r.get("shadow") and r.get("agreed")]
    changed = sum(1 for r in shadows if r.get("changed"))
    costs = [r.get("cost_saved_usd") for r in runs if r.get("cost_saved_usd") is not None]
    return {
        "runs": len(runs),
        "escalated": sum(1 for r in runs if r.get("escalated")),
        "calls_full": full,
        "calls_saved": saved,
        "calls_saved_share": round(saved / full, 4) if full else None,
        "cost_saved_usd": round(sum(costs), 8) if costs else None,
        "shadow_runs": len(shadows),
        "shadow_changed": changed,
        "shadow_changed_share": round(changed / len(shadows), 4) if shadows else None,
    }


def escalation_line(summary: dict[str, Any] | None) -> str | None:
    """The summary in one line (None: nothing escalated)."""
    if summary is None:
        return None
    line = (
        f"escalation: {summary['escalated']} of {summary['runs']} runs escalated; "
        f"{summary['calls_saved']} of {summary['calls_full']} calls saved"
    )
    share = summary["calls_saved_share"]
    if share is not None:
        line += f" ({share:.0%})"
    if summary["shadow_runs"]:
        line += (
            f"; shadow runs: the full council changed {summary['shadow_changed']} of "
            f"{summary['shadow_runs']} answers the panel agreed on"
        )
    return line
