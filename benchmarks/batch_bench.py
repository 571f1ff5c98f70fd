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
input's RSS within 10 % of the 1k one. Issue 21 (point 5): at L = 0.1 s and 8 slots,
≥ 85 % of the ideal, with each call asked as one whole completion.

Before those, the client's CPU per call, streamed and whole (`stream=False`, what a
batch asks): CALLS calls through one EndpointClient, 8 at a time, the same reply of
TOKENS tokens either way, this process's CPU time over the calls.

    python benchmarks/batch_bench.py                          # L = 0.5 s, C = 24
    python benchmarks/batch_bench.py --latency 0.1 --slots 8 --items 500
    python benchmarks/batch_bench.py --latency 0.1 --slots 8 --before /work/base/src

`--before SRC` runs another checkout's council (its `src/`) the same way, in the same
rounds: its CPU per call, and its batch over the small input after this one's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_process import (
    ROOT,
    control,
    resolved_settings,
    start_server,
    timed_reply,
    write_personas,
)

PERSONAS = 3
TOKENS = 20
RETRY_AFTER = 1.0
THROUGHPUT_TARGET = 0.85
RATE_LIMITED_TARGET = 0.02
RSS_TARGET_MB = 200.0
RSS_GROWTH_TARGET = 0.10
CALLS = 200  # calls per CPU measurement
CPU_ROUNDS = 5  # measurements of each (median and best reported)


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


def client_cpu(base_url: str, stream: bool) -> float:
    """CPU seconds per call of CALLS calls through one EndpointClient, 8 at a time."""
    import asyncio

    from council.endpoint.client import EndpointClient
    from council.engine.model import CallSpec

    class Quiet:
        def on_start(self) -> None: ...
        def on_first_token(self, ttft: float) -> None: ...
        def on_reasoning(self, text: str) -> None: ...
        def on_delta(self, text: str) -> None: ...
        def on_retry(self, attempt: int, error: Any, wait: float) -> None: ...

    settings = resolved_settings(base_url, max_concurrency=8).settings.endpoint
    messages = ({"role": "user", "content": "Ticket 1: the export button does nothing."},)

    async def calls() -> None:
        async with EndpointClient(settings, 8) as client:
            await asyncio.gather(
                *(
                    client.complete(
                        CallSpec(call_id=f"c{i}", persona="p", messages=messages, model="m"),
                        Quiet(),
                        stream=stream,
                    )
                    for i in range(CALLS)
                )
            )

    started = time.process_time()
    asyncio.run(calls())
    return (time.process_time() - started) / CALLS


def cpu_worker(base_url: str) -> None:
    """--cpu-worker: one measurement of each, printed as `streamed whole` (seconds a call)."""
    print(f"{client_cpu(base_url, True)} {client_cpu(base_url, False)}", flush=True)


def measure_cpu(base_url: str, src: Path) -> tuple[list[float], list[float]]:
    """The council in `src` measured in its own process, CPU_ROUNDS times: streamed, whole."""
    control(base_url, "/_fake/reset", {})
    control(base_url, "/_fake/default", timed_reply(0.1, TOKENS))
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, __file__, "--cpu-worker", base_url]
    streamed, whole = [], []
    for _ in range(CPU_ROUNDS):
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        one, two = done.stdout.split()
        streamed.append(float(one))
        whole.append(float(two))
    return streamed, whole


def run_batch(
    base_url: str,
    workdir: Path,
    name: str,
    source: Path,
    args: argparse.Namespace,
    src: Path = ROOT / "src",
) -> Row:
    control(base_url, "/_fake/reset", {})
    control(base_url, "/_fake/default", timed_reply(args.latency, TOKENS))
    settings = {"slots": args.slots, "over_limit": "429", "slot_retry_after": RETRY_AFTER}
    control(base_url, "/_fake/settings", settings)
    slug = "".join(c if c.isalnum() else "-" for c in name)
    out = workdir / f"{slug}.out.jsonl"
    home = workdir / f"{slug}-home"  # a first run each: nothing learned before
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
        "PYTHONPATH": str(src),
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
    parser.add_argument("--before", metavar="SRC", help="also run the council in SRC (a src/)")
    parser.add_argument("--cpu-worker", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cpu_worker:
        cpu_worker(args.cpu_worker)
        return
    sources = {"": ROOT / "src"}
    if args.before:
        sources[" (before)"] = Path(args.before).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        proc, base_url = start_server(workdir)
        try:
            cpu = {label: measure_cpu(base_url, src) for label, src in sources.items()}
            small = write_input(workdir / "small.jsonl", args.items)
            big = write_input(workdir / "big.jsonl", args.big)
            rows = [
                run_batch(base_url, workdir, f"{args.items:,} lines{label}", small, args, src)
                for label, src in sources.items()
            ]
            rows.insert(1, run_batch(base_url, workdir, f"{args.big:,} lines", big, args))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"client CPU per call, {TOKENS} tokens a reply, {CALLS} calls 8 at a time:")
    for label, (streamed, whole) in cpu.items():
        print(
            f"  streamed{label}: {statistics.median(streamed) * 1000:.2f} ms "
            f"(best {min(streamed) * 1000:.2f});  whole{label}: "
            f"{statistics.median(whole) * 1000:.2f} ms (best {min(whole) * 1000:.2f})"
        )
    print_rows(rows, args)


if __name__ == "__main__":
    main()
