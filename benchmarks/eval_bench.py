"""Is the council worth it? The measurements of issue 17 in one place, on the fake server.

    python benchmarks/eval_bench.py                 # every table below
    python benchmarks/eval_bench.py --items 40 --latency 0.3

1. `--vote`'s early stop: the ballot calls and tokens it saves when the first ballots
   agree (`benchmarks/vote_bench.py`'s `measure()`).
2. Budgets: the overshoot over 100 runs with random budgets (`benchmarks/budget_bench.py`'s
   `measure()`).
3. `council eval` itself: N items × one persona, each call taking L seconds on the fake
   server, run one pair at a time and with `--max-concurrency 8`, side by side (the
   ratio is what concurrency buys; the ideal is 8), and a resumed run (the same --out)
   that sends no request at all.

A table whose module is missing (its branch not merged yet) is skipped with a note.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_process import control, start_server, timed_reply

MEASUREMENTS = (
    ("vote_bench", "--vote's early stop (ballot calls and tokens saved)"),
    ("budget_bench", "Budgets: overshoot over 100 runs with random budgets"),
)


def print_table(rows: list[dict[str, Any]]) -> None:
    """Rows of dicts as a Markdown table (the keys of the first row as columns)."""
    if not rows:
        print("(no rows)")
        return
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        print("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "" if value is None else str(value)


def others() -> None:
    """The vote and budget benchmarks' measurements, each under its heading."""
    for module_name, heading in MEASUREMENTS:
        print(f"\n## {heading}\n")
        print_table(importlib.import_module(module_name).measure())


def _items(path: Path, count: int) -> str:
    lines = [
        {"id": f"b{i}", "query": f"Benchmark question {i}?", "expected": "yes"}
        for i in range(count)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return str(path)


def _eval_once(base_url: str, data: str, cap: int, out: Path) -> tuple[float, int, Any]:
    """One `council eval` in-process (minus argument parsing); wall seconds, requests sent."""
    from council.app.eval.command import EvalOptions, run_eval
    from council.app.flags import AskFlags

    before = control(base_url, "/_fake/stats")["requests"]
    flags = AskFlags(query=data, base_url=base_url, max_concurrency=cap, personas="judge")
    started = time.perf_counter()
    report = run_eval(flags, EvalOptions(data=data, strategies="judge", out=str(out)))
    wall = time.perf_counter() - started
    return wall, control(base_url, "/_fake/stats")["requests"] - before, report


def measure(items: int = 40, latency: float = 0.3) -> list[dict[str, Any]]:
    """`council eval` of `items` items × one persona: sequential, concurrent, resumed."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["COUNCIL_HOME"] = str(work / "home")
        proc, base_url = start_server(work)
        try:
            control(base_url, "/_fake/default", timed_reply(latency, 10, text="Answer: yes"))
            data = _items(work / "items.jsonl", items)
            rows = []
            for cap in (1, 8):
                out = work / f"results-{cap}.jsonl"
                wall, sent, report = _eval_once(base_url, data, cap, out)
                ideal = items * latency / cap
                rows.append(_row(f"--max-concurrency {cap}", ideal, wall, sent, report))
            wall, sent, report = _eval_once(base_url, data, 8, work / "results-8.jsonl")
            rows.append(_row("again, same --out (resumed)", 0.0, wall, sent, report))
        finally:
            proc.terminate()
            proc.wait(10)
    sequential = rows[0]["wall_s"]
    rows[1]["speedup"] = round(sequential / rows[1]["wall_s"], 2)
    return rows


def _row(name: str, ideal: float, wall: float, sent: int, report: Any) -> dict[str, Any]:
    (summary,) = report.summaries
    return {
        "run": name,
        "pairs": summary.n,
        "requests": sent,
        "ideal_s": round(ideal, 2),
        "wall_s": round(wall, 3),
        "accuracy": summary.accuracy,
        "speedup": None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per call")
    args = parser.parse_args()
    print("# Issue 17: votes, budgets and council eval on the fake server")
    others()
    print(f"\n## council eval: {args.items} items × 1 persona, L = {args.latency:g} s a call\n")
    print_table(measure(args.items, args.latency))


if __name__ == "__main__":
    main()
