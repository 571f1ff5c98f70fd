"""`council eval`'s trade-off: two baselines, dominance, and paired bootstrap differences.

    found = baselines(lines, strategies, alone)      # best single persona, majority vote
    rows = [*summarize(lines, strategies), *found.summaries]
    marks = dominated(points(rows), "calls")          # {name: the one that dominates it}
    diff = paired_bootstrap(a, b, resamples=2000, seed="0:vote:critic")

The baselines cost no call: they are read from the members' own answers that a
council strategy already asked for (each result line's `members`, scored as the item
is), or, with no council strategy, from the persona-alone strategies' lines. Pure
functions on result lines (plain dicts); no I/O, no model.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from council.engine.scoring import StrategySummary, final_answer, percentile, summarize

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "Baselines",
    "Difference",
    "Point",
    "TradeOff",
    "answer_key",
    "baselines",
    "correct_by_item",
    "cost_axis",
    "dominated",
    "paired_bootstrap",
    "points",
    "trade_off",
]

# Resamples of a paired bootstrap: at this count a bound moves by about one item (1/n)
# between seeds, and 1000 items take some 30 ms (benchmarks/tradeoff_bench.py).
BOOTSTRAP_RESAMPLES = 2000
BEST_SINGLE = "best single"
MAJORITY = "majority vote"  # a space: never a persona's or a strategy's name


def answer_key(line: dict[str, Any]) -> str | None:
    """What an answer says, for counting a majority: the letter or number the scorer
    read, else the free text's final answer (after its last "Answer:", else its last
    line), normalised. None: no answer to count (a failure, an abstention)."""
    if line.get("status") != "ok" or line.get("answer") is None:
        return None
    predicted = line.get("predicted")
    if line.get("scorer") in ("choice", "number"):
        return None if predicted is None else str(predicted)
    return final_answer(str(line["answer"])) or None


@dataclass
class Baselines:
    """The two baselines' per-item rows (as result lines) and where they come from.

    `source`: the strategy whose members' answers they read ("" when none could be);
    `why`: why they are missing, when they are."""

    source: str = ""
    persona: str | None = None  # the best single persona
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    why: str | None = None
    ties: int = 0  # items the majority left tied (counted wrong, as vote counts a tie)

    @property
    def names(self) -> list[str]:
        return list(self.rows)

    @property
    def summaries(self) -> list[StrategySummary]:
        return summarize([r for rows in self.rows.values() for r in rows], self.names)


def _member_lines(lines: Sequence[dict[str, Any]], source: str) -> dict[str, list[dict[str, Any]]]:
    """Per persona, its own answer on each item of the source strategy, as a result line."""
    by_persona: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        if line.get("strategy") != source:
            continue
        for member in line.get("members") or []:
            if member.get("status") == "stopped":
                continue  # a ballot the vote no longer needed: no answer, not a wrong one
            row = {**member, "item": line.get("item"), "scorer": line.get("scorer")}
            by_persona.setdefault(str(member.get("persona")), []).append(row)
    return by_persona


def _has_members(lines: Sequence[dict[str, Any]], name: str) -> bool:
    mine = [line for line in lines if line.get("strategy") == name]
    return bool(mine) and all(isinstance(line.get("members"), list) for line in mine)


def _stops(lines: Sequence[dict[str, Any]], name: str) -> bool:
    return any(
        m.get("status") == "stopped"
        for line in lines
        if line.get("strategy") == name
        for m in line.get("members") or []
    )


def _graded(rows: Iterable[dict[str, Any]]) -> bool:
    """Every answer has a score (a model-graded scorer leaves members' answers ungraded)."""
    return all(r.get("correct") is not None for r in rows if r.get("status") == "ok")


def _pool(
    lines: Sequence[dict[str, Any]], strategies: Sequence[str], alone: Sequence[str]
) -> tuple[str, dict[str, list[dict[str, Any]]], str | None]:
    """The answers the baselines read, and why there are none: the first council
    strategy whose lines carry its members' graded answers (one that asked every member
    before a vote that stopped some), else the persona-alone strategies' own lines."""
    council = [s for s in strategies if s not in alone]
    kept = [s for s in council if _has_members(lines, s)]
    kept.sort(key=lambda s: _stops(lines, s))  # stable: the given order otherwise
    for source in kept:
        members = _member_lines(lines, source)
        if all(_graded(rows) for rows in members.values()):
            return source, members, None
    pool = {s: [line for line in lines if line.get("strategy") == s] for s in alone}
    pool = {s: rows for s, rows in pool.items() if rows and _graded(rows)}
    if pool:
        return ", ".join(pool), pool, None
    if kept:
        why = "the members' answers are not graded: a model-graded scorer would need a call each"
    elif council:  # a strategy that keeps none, or lines an older council wrote
        why = "no strategy kept its members' answers (an older council's lines keep none)"
    else:
        why = "no answer to read"
    return "", {}, why


def _best(pool: dict[str, list[dict[str, Any]]]) -> str:
    """The persona right most often (the cheaper, then the first, on a tie)."""

    def rank(name: str) -> tuple[float, float]:
        rows = pool[name]
        right = sum(1 for r in rows if r.get("correct") is True) / len(rows)
        calls = sum(int((r.get("metrics") or {}).get("calls") or 0) for r in rows) / len(rows)
        return -right, calls

    return min(pool, key=rank)  # min keeps the first of equals


def _majority_row(item: str, answers: list[dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """The majority's result line for one item (and whether it was tied)."""
    counts: dict[str, list[dict[str, Any]]] = {}
    for row in answers:
        key = answer_key(row)
        if key is not None:
            counts.setdefault(key, []).append(row)
    metrics = _summed([r.get("metrics") or {} for r in answers])
    top = max((len(rows) for rows in counts.values()), default=0)
    leaders = [rows for rows in counts.values() if len(rows) == top]
    if not counts:  # failed only when every member's call did; unreadable answers are wrong
        status = "ok" if any(r.get("status") == "ok" for r in answers) else "failed"
        return {"item": item, "status": status, "correct": False, "metrics": metrics}, False
    tied = len(leaders) > 1
    first = leaders[0][0]  # its first voter's answer, in the council's order, is scored
    correct = not tied and first.get("correct") is True
    line = {"item": item, "status": "ok", "correct": correct, "metrics": metrics}
    return line, tied


def _summed(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Several parallel calls' metrics as one run's: counts and costs added, the slowest."""

    def total(key: str) -> Any:
        known = [m[key] for m in metrics if isinstance(m.get(key), int | float)]
        return sum(known) if known else None

    latencies = [m["latency"] for m in metrics if isinstance(m.get("latency"), int | float)]
    return {
        "calls": total("calls") or 0,
        "tokens_in": total("tokens_in"),
        "tokens_out": total("tokens_out"),
        "cost_usd": total("cost_usd"),
        "latency": max(latencies) if latencies else None,
    }


def baselines(
    lines: Sequence[dict[str, Any]], strategies: Sequence[str], alone: Sequence[str]
) -> Baselines:
    """The best single persona and the majority vote, read from answers already given."""
    source, pool, why = _pool(lines, strategies, alone)
    if why is not None:
        return Baselines(why=why)
    best = _best(pool)
    found = Baselines(source=source, persona=best)
    found.rows[f"{BEST_SINGLE} ({best})"] = [dict(r) for r in pool[best]]
    by_item: dict[str, list[dict[str, Any]]] = {}
    for rows in pool.values():
        for row in rows:
            by_item.setdefault(str(row.get("item")), []).append(row)
    majority: list[dict[str, Any]] = []
    for item, answers in by_item.items():
        line, tied = _majority_row(item, answers)
        majority.append(line)
        found.ties += tied
    found.rows[MAJORITY] = majority
    for name, rows in found.rows.items():
        for row in rows:
            row["strategy"] = name
    return found


# -- cost against accuracy ----------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """One strategy on the cost-accuracy plane: accuracy, and its cost per item."""

    name: str
    accuracy: float
    calls: float  # per item
    tokens: float | None  # per item; None: unknown
    usd: float | None  # per item; None: unknown

    def cost(self, axis: str) -> float:
        value = {"usd": self.usd, "tokens": self.tokens, "calls": self.calls}[axis]
        return float(value or 0.0)


def points(summaries: Iterable[StrategySummary]) -> list[Point]:
    """Each strategy with an answer on some item, as a point (per-item costs)."""
    found: list[Point] = []
    for s in summaries:
        if not s.n or s.accuracy is None:
            continue
        unknown = s.tokens_in is None and s.tokens_out is None
        tokens = None if unknown else (s.tokens_in or 0) + (s.tokens_out or 0)
        found.append(
            Point(
                s.name,
                s.accuracy,
                s.calls / s.n,
                None if tokens is None else tokens / s.n,
                None if s.cost_usd is None else s.cost_usd / s.n,
            )
        )
    return found


def cost_axis(found: Sequence[Point]) -> str:
    """What cost means on the plane: USD where every point's is known, else tokens, else calls."""
    if found and all(p.usd is not None for p in found):
        return "usd"
    if found and all(p.tokens is not None for p in found):
        return "tokens"
    return "calls"


def dominated(found: Sequence[Point], axis: str) -> dict[str, str]:
    """{name: a strategy that dominates it}: at least as accurate and no more costly,
    strictly better in one (the most accurate such one, then the cheapest)."""
    marks: dict[str, str] = {}
    for p in found:
        better = [
            q
            for q in found
            if q is not p
            and q.accuracy >= p.accuracy
            and q.cost(axis) <= p.cost(axis)
            and (q.accuracy > p.accuracy or q.cost(axis) < p.cost(axis))
        ]
        if better:
            marks[p.name] = min(better, key=lambda q: (-q.accuracy, q.cost(axis))).name
    return marks


# -- paired differences --------------------------------------------------------------------


def correct_by_item(rows: Iterable[dict[str, Any]]) -> dict[str, float]:
    """{item: 1.0 right, 0.0 wrong} of one strategy's result lines."""
    return {str(r.get("item")): 1.0 if r.get("correct") is True else 0.0 for r in rows}


@dataclass(frozen=True)
class Difference:
    """Accuracy of `name` minus that of `versus` on the items both answered, with its
    paired bootstrap interval (percentile method)."""

    name: str
    versus: str
    n: int
    difference: float
    low: float
    high: float

    @property
    def verdict(self) -> str:
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "no clear difference"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versus": self.versus,
            "n": self.n,
            "difference": round(self.difference, 6),
            "ci_low": round(self.low, 6),
            "ci_high": round(self.high, 6),
            "verdict": self.verdict,
        }


def paired_bootstrap(
    a: dict[str, float],
    b: dict[str, float],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: str = "0",
    confidence: float = 0.95,
) -> tuple[int, float, float, float] | None:
    """(n, mean of a - b, low, high) over the items both scored; None: none in common.

    The items are drawn with replacement `resamples` times, the same items for both
    (that is the pairing: each item's difference is resampled, not each side apart);
    the bounds are the percentiles of the resampled mean differences. `seed` (a string:
    Python seeds a Random with it the same on every platform and run) makes it repeatable.

    A resample is drawn as how many times each distinct difference comes up (-1, 0, +1
    for right/wrong items): n draws with replacement from a list are a multinomial count
    of its distinct values, so this is the same bootstrap, drawn in a few steps instead
    of n (1000 items x 2000 resamples in milliseconds rather than seconds).
    """
    items = [item for item in a if item in b]
    if not items:
        return None
    diffs = [a[item] - b[item] for item in items]
    n = len(diffs)
    counts: dict[float, int] = {}
    for d in diffs:
        counts[d] = counts.get(d, 0) + 1
    values = sorted(counts)
    rng = random.Random(seed)
    draw = _BinomialDraws(rng)
    means = []
    for _ in range(resamples):
        left, total, weight = n, 0.0, n
        for value in values[:-1]:
            got = draw(left, counts[value] / weight) if left else 0
            total += got * value
            left -= got
            weight -= counts[value]
        means.append((total + left * values[-1]) / n)
    tail = (1 - confidence) / 2 * 100
    low, high = percentile(means, tail), percentile(means, 100 - tail)
    assert low is not None and high is not None
    return n, sum(diffs) / n, low, high


class _BinomialDraws:
    """Binomial(n, p) draws by inverting its CDF (built once per n and p): the stdlib
    has no binomial sampler before Python 3.12."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.tables: dict[tuple[int, float], tuple[int, list[float]]] = {}

    def __call__(self, n: int, p: float) -> int:
        if p <= 0.0:
            return 0
        if p >= 1.0:
            return n
        table = self.tables.get((n, p))
        if table is None:
            table = self.tables[(n, p)] = _binomial_cdf(n, p)
        low, cdf = table
        return low + min(len(cdf) - 1, bisect.bisect_right(cdf, self.rng.random()))


def _binomial_cdf(n: int, p: float) -> tuple[int, list[float]]:
    """(k0, [P(X <= k) for k = k0...]) over the k whose probability is not negligible
    (under 1e-17 of the mode's): from the mode outwards by the ratio of neighbours, so
    no term under- or overflows and a table takes a few hundred steps at most."""
    ratio = p / (1 - p)
    mode = min(n, int((n + 1) * p))
    at_mode = math.exp(
        math.lgamma(n + 1) - math.lgamma(mode + 1) - math.lgamma(n - mode + 1)
        + mode * math.log(p) + (n - mode) * math.log1p(-p)
    )  # fmt: skip
    floor = at_mode * 1e-17
    above, k, pmf = [], mode, at_mode
    while k < n and pmf > floor:
        pmf *= (n - k) / (k + 1) * ratio
        k += 1
        above.append(pmf)
    below, k, pmf = [], mode, at_mode
    while k > 0 and pmf > floor:
        pmf *= k / ((n - k + 1) * ratio)
        k -= 1
        below.append(pmf)
    total, cdf = 0.0, []
    for pmf in [*reversed(below), at_mode, *above]:
        total += pmf
        cdf.append(total)
    return mode - len(below), cdf


# -- all of it, for one eval -----------------------------------------------------------------


@dataclass
class TradeOff:
    """An eval's strategies and baselines on the cost-accuracy plane, and their paired
    differences from the reference (the best single persona, else the first strategy)."""

    baselines: Baselines
    rows: list[StrategySummary]  # the strategies, then the baselines
    axis: str  # what cost per item is counted in: "usd", "tokens" or "calls"
    points: list[Point]
    dominated_by: dict[str, str]
    reference: str | None
    differences: list[Difference]
    seed: int
    resamples: int

    def point(self, name: str) -> Point | None:
        return next((p for p in self.points if p.name == name), None)

    def row_extras(self, name: str) -> dict[str, Any]:
        """A row's cost per item, dominance and difference from the reference (CSV, JSON)."""
        point = self.point(name)
        diff = next((d for d in self.differences if d.name == name), None)
        return {
            "kind": "baseline" if name in self.baselines.rows else "strategy",
            "calls_per_item": None if point is None else round(point.calls, 6),
            "tokens_per_item": _round(None if point is None else point.tokens),
            "cost_per_item": _round(None if point is None else point.usd, 8),
            "dominated_by": self.dominated_by.get(name),
            "diff_vs": None if diff is None else diff.versus,
            "diff": None if diff is None else round(diff.difference, 6),
            "diff_ci_low": None if diff is None else round(diff.low, 6),
            "diff_ci_high": None if diff is None else round(diff.high, 6),
        }

    def document(self) -> dict[str, Any]:
        found = self.baselines
        return {
            "baselines": {
                "source": found.source or None,
                "best_single": found.persona,
                "majority_ties": found.ties,
                "unavailable": found.why,
                "rows": [
                    {**s.to_dict(), **self.row_extras(s.name)}
                    for s in self.rows
                    if s.name in found.rows
                ],
            },
            "tradeoff": {
                "cost_axis": self.axis,
                "points": [
                    {
                        "name": p.name,
                        "accuracy": round(p.accuracy, 6),
                        "cost_per_item": round(p.cost(self.axis), 8),
                        "dominated_by": self.dominated_by.get(p.name),
                    }
                    for p in self.points
                ],
            },
            "comparisons": {
                "reference": self.reference,
                "method": "paired bootstrap, percentile interval",
                "confidence": 0.95,
                "resamples": self.resamples,
                "seed": self.seed,
                "differences": [d.to_dict() for d in self.differences],
            },
        }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def trade_off(
    lines: Sequence[dict[str, Any]],
    strategies: Sequence[str],
    alone: Sequence[str],
    *,
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> TradeOff:
    """The baselines, the plane and the paired differences of an eval's result lines."""
    found = baselines(lines, strategies, alone)
    rows = [*summarize(lines, strategies), *found.summaries]
    plane = points(rows)
    axis = cost_axis(plane)
    by_name: dict[str, list[dict[str, Any]]] = {name: [] for name in strategies}
    for line in lines:
        by_name.setdefault(str(line.get("strategy")), []).append(line)
    by_name.update(found.rows)
    best = next((n for n in found.rows if n.startswith(BEST_SINGLE)), None)
    reference = best or (strategies[0] if strategies else None)
    differences: list[Difference] = []
    if reference is not None:
        base = correct_by_item(by_name.get(reference, []))
        for s in rows:
            if s.name == reference:
                continue
            got = paired_bootstrap(
                correct_by_item(by_name.get(s.name, [])),
                base,
                resamples=resamples,
                seed=f"{seed}:{s.name}:{reference}",
            )
            if got is not None:
                differences.append(Difference(s.name, reference, *got))
    return TradeOff(
        found, rows, axis, plane, dominated(plane, axis), reference, differences, seed, resamples
    )
