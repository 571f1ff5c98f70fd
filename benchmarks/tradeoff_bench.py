"""`council eval`'s trade-off (issue 26 point 6): what its paired bootstrap costs a report.

    python benchmarks/tradeoff_bench.py

1. The paired bootstrap of one difference (2000 resamples), drawn as multinomial counts
   of the distinct per-item differences (`engine/tradeoff.py`) beside drawing the n items
   themselves (`random.choices`, the textbook way), side by side at n = 100, 1000, 10000:
   the time ratio, and how far apart their 95 % bounds land (two independent runs of the
   same bootstrap: a bound moves by about one item, 1/n, between seeds).
2. The whole trade-off of an eval report (baselines from members' answers, the plane,
   dominance, one difference per row) beside `summarize` (the table an eval built
   already), on 1000 items x 4 strategies of 3 members: what the new view adds.

Pure computation, no server: CPU time on this machine, as ratios.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from council.engine.scoring import percentile, summarize
from council.engine.tradeoff import BOOTSTRAP_RESAMPLES, paired_bootstrap, trade_off


def _timed(work: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """The best of `repeat` runs (seconds) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    return best, result


def _items_drawn(a: dict[str, float], b: dict[str, float]) -> tuple[float, float]:
    """The same bootstrap, each resample n items drawn one by one."""
    diffs = [a[k] - b[k] for k in a]
    n = len(diffs)
    rng = random.Random("items")
    means = [sum(rng.choices(diffs, k=n)) / n for _ in range(BOOTSTRAP_RESAMPLES)]
    low, high = percentile(means, 2.5), percentile(means, 97.5)
    assert low is not None and high is not None
    return low, high


def bootstrap_table() -> list[dict[str, Any]]:
    rows = []
    rng = random.Random(1)
    for n in (100, 1000, 10000):
        a = {f"q{i}": float(rng.random() < 0.7) for i in range(n)}
        b = {k: v if rng.random() < 0.8 else 1 - v for k, v in a.items()}
        counts, fast = _timed(lambda a=a, b=b: paired_bootstrap(a, b))
        items, slow = _timed(lambda a=a, b=b: _items_drawn(a, b), repeat=1)
        rows.append(
            {
                "items": n,
                "counts (s)": round(counts, 4),
                "items drawn (s)": round(items, 3),
                "ratio": round(items / counts, 1),
                "bounds (counts)": f"[{fast[2]:+.3f}, {fast[3]:+.3f}]",
                "bounds (items)": f"[{slow[0]:+.3f}, {slow[1]:+.3f}]",
            }
        )
    return rows


def _eval_lines(items: int) -> tuple[list[dict[str, Any]], list[str]]:
    rng = random.Random(2)
    strategies = ["judge", "synthesize", "vote", "deliberate"]
    lines = []
    for i in range(items):
        for name in strategies:
            line: dict[str, Any] = {
                "item": f"q{i}",
                "strategy": name,
                "status": "ok",
                "scorer": "choice",
                "answer": "A",
                "predicted": "A",
                "correct": rng.random() < 0.6,
                "metrics": {"calls": 3, "tokens_in": 300, "tokens_out": 60, "latency": 1.0},
            }
            if name != "judge":
                line["members"] = [
                    {
                        "persona": p,
                        "status": "ok",
                        "answer": (letter := rng.choice("ABCD")),
                        "predicted": letter,
                        "correct": letter == "A",
                        "metrics": {"calls": 1, "tokens_in": 100, "tokens_out": 20},
                    }
                    for p in ("judge", "critic", "skeptic")
                ]
            lines.append(line)
    return lines, strategies


def report_table() -> list[dict[str, Any]]:
    lines, strategies = _eval_lines(1000)
    table, _ = _timed(lambda: summarize(lines, strategies))
    whole, found = _timed(lambda: trade_off(lines, strategies, ["judge"]))
    return [
        {
            "items x strategies": f"1000 x {len(strategies)}",
            "summarize (s)": round(table, 4),
            "trade_off (s)": round(whole, 4),
            "ratio": round(whole / table, 1),
            "rows compared": len(found.differences),
        }
    ]


def main() -> None:
    from eval_bench import print_table

    print(f"## The paired bootstrap: {BOOTSTRAP_RESAMPLES} resamples, counts vs items drawn\n")
    print_table(bootstrap_table())
    print("\n## An eval report's trade-off beside its table\n")
    print_table(report_table())


if __name__ == "__main__":
    main()
