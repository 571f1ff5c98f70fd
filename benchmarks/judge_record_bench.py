"""What recording `council judge` in the history costs, on the fake server.

`council judge` is recorded in the history as every asking command is (issue 26,
point 2). Measured side by side, alternating, in one run: the same judge of one
answer by three jurors, as a fresh process each time (imports included), with the
history (the default) and with `--no-history`. The ratio is recorded / not.

    python benchmarks/judge_record_bench.py
    python benchmarks/judge_record_bench.py --runs 20
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fake_openai import FakeOpenAI, Reply

ROOT = Path(__file__).resolve().parents[1]

GRADES = {"reasoning": "Sound.", "scores": [4, 5], "verdict": "approve"}


def _once(base_url: str, home: str, answer: Path, *extra: str) -> float:
    env = {**os.environ, "COUNCIL_HOME": home, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "council.cli", "judge", "--base-url", base_url]
    command += ["-p", "judge,critic,skeptic", "--answer", str(answer)]
    command += ["--rubric", "correct, clear", "Which database?", *extra]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"council judge failed: {done.stderr.strip()}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=12)
    args = parser.parse_args()
    with FakeOpenAI() as fake, tempfile.TemporaryDirectory() as scratch:
        fake.default = Reply(text=json.dumps(GRADES))
        answer = Path(scratch) / "answer.md"
        answer.write_text("Use Postgres.")
        times: dict[str, list[float]] = {"recorded": [], "--no-history": []}
        _once(fake.base_url, scratch, answer)  # warm the file cache once, not counted
        for _ in range(args.runs):
            times["recorded"].append(_once(fake.base_url, scratch, answer))
            times["--no-history"].append(_once(fake.base_url, scratch, answer, "--no-history"))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name:>14}: median {value:.3f} s over {args.runs} runs")
    print(f"ratio recorded / --no-history: {medians['recorded'] / medians['--no-history']:.2f}")


if __name__ == "__main__":
    main()
