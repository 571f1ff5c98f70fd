"""Where the time goes: per-persona, per-model or per-endpoint numbers from the history.

    report = build_stats(history, by="persona", since=time.time() - 7 * 86400)
    report.groups[0].p95_latency, report.suggestions

Slowest groups first (by p95 latency). Deliberations get their own line: rounds
run, how often they converged, what speculation saved and wasted. Suggestions are
made only when the data shows something actionable.

A value the history should not hold (a token count that is text or negative, a
latency that is not a number: written by an older council, or by hand) counts as
unknown, like a count the endpoint never sent; it never stops the report.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from council.engine.model import Mode
from council.store.db import HistoryDB

__all__ = ["GROUPINGS", "GroupStats", "StatsReport", "build_stats"]

GROUPINGS = {"persona": "persona", "model": "model", "endpoint": "endpoint_host"}
# A persona this many times slower (p95) than the others' median p95 is worth a look.
SLOW_FACTOR = 3.0
# An endpoint that answers 429 to more than this share of calls is being pushed too hard.
RATE_LIMIT_SHARE = 0.05
MIN_CALLS_FOR_ADVICE = 3


def _count(value: Any) -> int | None:
    """A whole number of at least 0, or None (unknown) for anything else the row holds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0 or value != int(value):
        return None
    return int(value)


def _seconds(value: Any) -> float | None:
    """A finite, non-negative number of seconds, or None (unknown)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _usd(value: Any) -> float | None:
    """A finite cost of at least 0, or None (unknown)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (no interpolation): an actual observed value."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, round(share * len(ordered) + 0.4999))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class GroupStats:
    name: str
    calls: int
    errors: int
    retries: int
    rate_limited: int
    p50_latency: float | None
    p95_latency: float | None
    p50_ttft: float | None
    p95_ttft: float | None
    tokens_in: int
    tokens_out: int
    tokens_unknown: int  # calls whose endpoint did not report usage
    # Seconds calls waited for a slot of their endpoint (not part of their latency).
    queued: float = 0.0
    p95_queued: float | None = None
    resends: int = 0  # calls re-sent after the server turned them away
    # USD of the calls whose cost is known (None: none is), and how many are not.
    cost_usd: float | None = None
    cost_unknown: int = 0

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0


@dataclass
class DeliberationStats:
    runs: int = 0
    rounds: int = 0
    converged: int = 0
    saved: float = 0.0
    wasted_tokens: int = 0

    @property
    def convergence_rate(self) -> float:
        return self.converged / self.runs if self.runs else 0.0


@dataclass
class StatsReport:
    by: str
    runs: int
    groups: list[GroupStats]
    deliberations: DeliberationStats
    suggestions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "runs": self.runs,
            "groups": [asdict(g) | {"error_rate": round(g.error_rate, 4)} for g in self.groups],
            "deliberations": asdict(self.deliberations)
            | {"convergence_rate": round(self.deliberations.convergence_rate, 4)},
            "suggestions": self.suggestions,
        }


