"""How much sooner does `council deliberate --speculative` finish, and what does it waste?

Runs the fake OpenAI-compatible server in its own process, with every persona call
taking P seconds and every arbiter verdict A seconds (first token at half the time,
the last at the full time), and times council's deliberation engine in-process on
the same council twice in a row, sequential then speculative, for each case:

  (a) 3 rounds, never converging, P = A
  (b) converging at round 1 of 3 (the speculative round 2 is cancelled)
  (c) 3 rounds, never converging, A = P/4 and A = 2P

    python benchmarks/deliberate_bench.py             # P = 0.5 s, 5 paired runs
    python benchmarks/deliberate_bench.py --runs 3 --persona-time 0.3

For each case it prints the median wall time of both schedules, the ideal
critical path of each (what a zero-overhead engine would take: sequential
R·(P+A); speculative R·P + A when A ≤ P, simulated in general), the speculative
wall against its ideal (target ≤ 1.05 in (a)), the saving against sequential
(target ≥ 30 % in (a)), the tokens wasted, and, where a round was cancelled, how
long after the ending verdict left the server its streams were closed, from the
server's own records (target ≤ 50 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_process import control, resolved_settings, start_server, timed_reply

PERSONAS = ["judge", "critic", "skeptic"]
PERSONA_TOKENS = 20
ROUNDS = 3
IDEAL_TARGET = 1.05
SAVING_TARGET = 0.30
DISCONNECT_TARGET_MS = 50.0


@dataclass(frozen=True)
class Case:
    label: str
    arbiter_factor: float  # A = factor · P
    converge_at: int | None  # round whose verdict converges; None: never


CASES = [
    Case("(a) never converging, A = P", 1.0, None),
    Case("(b) converging at round 1, A = P", 1.0, 1),
    Case("(c) never converging, A = P/4", 0.25, None),
    Case("(c) never converging, A = 2P", 2.0, None),
]


def ideal_wall(p: float, a: float, rounds: int, speculative: bool) -> float:
    """The critical path of the schedule with zero overhead: when the last verdict is in."""
    answers_in = {1: p}
    verdict_in: dict[int, float] = {}
    for r in range(1, rounds + 1):
        verdict_in[r] = answers_in[r] + a
        # Speculative: round r+1 needs round r's answers and verdict r-1; else verdict r.
        ready = max(answers_in[r], verdict_in.get(r - 1, 0.0))
        answers_in[r + 1] = (ready if speculative else verdict_in[r]) + p
    return verdict_in[rounds]


def verdict_text(round_number: int, converged: bool) -> str:
    verdict = {
        "converged": converged,
        "confidence": 0.9,
        "synthesis": f"Round {round_number} synthesis: the members weigh the plan.",
        "dissent": [] if converged else ["skeptic: rollback is untested"],
    }
    return json.dumps(verdict)


def script(base_url: str, case: Case, p: float) -> None:
    a = p * case.arbiter_factor
    control(base_url, "/_fake/reset", {})
    control(base_url, "/_fake/default", timed_reply(p, PERSONA_TOKENS))
    for number in range(1, ROUNDS + 1):
        text = verdict_text(number, converged=number == case.converge_at)
        control(
            base_url,
            "/_fake/script",
            {"persona": "arbiter", "round": number, "replies": [timed_reply(a, 0, text)]},
        )


def run_once(base_url: str, speculative: bool) -> tuple[float, int, int]:
    """One deliberation as the CLI runs it; returns (wall s, kept rounds, wasted tokens)."""
    from council.engine.deliberation import DeliberationRun
    from council.engine.events import EventBus
    from council.engine.plan import build_deliberation_plan
    from council.render.markdown import deliberation_markdown

    started = time.perf_counter()
    # Every persona and the verdict at once (a speculative round overlaps the verdict).
    loaded = resolved_settings(base_url, max_concurrency=len(PERSONAS) + 1)
    catalog = loaded.catalog
    plan = build_deliberation_plan(
        query="Is this migration plan safe?",
        personas=catalog.resolve(PERSONAS),
        arbiter=catalog.get("arbiter"),
        endpoint=loaded.settings.endpoint,
        rounds=ROUNDS,
        speculative=speculative,
    )
    result = asyncio.run(DeliberationRun(plan, EventBus()).execute())
    io.StringIO().write(deliberation_markdown(result))
    wall = time.perf_counter() - started
    if result.exit_code != 0:
        raise SystemExit(f"benchmark run failed: {result.stop_reason}")
    return wall, len(result.rounds), result.wasted_tokens


def disconnect_delays_ms(base_url: str) -> list[float]:
    """For each stream the client closed: ms from the last verdict leaving the server."""
    records = control(base_url, "/_fake/stats")["records"]
    verdicts = [r for r in records if r["persona"] == "arbiter" and r["finished_at"]]
    closed = [r for r in records if r["disconnected_at"]]
    if not verdicts or not closed:
        return []
    ending = max(v["finished_at"] for v in verdicts)
    return [(r["disconnected_at"] - ending) * 1000 for r in closed]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persona-time", type=float, default=0.5, help="P, seconds")
    parser.add_argument("--runs", type=int, default=5, help="paired runs per case (median)")
    args = parser.parse_args()
    p = args.persona_time

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ["COUNCIL_HOME"] = str(workdir / "home")
        proc, base_url = start_server(workdir)
        try:
            script(base_url, CASES[0], p / 10)
            run_once(base_url, speculative=True)  # warm-up: imports, first connections
            for case in CASES:
                sequential, speculative, wasted, delays = [], [], [], []
                kept = 0
                for _ in range(args.runs):  # paired, so both see the same machine load
                    script(base_url, case, p)
                    sequential.append(run_once(base_url, speculative=False)[0])
                    script(base_url, case, p)
                    wall, kept, lost = run_once(base_url, speculative=True)
                    speculative.append(wall)
                    wasted.append(lost)
                    delays.extend(disconnect_delays_ms(base_url))
                rows.append((case, kept, sequential, speculative, wasted, delays))
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    print(
        f"deliberate benchmark: {len(PERSONAS)} personas, at most {ROUNDS} rounds, "
        f"P = {p:g} s per persona call, median of {args.runs} paired runs, "
        f"{os.cpu_count()} cores"
    )
    print(
        f"{'case':<36} {'A s':>5} {'kept':>4} {'seq s':>6} {'ideal':>6} {'spec s':>6} "
        f"{'ideal':>6} {'spec/ideal':>10} {'saved':>6} {'wasted tok':>10} {'close ms':>9}"
    )
    for case, kept, sequential, speculative, wasted, delays in rows:
        a = p * case.arbiter_factor
        seq_wall, spec_wall = statistics.median(sequential), statistics.median(speculative)
        seq_ideal = ideal_wall(p, a, kept, speculative=False)
        spec_ideal = ideal_wall(p, a, kept, speculative=True)
        ratio = spec_wall / spec_ideal
        saved = 1 - spec_wall / seq_wall
        close = f"{max(delays):.1f}" if delays else "–"
        notes = []
        if case.label.startswith("(a)"):
            notes.append(f"ideal ≤{IDEAL_TARGET:g} {'ok' if ratio <= IDEAL_TARGET else 'MISSED'}")
            notes.append(f"saved ≥30% {'ok' if saved >= SAVING_TARGET else 'MISSED'}")
        if delays:
            ok = max(delays) <= DISCONNECT_TARGET_MS
            notes.append(f"close ≤50 ms {'ok' if ok else 'MISSED'}")
        print(
            f"{case.label:<36} {a:>5.3g} {kept:>4} {seq_wall:>6.3f} {seq_ideal:>6.3f} "
            f"{spec_wall:>6.3f} {spec_ideal:>6.3f} {ratio:>9.3f}x {saved * 100:>5.1f}% "
            f"{statistics.median(wasted):>10.0f} {close:>9}  {'; '.join(notes)}"
        )


if __name__ == "__main__":
    main()
