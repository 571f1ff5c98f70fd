"""`council stats --bias`: reviewer bias across runs, per persona and per model.

Read from each run's stored `--json` document (its `bias.reviewers`, engine/bias.py):
no column of its own. A run stored without its texts (`--no-store-text`) has no
document, so it adds nothing here. Per group:

- position consistency: the consistent share of its re-asked reviews;
- self-preference: the share of its shadow reviews that put its own answer first,
  beside the chance of that (the mean of 1 / answers shown);
- length correlation: the mean of its reviews' own Spearman correlations (each
  review's answers' lengths against their places), over the reviews where one exists.

A value the document should not hold (a consistency that is not true/false, a
correlation outside -1..1) counts as not measured; it never stops the report.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import fmean
from typing import Any

from council.store.db import HistoryDB
from council.store.documents import documents_holding

__all__ = ["BiasGroup", "BiasStats", "build_bias_stats"]


@dataclass
class BiasGroup:
    name: str
    position_checked: int = 0
    position_consistency: float | None = None
    self_checked: int = 0
    self_preference: float | None = None
    self_chance: float | None = None
    length_reviews: int = 0
    length_correlation: float | None = None


@dataclass
class BiasStats:
    runs: int  # runs whose document has a bias report
    by_persona: list[BiasGroup]
    by_model: list[BiasGroup]

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "by_persona": [asdict(g) for g in self.by_persona],
            "by_model": [asdict(g) for g in self.by_model],
        }


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _within(value: Any, low: float, high: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and low <= value <= high else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _group(name: str, reviews: list[dict[str, Any]]) -> BiasGroup:
    position = [f for r in reviews if (f := _flag(r.get("position_consistent"))) is not None]
    shadow = [
        (first, chance)
        for r in reviews
        if (first := _flag(r.get("self_first"))) is not None
        and (chance := _within(r.get("self_chance"), 0, 1)) is not None
    ]
    lengths = [c for r in reviews if (c := _within(r.get("length_correlation"), -1, 1)) is not None]
    return BiasGroup(
        name=name or "(unknown)",
        position_checked=len(position),
        position_consistency=_round(sum(position) / len(position)) if position else None,
        self_checked=len(shadow),
        self_preference=_round(sum(f for f, _ in shadow) / len(shadow)) if shadow else None,
        self_chance=_round(fmean(c for _, c in shadow)) if shadow else None,
        length_reviews=len(lengths),
        length_correlation=_round(fmean(lengths)) if lengths else None,
    )


def _reviews(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(reviewer, its measurements) from one stored document; [] when it has none."""
    bias = data.get("bias")
    reviewers = bias.get("reviewers") if isinstance(bias, dict) else None
    if not isinstance(reviewers, dict):
        return []
    return [(str(name), r) for name, r in reviewers.items() if isinstance(r, dict)]


def build_bias_stats(history: HistoryDB, *, since: float | None = None) -> BiasStats:
    """Every run's bias report since `since`, grouped by persona and by model."""
    # Only documents that can hold a report are parsed (answers make them long).
    documents = documents_holding(history, '"position_consistent"', since=since)
    by_persona: dict[str, list[dict[str, Any]]] = {}
    by_model: dict[str, list[dict[str, Any]]] = {}
    runs = 0
    for document in documents:
        reviews = _reviews(document)
        runs += bool(reviews)
        for name, review in reviews:
            by_persona.setdefault(name, []).append(review)
            by_model.setdefault(str(review.get("model") or ""), []).append(review)
    return BiasStats(
        runs=runs,
        by_persona=[_group(n, r) for n, r in sorted(by_persona.items())],
        by_model=[_group(n, r) for n, r in sorted(by_model.items())],
    )