def _group(name: str, rows: list[Any]) -> GroupStats:
    answered = [r for r in rows if r["status"] == "answered"]
    latencies = [v for r in answered if (v := _seconds(r["latency"])) is not None]
    ttfts = [v for r in answered if (v := _seconds(r["ttft"])) is not None]
    tokens_in = [_count(r["tokens_in"]) for r in answered]
    tokens_out = [_count(r["tokens_out"]) for r in answered]
    waits = [v for r in rows if (v := _seconds(r["queued"])) is not None]
    costs = [_usd(r["cost_usd"]) for r in rows]
    known = [c for c in costs if c is not None]
    # Free calls (never sent, reused) beside unknown ones are no "$0": unknown.
    cost = round(sum(known), 8) if known and (sum(known) or len(known) == len(costs)) else None
    return GroupStats(
        name=str(name) if name else "(unknown)",
        calls=len(rows),
        errors=sum(1 for r in rows if r["status"] == "failed"),
        retries=sum(_count(r["retries"]) or 0 for r in rows),
        rate_limited=sum(_count(r["rate_limited"]) or 0 for r in rows),
        p50_latency=_percentile(latencies, 0.5),
        p95_latency=_percentile(latencies, 0.95),
        p50_ttft=_percentile(ttfts, 0.5),
        p95_ttft=_percentile(ttfts, 0.95),
        tokens_in=sum(n or 0 for n in tokens_in),
        tokens_out=sum(n or 0 for n in tokens_out),
        tokens_unknown=sum(1 for n in tokens_out if n is None),
        queued=round(sum(waits), 4),
        p95_queued=_percentile(waits, 0.95),
        resends=sum(_count(r["resends"]) or 0 for r in rows),
        cost_usd=cost,
        cost_unknown=len(costs) - len(known),
    )


def _suggestions(by: str, groups: list[GroupStats], endpoints: list[GroupStats]) -> list[str]:
    found: list[str] = []
    if by == "persona":
        timed = [g for g in groups if g.p95_latency and g.calls >= MIN_CALLS_FOR_ADVICE]
        for group in timed:
            others = [g.p95_latency for g in timed if g is not group and g.p95_latency]
            if not others:
                continue
            typical = statistics.median(others)
            assert group.p95_latency is not None
            if typical > 0 and group.p95_latency >= SLOW_FACTOR * typical:
                found.append(
                    f"persona {group.name} is slow: p95 {group.p95_latency:.1f} s, "
                    f"{group.p95_latency / typical:.1f}× the others; give it a faster model "
                    "(model: in its file) or a lower max_tokens"
                )
    for endpoint in endpoints:
        attempts = endpoint.calls + endpoint.retries
        if attempts and endpoint.rate_limited / attempts > RATE_LIMIT_SHARE:
            share = endpoint.rate_limited / attempts * 100
            found.append(
                f"endpoint {endpoint.name} answered 429 (rate limited) to {share:.0f}% of "
                "attempts; lower --max-concurrency (or max_concurrency in its profile)"
            )
    return found


def build_stats(
    history: HistoryDB, *, by: str = "persona", since: float | None = None
) -> StatsReport:
    """Aggregate every recorded call (kept or not) since `since`, grouped `by`."""
    column = GROUPINGS[by]
    condition, parameters = ("r.started_at >= ?", (since,)) if since is not None else ("1 = 1", ())
    rows = history.db.execute(
        # Answers a resumed run reused were counted with the run that made them.
        f"SELECT c.* FROM calls c JOIN runs r ON r.id = c.run_id "
        f"WHERE {condition} AND c.reused_from IS NULL",
        parameters,
    ).fetchall()
    runs = history.db.execute(f"SELECT * FROM runs r WHERE {condition}", parameters).fetchall()

    def grouped(key: str) -> list[GroupStats]:
        buckets: dict[str, list[Any]] = {}
        for row in rows:
            buckets.setdefault(str(row[key] or ""), []).append(row)
        groups = [_group(name, members) for name, members in buckets.items()]
        return sorted(groups, key=lambda g: (-(g.p95_latency or 0), g.name))

    deliberations = DeliberationStats()
    for run in runs:
        if run["command"] != Mode.DELIBERATE or run["rounds"] is None:
            continue
        deliberations.runs += 1
        deliberations.rounds += _count(run["rounds"]) or 0
        deliberations.converged += int(_count(run["converged"]) == 1)
        deliberations.saved += _seconds(run["saved"]) or 0.0
        deliberations.wasted_tokens += _count(run["wasted_tokens"]) or 0
    groups = grouped(column)
    return StatsReport(
        by=by,
        runs=len(runs),
        groups=groups,
        deliberations=deliberations,
        suggestions=_suggestions(by, groups, grouped("endpoint_host")),
    )
