"""How far raters agree beyond chance: Fleiss' kappa, Cohen's kappa, Krippendorff's alpha.

A jury reports its own agreement (`council judge`): LLM raters agree with each other
only moderately, so a pooled verdict means little without it. Pure functions on
plain values, checked against the published worked examples (tests/test_agreement_stats.py):

    fleiss_kappa([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], ...])   # counts per item and category
    cohen_kappa(["yes", "no", ...], ["yes", "yes", ...])    # two raters, the same items
    krippendorff_alpha([[1, 1, None, 1], ...], "interval")  # per item, each rater's value

Each returns None where the statistic is undefined (every rating in one category:
no disagreement is possible, so none beyond chance can be measured), never a
division by zero.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from itertools import permutations
from typing import Literal

__all__ = ["category_counts", "cohen_kappa", "fleiss_kappa", "krippendorff_alpha"]

Level = Literal["nominal", "interval"]


def category_counts(ratings: Sequence[Sequence[Hashable]]) -> list[list[int]]:
    """Per item, how many raters chose each category (the categories in first-seen order)."""
    categories: dict[Hashable, int] = {}
    for item in ratings:
        for label in item:
            categories.setdefault(label, len(categories))
    rows = []
    for item in ratings:
        row = [0] * len(categories)
        for label in item:
            row[categories[label]] += 1
        rows.append(row)
    return rows


def fleiss_kappa(counts: Sequence[Sequence[int]]) -> float | None:
    """Fleiss' kappa (1971) from `counts[i][j]`: raters putting item i in category j.

    Every item needs the same number of raters, at least two.
    """
    if not counts:
        return None
    raters = sum(counts[0])
    if raters < 2 or any(sum(row) != raters for row in counts):
        raise ValueError("Fleiss' kappa needs the same number of raters (two or more) per item")
    items = len(counts)
    shares = [sum(row[j] for row in counts) / (items * raters) for j in range(len(counts[0]))]
    observed = (
        sum((sum(n * n for n in row) - raters) / (raters * (raters - 1)) for row in counts) / items
    )
    chance = sum(p * p for p in shares)
    if chance >= 1:
        return None
    return (observed - chance) / (1 - chance)


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float | None:
    """Cohen's kappa (1960) of two raters' labels for the same items, in the same order."""
    if len(first) != len(second):
        raise ValueError("Cohen's kappa needs both raters' labels for the same items")
    if not first:
        return None
    total = len(first)
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / total
    left, right = Counter(first), Counter(second)
    chance = sum(left[label] * right[label] for label in left) / (total * total)
    if chance >= 1:
        return None
    return (observed - chance) / (1 - chance)


def _distance(level: Level, a: Hashable, b: Hashable) -> float:
    if level == "nominal":
        return 0.0 if a == b else 1.0
    return (float(a) - float(b)) ** 2  # type: ignore[arg-type]


def krippendorff_alpha(
    units: Sequence[Sequence[Hashable | None]], level: Level = "interval"
) -> float | None:
    """Krippendorff's alpha: `units[u]` is each rater's value for unit u (None: missing).

    From the coincidences of values within units ("Computing Krippendorff's Alpha-
    Reliability", 2011): alpha = 1 - D_observed / D_expected, counting only units with
    two values or more. `level` "interval" (scores) or "nominal" (categories).
    """
    pairable = [[v for v in unit if v is not None] for unit in units]
    pairable = [values for values in pairable if len(values) >= 2]
    total = sum(len(values) for values in pairable)
    if total < 2:
        return None
    observed = 0.0
    for values in pairable:
        within = sum(_distance(level, a, b) for a, b in permutations(values, 2))
        observed += within / (len(values) - 1)
    observed /= total
    everything = [v for values in pairable for v in values]
    expected = sum(_distance(level, a, b) for a, b in permutations(everything, 2))
    expected /= total * (total - 1)
    if expected == 0:
        return None
    return 1 - observed / expected
