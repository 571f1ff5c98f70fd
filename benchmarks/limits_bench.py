"""Does council live within an endpoint's limits? Scenarios against the fake server.

Part 1, slots: 20 personas on a fake server with 4 slots and per-call latency L, in
each over-limit mode: "429" and "503" (answered at once, with `Retry-After: 1`),
"interrupt" (a new request ends the oldest running stream without finish_reason,
as single-slot llama.cpp-style servers do) and, for scale, "queue". Each is a first
run (nothing learned), with the default ceiling (8) and, for comparison, with
`--max-concurrency 8` given (a ceiling the user sets is trusted: no ramp-up).
Reports wall time over the ideal ⌈20/4⌉·L, requests turned away (429/503 or
interrupted) over all requests, and personas answered. Targets (issue 14): every
persona answers; wall ≤ 1.25× ideal; turned away ≤ 10 % of requests.

    python benchmarks/limits_bench.py                 # L = 1 s
    python benchmarks/limits_bench.py --latency 0.5

One function per scenario; later parts add theirs beside `slots_scenario`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_process import control, resolved_settings, start_server, timed_reply, write_personas
from limits_context_bench import print_context

PERSONAS = 20
SLOTS = 4
TOKENS = 20
RETRY_AFTER = 1.0
MODES = ("429", "503", "interrupt", "queue")
WALL_TARGET = 1.25  # × the ideal
TURNED_AWAY_TARGET = 0.10  # of all requests


@dataclass
class SlotsRow:
    mode: str
    ceiling: str
    wall: float
    ideal: float
    requests: int
    turned_away: int
    answered: int
    limit_changes: list[str]


def fresh_process_state() -> None:
    """A first run: no limiter and nothing learned from the scenario before."""
    from council.endpoint.learned import forget_all
    from council.endpoint.limiter import forget_limiters

    forget_limiters()
    forget_all()


def slots_scenario(
    base_url: str, names: list[str], mode: str, latency: float, ceiling: int | None
) -> SlotsRow:
    """20 personas, 4 slots, one over-limit mode: one oracle run as the CLI does it."""
    from council.engine.events import EventBus
    from council.engine.oracle import OracleRun
    from council.engine.plan import build_oracle_plan

    control(base_url, "/_fake/reset", {})
    control(base_url, "/_fake/default", timed_reply(latency, TOKENS))
    settings = {"slots": SLOTS, "over_limit": mode, "slot_retry_after": RETRY_AFTER}
    control(base_url, "/_fake/settings", settings)
    fresh_process_state()
    loaded = resolved_settings(base_url, max_concurrency=ceiling)
    plan = build_oracle_plan(
        query="Benchmark question?",
        personas=loaded.catalog.resolve(names),
        endpoint=loaded.settings.endpoint,
    )
    started = time.perf_counter()
    result = asyncio.run(OracleRun(plan, EventBus()).execute())
    wall = time.perf_counter() - started
    records = control(base_url, "/_fake/stats")["records"]
    control(base_url, "/_fake/settings", {"slots": None})
    return SlotsRow(
        mode=mode,
        ceiling="default 8" if ceiling is None else f"given {ceiling}",
        wall=wall,
        ideal=math.ceil(len(names) / SLOTS) * latency,
        requests=len(records),
        turned_away=sum(1 for r in records if r["over_limit"] or r["interrupted"]),
        answered=len(result.answers),
        limit_changes=[f"{c['old']}→{c['new']} ({c['reason']})" for c in result.limit_changes],
    )


def print_slots(rows: list[SlotsRow], latency: float) -> None:
    print(
        f"limits benchmark, part 1: {PERSONAS} personas, {SLOTS}-slot fake server, "
        f"L = {latency:g} s, Retry-After: {RETRY_AFTER:g}, first run (nothing learned)"
    )
    print(
        f"{'mode':>9} {'ceiling':>9} {'wall s':>7} {'ideal s':>7} {'wall/ideal':>10} "
        f"{'requests':>8} {'turned away':>11} {'answered':>8}  targets  limit changes"
    )
    for r in rows:
        ratio = r.wall / r.ideal
        share = r.turned_away / r.requests if r.requests else 0.0
        met = r.answered == PERSONAS and ratio <= WALL_TARGET and share <= TURNED_AWAY_TARGET
        print(
            f"{r.mode:>9} {r.ceiling:>9} {r.wall:>7.2f} {r.ideal:>7.2f} {ratio:>9.2f}x "
            f"{r.requests:>8} {r.turned_away:>4} ({share:>4.0%}) {r.answered:>5}/{PERSONAS}"
            f"  {'ok' if met else 'MISSED':>7}  {'; '.join(r.limit_changes) or '–'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=1.0, help="per-call latency L, seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ["COUNCIL_HOME"] = str(workdir / "home")
        proc, base_url = start_server(workdir)
        try:
            names = write_personas(workdir / "home", PERSONAS)
            rows = [
                slots_scenario(base_url, names, mode, args.latency, ceiling)
                for ceiling in (None, 8)
                for mode in MODES
            ]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print_slots(rows, args.latency)
    print()
    print_context()  # part 2: a context window council is not told about


if __name__ == "__main__":
    main()
