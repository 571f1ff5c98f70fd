"""`council batch` against a finite server: throughput, 429s and memory, as the CLI runs it.

A fake server (its own process) with C slots answers 429 with `Retry-After` beyond
them; every call takes L seconds. `council batch` runs as a real process over
1,000 items × 3 personas with a ceiling above C (`--max-concurrency 2C`, so the
limiter has to learn C), then over an input of 100,000 lines with `--max-items
1000` (the same work: memory must not grow with the input). Reported per run:

- throughput after warm-up: answered calls per second between the 10th and 90th
  percentile of their end times (server clock), against the ideal C / L;
- 429s over all answered calls;
- the council process's peak RSS (`os.wait4`), and the 100k run's against the 1k one.

Targets (issue 16): ≥ 85 % of the ideal, 429s ≤ 2 %, peak RSS ≤ 200 MB, the 100k
input's RSS within 10 % of the 1k one.

    python benchmarks/batch_bench.py                          # L = 0.5 s, C = 24
    python benchmarks/batch_bench.py --latency 0.2 --slots 4 --items 500
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_process import ROOT, control, start_server, timed_reply, write_personas

PERSONAS = 3
TOKENS = 20
RETRY_AFTER = 1.0
THROUGHPUT_TARGET = 0.85
RATE_LIMITED_TARGET = 0.02
RSS_TARGET_MB = 200.0
RSS_GROWTH_TARGET = 0.10


@dataclass
class Row:
    name: str
    items: int
    wall: float
    answered: int
    rate_limited: int
    throughput: float  # answered calls a second after warm-up
    ideal: float
    peak_rss_mb: float
    exit_code: int
    summary: str


def write_input(path: Path, lines: int) -> Path:
    with path.open("w") as file:
        for n in range(lines):
            body = f"Ticket {n}: the export button does nothing when the report is empty."
            file.write(json.dumps({"id": f"t{n}", "query": body, "team": n % 7}) + "\n")
    return path


def steady_throughput(end_times: list[float]) -> float:
    """Calls a second between the 10th and 90th percentile of the end times (warm-up and
    the tail, where fewer items than slots are left, excluded)."""
    ordered = sorted(end_times)
    if len(ordered) < 10:
        return 0.0
    low, high = ordered[len(ordered) // 10], ordered[(len(ordered) * 9) // 10]
    count = (len(ordered) * 9) // 10 - len(ordered) // 10
    return count / (high - low) if high > low else 0.0


def run_batch(
    base_url: str, workdir: Path, name: str, source: Path, args: argparse.Namespace
) -> Row:
    control(base_url, "/_fake/reset", {})
    control(base_url, "/_fake/default", timed_reply(args.latency, TOKENS))
    settings = {"slots": args.slots, "over_limit": "429", "slot_retry_after": RETRY_AFTER}
    control(base_url, "/_fake/settings", settings)
    out = workdir / f"{source.stem}.out.jsonl"
    home = workdir / f"{source.stem}-home"  # a first run each: nothing learned before
    personas = ",".join(write_personas(home, PERSONAS))
    command = [
        sys.executable,
        "-m",
        "council.cli",
        "batch",
        str(source),
        "--base-url",
        base_url,
        "-p",
        personas,
        "--out",
        str(out),
        "--max-concurrency",
        str(args.slots * 2),
        "--max-items",
        str(args.items),
    ]
    env = {
        **os.environ,
        "COUNCIL_HOME": str(home),
        "OPENAI_API_KEY": "sk-bench",
        "PYTHONPATH": str(ROOT / "src"),
    }
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    records = control(base_url, "/_fake/stats")["records"]
    answered = [r for r in records if r["status"] == 200 and r["completed"]]
    summary = next((x for x in reversed(stderr.splitlines()) if "batch:" in x), stderr[-300:])
    return Row(
        name=name,
        items=args.items,
        wall=wall,
        answered=len(answered),
        rate_limited=sum(1 for r in records if r["over_limit"]),
        throughput=steady_throughput([r["finished_at"] for r in answered]),
        ideal=args.slots / args.latency,
        peak_rss_mb=usage.ru_maxrss / 1024,  # kilobytes on Linux
        exit_code=process.returncode,
        summary=summary.strip(),
    )


def print_rows(rows: list[Row], args: argparse.Namespace) -> None:
    print(
        f"batch benchmark: {args.items} items × {PERSONAS} personas, L = {args.latency:g} s, "
        f"C = {args.slots} slots (429 + Retry-After: {RETRY_AFTER:g} beyond), "
        f"--max-concurrency {args.slots * 2}; ideal C/L = {args.slots / args.latency:.1f} calls/s"
    )
    print(
        f"{'input':>14} {'exit':>4} {'wall s':>7} {'calls':>6} {'calls/s':>8} {'of ideal':>8} "
        f"{'429s':>5} {'429 share':>9} {'peak RSS MB':>11}  targets"
    )
    base_rss = rows[0].peak_rss_mb
    for r in rows:
        share = r.throughput / r.ideal
        limited = r.rate_limited / r.answered if r.answered else 1.0
        met = (
            share >= THROUGHPUT_TARGET
            and limited <= RATE_LIMITED_TARGET
            and r.peak_rss_mb <= RSS_TARGET_MB
            and r.peak_rss_mb <= base_rss * (1 + RSS_GROWTH_TARGET)
            and r.exit_code == 0
        )
        print(
            f"{r.name:>14} {r.exit_code:>4} {r.wall:>7.1f} {r.answered:>6} {r.throughput:>8.1f} "
            f"{share:>7.0%} {r.rate_limited:>5} {limited:>8.2%} {r.peak_rss_mb:>11.1f}  "
            f"{'ok' if met else 'MISSED'}"
        )
    for r in rows:
        print(f"  {r.name}: {r.summary}")
    if len(rows) > 1:
        print(f"  RSS of the 100k-line input / the 1k one: {rows[1].peak_rss_mb / base_rss:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.5, help="per-call latency L, s")
    parser.add_argument("--slots", type=int, default=24, help="the server's limit C")
    parser.add_argument("--items", type=int, default=1000, help="items asked per run")
    parser.add_argument("--big", type=int, default=100_000, help="lines of the big input")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        proc, base_url = start_server(workdir)
        try:
            small = write_input(workdir / "small.jsonl", args.items)
            big = write_input(workdir / "big.jsonl", args.big)
            rows = [
                run_batch(base_url, workdir, f"{args.items:,} lines", small, args),
                run_batch(base_url, workdir, f"{args.big:,} lines", big, args),
            ]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print_rows(rows, args)


if __name__ == "__main__":
    main()
