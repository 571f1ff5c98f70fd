"""Does council live within an endpoint's limits, and start every call at once where it can?

Each run below is a new process as far as council can tell: its limiters and learned
table are dropped, what the history kept is seeded, and what the run learned is kept
(as the CLI does), so "second run" means the next command a user types. The fake
server's own log (request arrival times, what it turned away) is what is counted.

Part 1, slots: 20 personas on a fake server with 4 slots and per-call latency L, in
each over-limit mode: "429" and "503" (answered at once, with `Retry-After: 1`),
"interrupt" (a new request ends the oldest running stream without finish_reason,
as single-slot llama.cpp-style servers do) and, for scale, "queue". Default flags
(ceiling 8), with the server stating nothing and with it stating its 4 slots in
`GET /props` (`total_slots`, as llama-server does). Reports the first run's wall over
the ideal ⌈20/4⌉·L and, for the first and the second run, the requests turned away
(429/503 or interrupted) and the personas answered. Targets (issue 21): every persona
answers; the second run turns nothing away; with the slots stated, neither does the
first.

Part 2, a context window council is not told about (limits_context_bench.py).

Part 3, default runs start together: 6 personas, no slot limit, response headers
after 0.6 s (as hosted APIs send them with the first token), calls of 1.0 s, default
flags, empty history; three runs. Reports the spread of the six request arrivals
(target: within 50 ms, every run) and the wall; then the spread of each round's
personas in `deliberate --speculative --rounds 3`.

    python benchmarks/limits_bench.py                 # L = 1 s
    python benchmarks/limits_bench.py --latency 0.5
    python benchmarks/limits_bench.py --parts 1,3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_process import control, resolved_settings, start_server, timed_reply, write_personas
from limits_context_bench import print_context

PERSONAS = 20
SLOTS = 4
TOKENS = 20
RETRY_AFTER = 1.0
MODES = ("429", "503", "interrupt", "queue")
WALL_TARGET = 1.25  # × the ideal, first run
SPREAD_PERSONAS = 6
TO_HEADERS = 0.6  # seconds to the response headers
SPREAD_LATENCY = 1.0  # seconds a call takes in all
SPREAD_TARGET = 0.050  # seconds between the first and the last request of a round
SPREAD_RUNS = 3


@dataclass
class SlotsRow:
    mode: str
    stated: str
    wall: float
    ideal: float
    turned_away: list[int]  # per run
    requests: list[int]
    answered: list[int]
    limit_changes: list[str]


def forget_kept(base_url: str) -> None:
    """An empty history for this endpoint: nothing learned by an earlier scenario."""
    from council.app.endpoints import reset_endpoint

    reset_endpoint(base_url)


def new_process(endpoint: Any) -> Any:
    """What a new process knows of the endpoint: only what the history kept (a new pool)."""
    from council.app.limits import seed_learned
    from council.endpoint.pool import EndpointPool

    pool = EndpointPool()
    seed_learned([endpoint], pool)
    return pool


def records_since(base_url: str, start: int) -> list[dict[str, Any]]:
    return control(base_url, "/_fake/stats")["records"][start:]


def oracle_run(base_url: str, names: list[str]) -> tuple[Any, float, list[dict[str, Any]]]:
    """One oracle run with default flags, as a new process: (result, wall, its requests)."""
    from council.app.limits import save_learned
    from council.engine.events import EventBus
    from council.engine.oracle import OracleRun
    from council.engine.plan import build_oracle_plan

    start = control(base_url, "/_fake/stats")["requests"]
    loaded = resolved_settings(base_url)
    endpoint = loaded.settings.endpoint
    pool = new_process(endpoint)
    started = time.perf_counter()
    plan = build_oracle_plan(
        query="Benchmark question?", personas=loaded.catalog.resolve(names), endpoint=endpoint
    )
    result = asyncio.run(OracleRun(plan, EventBus(), pool=pool).execute())
    wall = time.perf_counter() - started
    save_learned([endpoint], pool)
    return result, wall, records_since(base_url, start)


def turned_away(records: list[dict[str, Any]]) -> int:
    return sum(1 for r in records if r["over_limit"] or r["interrupted"])


def slots_scenario(
    base_url: str, names: list[str], mode: str, latency: float, stated: bool
) -> SlotsRow:
    """20 personas, 4 slots, one over-limit mode: a first and a second run."""
    control(base_url, "/_fake/reset", {})
    control(base_url, "/_fake/default", timed_reply(latency, TOKENS))
    settings: dict[str, Any] = {"slots": SLOTS, "over_limit": mode}
    settings["slot_retry_after"] = RETRY_AFTER
    if stated:
        settings["total_slots"] = SLOTS
    control(base_url, "/_fake/settings", settings)
    forget_kept(base_url)
    row = SlotsRow(mode, f"/props {SLOTS}" if stated else "nothing", 0.0, 0.0, [], [], [], [])
    row.ideal = math.ceil(len(names) / SLOTS) * latency
    for run in range(2):
        result, wall, records = oracle_run(base_url, names)
        if run == 0:
            row.wall = wall
        row.turned_away.append(turned_away(records))
        row.requests.append(len(records))
        row.answered.append(len(result.answers))
        row.limit_changes += [
            f"{c['old']}→{c['new']} ({c['reason']})" for c in result.limit_changes
        ]
    return row


def print_slots(rows: list[SlotsRow], latency: float) -> None:
    print(
        f"limits benchmark, part 1: {PERSONAS} personas, {SLOTS}-slot fake server, "
        f"L = {latency:g} s, Retry-After: {RETRY_AFTER:g}, default flags (ceiling 8); "
        "first run from an empty history, then a second run"
    )
    print(
        f"{'mode':>9} {'server says':>11} {'wall s':>7} {'wall/ideal':>10} "
        f"{'turned away 1st':>15} {'2nd':>4} {'answered':>11}  targets  limit changes"
    )
    for r in rows:
        ratio = r.wall / r.ideal
        met = (
            all(a == PERSONAS for a in r.answered)
            and r.turned_away[1] == 0
            and (r.stated == "nothing" or r.turned_away[0] == 0)
        )
        first = f"{r.turned_away[0]}/{r.requests[0]}"
        answered = "/".join(str(a) for a in r.answered)
        print(
            f"{r.mode:>9} {r.stated:>11} {r.wall:>7.2f} {ratio:>9.2f}x "
            f"{first:>15} {r.turned_away[1]:>4} {answered:>11}"
            f"  {'ok' if met else 'MISSED':>7}  {'; '.join(r.limit_changes) or '–'}"
        )


def spread(records: list[dict[str, Any]]) -> float:
    """Seconds from the first request's arrival to the last one's, as the server saw them."""
    times = [r["received_at"] for r in records]
    return max(times) - min(times) if times else 0.0


def header_reply() -> dict[str, object]:
    """Headers after TO_HEADERS, then TOKENS chunks until SPREAD_LATENCY."""
    return {
        "header_delay": TO_HEADERS,
        "tokens": TOKENS,
        "token_delay": (SPREAD_LATENCY - TO_HEADERS) / (TOKENS - 1),
    }


def default_flag_runs(base_url: str, names: list[str]) -> list[tuple[float, float]]:
    """Three oracle runs of 6 personas from an empty history: (spread s, wall s) each."""
    control(base_url, "/_fake/reset", {})
    control(base_url, "/_fake/default", header_reply())
    forget_kept(base_url)
    runs = []
    for _ in range(SPREAD_RUNS):
        result, wall, records = oracle_run(base_url, names[:SPREAD_PERSONAS])
        if result.exit_code != 0:
            raise SystemExit(f"benchmark run failed: {[f.message for f in result.failures]}")
        runs.append((spread(records), wall))
    return runs


def speculative_spreads(base_url: str, names: list[str]) -> list[float]:
    """deliberate --speculative --rounds 3, default flags: each round's persona spread."""
    from council.app.limits import save_learned
    from council.engine.deliberation import DeliberationRun
    from council.engine.events import EventBus
    from council.engine.plan import build_deliberation_plan

    control(base_url, "/_fake/reset", {})
    control(base_url, "/_fake/default", header_reply())
    for number in (1, 2, 3):
        verdict = {"converged": number == 3, "confidence": 0.9, "synthesis": f"S{number}."}
        reply = {**header_reply(), "text": json.dumps({**verdict, "dissent": []})}
        control(
            base_url, "/_fake/script", {"persona": "arbiter", "round": number, "replies": [reply]}
        )
    forget_kept(base_url)
    loaded = resolved_settings(base_url)
    endpoint = loaded.settings.endpoint
    pool = new_process(endpoint)
    plan = build_deliberation_plan(
        query="Benchmark question?",
        personas=loaded.catalog.resolve(names[:SPREAD_PERSONAS]),
        arbiter=loaded.catalog.get("arbiter"),
        endpoint=endpoint,
        rounds=3,
        speculative=True,
    )
    result = asyncio.run(DeliberationRun(plan, EventBus(), pool=pool).execute())
    save_learned([endpoint], pool)
    if result.exit_code != 0:
        raise SystemExit(f"benchmark deliberation failed: {result.stop_reason}")
    records = [r for r in records_since(base_url, 0) if r["persona"] != "arbiter"]
    rounds = sorted({r["round"] for r in records})
    return [spread([r for r in records if r["round"] == n]) for n in rounds]


