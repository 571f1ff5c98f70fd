"""Reviewer bias, measured: position consistency, length correlation, self-preference.

Pure functions over what reviewers (`--rank`) and jurors (`council judge --pair`)
returned; no call is made here.

- **Position consistency**: a reviewer asked again with the answers in the reverse
  order is consistent when it puts the same answer first both times (for a pair: the
  same verdict both ways, i.e. 1 - the position-flip rate). The run's figure is the
  share of re-asked reviewers that were consistent.
- **Length correlation**: Spearman's rank correlation (ties get their average rank)
  between an answer's length in characters and the share of the top place a reviewer
  gave it (1 first ... 0 last; a pair's verdict gives 1, 0 or 1/2 each), pooled over
  every reviewer's (answer, share) pairs. Positive: longer answers fare better.
- **Self-preference**: in shadow mode a reviewer also sees its own answer, anonymised
  like the others; the figure is the share of those reviews that put its own answer
  first, beside the chance of that (1 / answers shown). Its official ranking never
  counts that review.

Each figure is None where it was not measured (no re-ask, fewer than two distinct
lengths, no shadow review).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BiasReport", "ReviewerBias", "bias_report", "place_shares", "spearman"]


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start : end + 1]:
            ranks[i] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rho (Pearson's r of the average ranks); None with fewer than two points
    or when either side does not vary (nothing to correlate)."""
    if len(xs) != len(ys) or len(xs) < 2:
        return None
    if len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    # Imported here: every run imports this module (its results carry a report), few
    # measure anything, and statistics pulls in more than it needs.
    import statistics

    # statistics.correlation(method="ranked") is Python 3.12; this is the same on 3.11.
    rho = statistics.correlation(_ranks(xs), _ranks(ys))
    return rho if math.isfinite(rho) else None


def place_shares(ranked: Sequence[str]) -> dict[str, float]:
    """Each ranked name's share of the top place: 1 for the first ... 0 for the last."""
    k = len(ranked)
    return {name: 1.0 if k == 1 else (k - 1 - p) / (k - 1) for p, name in enumerate(ranked)}


@dataclass(frozen=True)
class ReviewerBias:
    """One reviewer's measurements (None: not measured for it)."""

    model: str | None = None
    position_consistent: bool | None = None
    self_first: bool | None = None
    self_chance: float | None = None  # 1 / answers shown in its shadow review
    length_correlation: float | None = None  # over its own ranking's answers

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "position_consistent": self.position_consistent,
            "self_first": self.self_first,
            "self_chance": _round(self.self_chance),
            "length_correlation": _round(self.length_correlation),
        }


@dataclass(frozen=True)
class BiasReport:
    """A run's bias figures and each reviewer's; `to_dict` is `--json`'s `bias`."""

    position_consistency: float | None = None
    length_correlation: float | None = None
    self_preference: float | None = None
    self_preference_chance: float | None = None
    reviewers: dict[str, ReviewerBias] = field(default_factory=dict)

    @property
    def position_checked(self) -> int:
        return sum(r.position_consistent is not None for r in self.reviewers.values())

    @property
    def self_checked(self) -> int:
        return sum(r.self_first is not None for r in self.reviewers.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "position_consistency": _round(self.position_consistency),
            "length_correlation": _round(self.length_correlation),
            "self_preference": _round(self.self_preference),
            "self_preference_chance": _round(self.self_preference_chance),
            "checked": {"position": self.position_checked, "self": self.self_checked},
            "reviewers": {name: r.to_dict() for name, r in self.reviewers.items()},
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _share(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def bias_report(
    scores: dict[str, dict[str, float]],
    lengths: dict[str, int],
    *,
    consistent: dict[str, bool] | None = None,
    self_first: dict[str, tuple[bool, float]] | None = None,
    models: dict[str, str | None] | None = None,
) -> BiasReport:
    """The report from each reviewer's scores of the answers (`scores[reviewer][answer]`,
    higher better), the answers' `lengths`, the re-asked reviewers' consistency, and the
    shadow reviews' (own answer first, chance of that)."""
    consistent, self_first, models = consistent or {}, self_first or {}, models or {}
    xs: list[float] = []
    ys: list[float] = []
    reviewers: dict[str, ReviewerBias] = {}
    for reviewer in dict.fromkeys([*scores, *consistent, *self_first]):
        given = scores.get(reviewer, {})
        own_x = [float(lengths[a]) for a in given if a in lengths]
        own_y = [s for a, s in given.items() if a in lengths]
        xs += own_x
        ys += own_y
        first, chance = self_first.get(reviewer, (None, None))
        reviewers[reviewer] = ReviewerBias(
            model=models.get(reviewer),
            position_consistent=consistent.get(reviewer),
            self_first=first,
            self_chance=chance,
            length_correlation=spearman(own_x, own_y),
        )
    shadow = list(self_first.values())
    return BiasReport(
        position_consistency=_share(list(consistent.values())),
        length_correlation=spearman(xs, ys),
        self_preference=_share([first for first, _ in shadow]),
        self_preference_chance=sum(c for _, c in shadow) / len(shadow) if shadow else None,
        reviewers=reviewers,
    )
