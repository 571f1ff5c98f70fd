"""How many ballot calls and tokens does `--vote`'s early stop save when the first ballots agree?

Starts the fake OpenAI-compatible server in its own process and runs council's
oracle engine in-process on `--vote --choices A,B` councils of N personas. The
smallest majority of them (k = N // 2 + 1) answer "B" quickly; the other N - k
answer "A" slowly (a long ballot, streamed). Once the k agreeing ballots are in,
the rest cannot change the outcome, so early stop cancels them. Each council runs
twice, side by side: with early stop, and without it (every call finishes).

    python benchmarks/vote_bench.py            # N = 3, 5, 7, 9
    python benchmarks/vote_bench.py --runs 3

Per N it prints the ballot calls stopped (share of all ballot calls; target
>= 30 %), the output tokens spent with and without early stop and the share
saved (measured: what the cancelled calls did not stream), the vote's own
estimate of the tokens saved, and both wall times. `measure()` returns the rows
(benchmarks/eval_bench.py prints them too).

The share of tokens saved depends on the scenario: here the late dissenters write long
ballots (SLOW_TOKENS), so it is larger than the share of calls; with ballots of equal
length it would be about the same. The vote's own `tokens_saved` estimate (the mean
output tokens of the finished ballots) undercounts such long late ballots.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_process import control, resolved_settings, start_server, timed_reply, write_personas

COUNCILS = (3, 5, 7, 9)
TARGET_CALLS_SAVED = 0.30
FAST, SLOW = 0.05, 0.8  # seconds per ballot: the agreeing ones, the late dissenters
SLOW_TOKENS = 60  # a late ballot thinks aloud before it votes


def _ballot(choice: str, reason_words: int) -> str:
    reason = " ".join(f"because{i}" for i in range(reason_words))
    return json.dumps({"choice": choice, "confidence": 0.8, "reason": reason})


def _script(base_url: str, names: list[str], agreeing: int) -> None:
    control(base_url, "/_fake/reset", {})
    for i, name in enumerate(names):
        if i < agreeing:
            reply = timed_reply(FAST, 8, _ballot("B", 4))
        else:
            reply = timed_reply(SLOW, SLOW_TOKENS, _ballot("A", SLOW_TOKENS - 6))
        control(base_url, "/_fake/script", {"persona": name, "replies": [reply]})


def _vote_once(base_url: str, names: list[str], early_stop: bool) -> dict[str, Any]:
    from council.engine.events import EventBus
    from council.engine.oracle import OracleRun
    from council.engine.plan import build_oracle_plan

    loaded = resolved_settings(base_url, max_concurrency=len(names))
    plan = build_oracle_plan(
        query="Which one, A or B?",
        personas=loaded.catalog.resolve(names),
        endpoint=loaded.settings.endpoint,
        vote=True,
        choices=("A", "B"),
        vote_early_stop=early_stop,
    )
    started = time.perf_counter()
    result = asyncio.run(OracleRun(plan, EventBus()).execute())
    wall = time.perf_counter() - started
    vote = result.vote
    assert vote is not None and vote.winners == ("B",), vote
    spent = sum(o.tokens_out or 0 for o in result.outcomes.values())
    return {
        "stopped": len(vote.stopped),
        "tokens": spent,
        "estimate": vote.tokens_saved,
        "wall": wall,
        "exit": result.exit_code,
    }


def measure(runs: int = 3, councils: tuple[int, ...] = COUNCILS) -> list[dict[str, Any]]:
    """One row per council size: calls and tokens early stop saved, against no early stop."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        home = work / "home"
        saved = {k: os.environ.get(k) for k in ("COUNCIL_HOME", "OPENAI_API_KEY")}
        os.environ["COUNCIL_HOME"] = str(home)
        os.environ.setdefault("OPENAI_API_KEY", "bench")
        proc, base_url = start_server(work)
        try:
            names = write_personas(home, max(councils), prefix="voter-")
            for n in councils:
                voters, agreeing = names[:n], n // 2 + 1
                on: list[dict[str, Any]] = []
                off: list[dict[str, Any]] = []
                for _ in range(runs):
                    for early_stop, kept in ((True, on), (False, off)):
                        _script(base_url, voters, agreeing)
                        kept.append(_vote_once(base_url, voters, early_stop))
                stopped = statistics.median(r["stopped"] for r in on)
                tokens_on = statistics.median(r["tokens"] for r in on)
                tokens_off = statistics.median(r["tokens"] for r in off)
                rows.append(
                    {
                        "personas": n,
                        "agreeing_first": agreeing,
                        "ballot_calls": n,
                        "calls_stopped": stopped,
                        "calls_saved_share": stopped / n,
                        "tokens_early_stop": tokens_on,
                        "tokens_no_early_stop": tokens_off,
                        "tokens_saved_share": 1 - tokens_on / tokens_off if tokens_off else 0.0,
                        "tokens_saved_estimate": statistics.median(r["estimate"] for r in on),
                        "wall_early_stop": statistics.median(r["wall"] for r in on),
                        "wall_no_early_stop": statistics.median(r["wall"] for r in off),
                        "exit_codes": sorted({r["exit"] for r in on + off}),
                        "target_calls_saved_share": TARGET_CALLS_SAVED,
                    }
                )
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            for key, value in saved.items():  # as it was: eval_bench runs others after this
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'N':>3} {'agree':>5} {'stopped':>9} {'calls saved':>11} {'tokens on/off':>15} "
        f"{'tokens saved':>12} {'estimate':>8} {'wall on/off':>15}"
    )
    for r in rows:
        tokens = f"{r['tokens_early_stop']:.0f}/{r['tokens_no_early_stop']:.0f}"
        wall = f"{r['wall_early_stop']:.2f}s/{r['wall_no_early_stop']:.2f}s"
        ok = "ok" if r["calls_saved_share"] >= TARGET_CALLS_SAVED else "BELOW TARGET"
        print(
            f"{r['personas']:>3} {r['agreeing_first']:>5} "
            f"{r['calls_stopped']:>4.0f} of {r['ballot_calls']:<2} "
            f"{r['calls_saved_share']:>10.0%} {tokens:>15} {r['tokens_saved_share']:>12.0%} "
            f"{r['tokens_saved_estimate']:>8.0f} {wall:>15}  {ok}"
        )
    print(
        f"target: >= {TARGET_CALLS_SAVED:.0%} of ballot calls saved when the first ballots agree; "
        "tokens are output tokens (what the stopped calls had streamed counts as spent); "
        "'estimate' is the vote's own tokens_saved (mean output tokens of the finished ballots)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print_table(measure(runs=args.runs))


if __name__ == "__main__":
    main()
