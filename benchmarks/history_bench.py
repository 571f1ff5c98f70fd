"""What does recording every call in the history cost a big oracle run?

Runs a 100-persona oracle against the fake server (in its own process, L = 1 s per
call) through council's own runner, exactly as the CLI does (Markdown output to a
buffer, no live view), once with the history recorder and once without, in pairs,
and prints the median wall time of each and their ratio (target ≤ 1.02).

    python benchmarks/history_bench.py                # N = 100, L = 1 s, 7 pairs
    python benchmarks/history_bench.py --runs 5 --personas 50
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_process import control, resolved_settings, start_server, timed_reply, write_personas
from oracle_bench import TOKENS

TARGET = 1.02


def run_once(base_url: str, names: list[str], record: bool) -> float:
    """One oracle run through council's runner; returns wall seconds."""
    from council.app.run import RecordOptions, run_oracle
    from council.engine.plan import build_oracle_plan
    from council.render import OutputMode

    started = time.perf_counter()
    loaded = resolved_settings(base_url, max_concurrency=len(names))
    endpoint = loaded.settings.endpoint
    personas = loaded.catalog.resolve(names)
    plan = build_oracle_plan(query="Benchmark question?", personas=personas, endpoint=endpoint)
    code = run_oracle(
        plan,
        OutputMode.MARKDOWN,
        stdout=io.StringIO(),
        show_live=False,
        record=RecordOptions() if record else None,
    )
    wall = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"benchmark run failed with exit code {code}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=1.0, help="per-call latency L, seconds")
    parser.add_argument("--personas", type=int, default=100, help="N, personas per run")
    parser.add_argument("--runs", type=int, default=7, help="pairs of runs (median reported)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ["COUNCIL_HOME"] = str(workdir / "home")
        proc, base_url = start_server(workdir)
        try:
            names = write_personas(workdir / "home", args.personas)
            control(base_url, "/_fake/default", timed_reply(args.latency, TOKENS))
            run_once(base_url, names, record=True)  # warm-up: imports, the database file
            with_history, without = [], []
            for i in range(args.runs):
                # Alternate which goes first, so neither always runs on a warmer machine.
                order = (True, False) if i % 2 == 0 else (False, True)
                for record in order:
                    wall = run_once(base_url, names, record)
                    (with_history if record else without).append(wall)
            history_file = workdir / "home" / "history.db"
            size_kib = history_file.stat().st_size / 1024
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    ratio = statistics.median(with_history) / statistics.median(without)
    print(
        f"history benchmark: N = {args.personas} personas, L = {args.latency:g} s, "
        f"{TOKENS} tokens a reply, median of {args.runs} paired runs, {os.cpu_count()} cores"
    )
    print(f"{'':<16} {'median wall s':>13} {'min':>7} {'max':>7}")
    for label, walls in (("without history", without), ("with history", with_history)):
        print(
            f"{label:<16} {statistics.median(walls):>13.3f} {min(walls):>7.3f} {max(walls):>7.3f}"
        )
    verdict = "ok" if ratio <= TARGET else "MISSED"
    print(f"ratio with/without: {ratio:.4f}  (target ≤ {TARGET}: {verdict})")
    print(f"history.db after {2 * args.runs + 1} runs: {size_kib:,.0f} KiB")


if __name__ == "__main__":
    main()
