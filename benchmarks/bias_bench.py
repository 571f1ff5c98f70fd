"""Issue 26, point 3, on the fake server with scripted reviewers: what the bias checks
cost `--rank` in time, and whether the figures see a biased reviewer.

1. Time. Four personas answer, then rank each other; every review streams for about
   REVIEW_SECONDS. Side by side, alternating, median of --repeats: the ranking with no
   check (`position_checks=0`, the ranking as it was), with the default (one reviewer
   re-asked in the reverse order), and with every check (4 re-asked, every reviewer in
   a shadow review). The checks go at the same time as the reviews: the ratios should
   stay near 1.0 while the calls grow.
2. Detection, with every check: reviewers that always put the first answer shown first
   (position consistency 0), a fixed taste (1), a taste for long answers (length ρ > 0),
   and reviewers that put their own answer first (self-preference 1 against chance 0.25).

    python benchmarks/bias_bench.py
    python benchmarks/bias_bench.py --repeats 7 --token-delay 0.02
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from council import Council
from tests.fake_openai import FakeOpenAI, Reply
from tests.test_bias import (
    ANSWERS,
    PERSONAS,
    QUESTION,
    first_shown,
    fixed_taste,
    longest_first,
    own_first,
    reviewer_reply,
)

WORDS = 20  # a review's reasoning, streamed a word a chunk before the ranking


def _slow(reply: Reply, delay: float) -> Reply:
    respond = reply.respond
    assert respond is not None
    padding = " ".join(["weighed"] * WORDS)
    return Reply(respond=lambda body: padding + " " + respond(body), token_delay=delay)


def _script(fake: FakeOpenAI, rank: object, delay: float) -> None:
    fake.reset()
    for name, text in ANSWERS.items():
        fake.script(name, Reply(text=text), round=1)
        for round_number in (2, 3):
            replies = [_slow(reviewer_reply(name, rank), delay) for _ in range(2)]  # type: ignore[arg-type]
            fake.script(name, *replies, round=round_number)


def _run(fake: FakeOpenAI, checks: dict[str, object]) -> tuple[float, int, dict]:
    council = Council(personas=list(PERSONAS), base_url=fake.base_url, model="m", history=False)
    started = time.perf_counter()
    result = council.ask(QUESTION, rank=True, options={"seed": 5}, **checks)  # type: ignore[arg-type]
    return time.perf_counter() - started, len(fake.requests), result.to_dict()["bias"]


def timing(fake: FakeOpenAI, delay: float, repeats: int) -> None:
    variants = {
        "no check (as before)": {"position_checks": 0},
        "default (1 re-asked)": {},
        "every check": {"position_checks": 4, "self_check_rate": 1.0},
    }
    walls: dict[str, list[float]] = {name: [] for name in variants}
    calls: dict[str, int] = {}
    for _ in range(repeats):
        for name, checks in variants.items():
            _script(fake, fixed_taste, delay)
            wall, count, _ = _run(fake, checks)
            walls[name].append(wall)
            calls[name] = count
    base = statistics.median(walls["no check (as before)"])
    print(f"1. --rank with 4 personas, reviews streamed at {delay * 1000:g} ms a chunk, "
          f"median of {repeats}")  # fmt: skip
    for name, times in walls.items():
        wall = statistics.median(times)
        print(f"   {name:<22} {wall:.3f} s  {calls[name]:>2} calls  ratio {wall / base:.2f}×")


def detection(fake: FakeOpenAI) -> None:
    print("2. detection, every check (4 re-asked, 4 shadow reviews)")
    every = {"position_checks": 4, "self_check_rate": 1.0}
    for label, rank in [
        ("first answer shown first", first_shown),
        ("fixed taste", fixed_taste),
        ("longest first", longest_first),
        ("own answer first", own_first),
    ]:
        _script(fake, rank, 0.0)
        _, _, bias = _run(fake, every)
        print(
            f"   {label:<25} position consistency {bias['position_consistency']} · "
            f"length ρ {bias['length_correlation']} · self-preference "
            f"{bias['self_preference']} (chance {bias['self_preference_chance']})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--token-delay", type=float, default=0.01)
    args = parser.parse_args()
    os.environ["COUNCIL_HOME"] = tempfile.mkdtemp(prefix="council-bias-bench-")
    with FakeOpenAI() as fake:
        timing(fake, args.token_delay, args.repeats)
        detection(fake)


if __name__ == "__main__":
    main()
