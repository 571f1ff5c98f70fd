"""Part 2 of benchmarks/limits_bench.py: a context window council is not told about.

It starts its own fake server process, runs the `council` command as a user would,
and returns a table row.

Part 2, a context window council is not told about: `deliberate --rounds 3
--speculative` with 5 personas whose answers are long, on a server whose window
is 2,048 tokens (it counts a token as four characters) and which states nothing
about itself. Targets: 3 of 3 rounds (or converged); 400s only from the calls in
flight when the window was first learned; every call that quotes more than fits
is fitted.

    python benchmarks/limits_bench.py          # both parts
    python benchmarks/limits_context_bench.py  # this part alone
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_process import ROOT, control, start_server, timed_reply, write_personas

PERSONAS = 5
ANSWER_WORDS = 350  # about 700 tokens each as the server counts: five do not fit 2,048
WINDOW = 2048
ROUNDS = 3


def _verdict(round_number: int) -> str:
    return json.dumps(
        {"converged": False, "confidence": 0.5, "synthesis": f"S{round_number}.", "dissent": []}
    )


def context_window_scenario(latency: float = 0.3) -> dict[str, object]:
    """Part 2: a 2,048-token window learned from the server's 400s, then fitted to."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        proc, base_url = start_server(workdir)
        try:
            home = workdir / "home"
            names = write_personas(home, PERSONAS, prefix="member-", answer="Answer at length.")
            words = " ".join(f"point{i:03d}" for i in range(ANSWER_WORDS))
            control(base_url, "/_fake/default", timed_reply(latency, 0, words))
            control(
                base_url,
                "/_fake/settings",
                {"context_window": WINDOW, "context_error_style": "llamacpp"},
            )
            for number in range(1, ROUNDS + 1):
                reply = timed_reply(latency / 2, 0, _verdict(number))
                control(
                    base_url,
                    "/_fake/script",
                    {"persona": "arbiter", "round": number, "replies": [reply]},
                )
            env = {**os.environ, "COUNCIL_HOME": str(home), "PYTHONPATH": str(ROOT / "src")}
            command = [
                *(sys.executable, "-m", "council.cli", "deliberate"),
                *("--base-url", base_url, "--rounds", str(ROUNDS), "--speculative"),
                *("--personas", ",".join(names), "--max-concurrency", "8", "--json"),
                "Which database should we use?",
            ]
            run = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            stats = control(base_url, "/_fake/stats")
        finally:
            proc.terminate()
            proc.wait()
    doc = json.loads(run.stdout)
    records = stats["records"]
    refused = [r for r in records if r["status"] == 400]
    calls = [
        call
        for kept in doc["rounds"]
        for call in [*kept["answers"], *kept.get("errors", []), kept.get("arbiter") or {}]
        if call
    ]
    fitted = [c for c in calls if c.get("fitted")]
    return {
        "exit": run.returncode,
        "rounds": f"{len(doc['rounds'])} of {ROUNDS}",
        "stop": doc.get("stop_reason"),
        "requests": len(records),
        "400s": len(refused),
        "400s by round": ",".join(sorted({str(r["round"]) for r in refused})),
        "calls fitted": len(fitted),
        "words cut": sum(c["fitted"]["cut_words"] for c in fitted),
    }


def _table(title: str, row: dict[str, object]) -> None:
    print(title)
    width = max(len(k) for k in row)
    for key, value in row.items():
        print(f"  {key:<{width}}  {value}")


def print_context() -> None:
    _table(
        f"part 2: deliberate --rounds {ROUNDS} --speculative, {PERSONAS} personas x "
        f"{ANSWER_WORDS} words, a {WINDOW:,}-token window council is not told about",
        context_window_scenario(),
    )


if __name__ == "__main__":
    print_context()