def print_default_flags(runs: list[tuple[float, float]], rounds: list[float] | None) -> None:
    print(
        f"default runs start together: {SPREAD_PERSONAS} personas, no slot limit, headers "
        f"after {TO_HEADERS:g} s, calls of {SPREAD_LATENCY:g} s, default flags, empty history"
    )
    print(f"{'run':>5} {'spread ms':>10} {'target':>8} {'wall s':>7}")
    for number, (gap, wall) in enumerate(runs, 1):
        verdict = "ok" if gap <= SPREAD_TARGET else "MISSED"
        print(f"{number:>5} {gap * 1000:>10.1f} {'≤50':>8} {wall:>7.3f}  {verdict}")
    if rounds is not None:
        shown = ", ".join(f"round {n}: {gap * 1000:.1f} ms" for n, gap in enumerate(rounds, 1))
        verdict = "ok" if all(gap <= SPREAD_TARGET for gap in rounds) else "MISSED"
        print(f"deliberate --speculative --rounds 3, persona spread: {shown}  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=1.0, help="per-call latency L, seconds")
    parser.add_argument("--parts", default="1,2,3", help="which parts to run, e.g. 1,3")
    args = parser.parse_args()
    parts = {int(p) for p in args.parts.split(",")}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ["COUNCIL_HOME"] = str(workdir / "home")
        proc, base_url = start_server(workdir)
        try:
            names = write_personas(workdir / "home", PERSONAS)
            rows = [
                slots_scenario(base_url, names, mode, args.latency, stated)
                for stated in (False, True)
                for mode in MODES
                if 1 in parts
            ]
            if 3 in parts:
                runs = default_flag_runs(base_url, names)
                rounds = speculative_spreads(base_url, names)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    if 1 in parts:
        print_slots(rows, args.latency)
        print()
    if 2 in parts:
        print_context()  # part 2: a context window council is not told about
        print()
    if 3 in parts:
        print("limits benchmark, part 3:", end=" ")
        print_default_flags(runs, rounds)


if __name__ == "__main__":
    main()
