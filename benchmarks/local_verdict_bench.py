"""Readable verdicts from the embedded model: two-round deliberations on `--endpoint local`.

The embedded model (SmolLM2-135M through llama-cpp-python's server) is small: asked
for a verdict as any JSON object, it writes JSON without the `converged` key or
the synthesis, and the deliberation ends with no answer. Asked with the verdict's
schema (`json_object` carrying it, as that server takes), it cannot. For each of
10 questions a two-round deliberation runs, one at a time (the model is CPU-bound),
with this checkout's council and, with `--before SRC`, the one in SRC, alternately,
so that both see the same machine. The members answer briefly (100 tokens) and
the deadline is 600 s, for a loaded CPU. Reported per council: deliberations whose every
verdict could be read, deliberations with an answer (`answer.text`), verdicts read
out of verdicts asked, exit codes.

    python benchmarks/local_verdict_bench.py --before /path/to/old/src
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_process import ROOT

QUESTIONS = (
    "Should a small team write unit tests before or after the code?",
    "Is it better to rent or to buy a home in a city?",
    "Should a beginner learn Python or JavaScript first?",
    "Is remote work better than office work for a new graduate?",
    "Should a startup use a monolith or microservices?",
    "Is nuclear power a good way to cut carbon emissions?",
    "Should passwords be replaced by passkeys?",
    "Is it worth repairing a ten-year-old car?",
    "Should schools teach cursive writing?",
    "Is a four-day work week a good idea?",
)


# Two members who answer in a few sentences (the verdicts are what is measured, and the
# machine is small), the arbiter as built in; a deadline long enough for a loaded CPU.
MEMBERS = {
    "brief-for": "You argue for the proposal. Answer in two or three sentences.",
    "brief-against": "You argue against the proposal. Answer in two or three sentences.",
}
MEMBER_TOKENS = 100
TIMEOUT = "600"


def write_members(home: Path) -> None:
    personas = home / "personas"
    personas.mkdir(parents=True, exist_ok=True)
    for name, system in MEMBERS.items():
        (personas / f"{name}.yaml").write_text(
            f"name: {name}\ndescription: {name}\nsystem: {system}\nmax_tokens: {MEMBER_TOKENS}\n"
        )


def deliberation(src: Path, home: Path, question: str) -> dict[str, object]:
    write_members(home)
    env = {**os.environ, "COUNCIL_HOME": str(home), "PYTHONPATH": str(src)}
    command = [sys.executable, "-m", "council.cli", "deliberate", "--endpoint", "local"]
    command += ["-p", ",".join(MEMBERS), "--rounds", "2", "--timeout", TIMEOUT]
    command += ["--no-speculative", "--json", question]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    try:
        doc = json.loads(done.stdout)
    except ValueError:
        return {"exit_code": done.returncode, "asked": 0, "read": 0, "answer": False,
                "error": done.stderr.strip().splitlines()[-1:]}  # fmt: skip
    verdicts = [r["verdict"] for r in doc.get("rounds", []) if r.get("verdict") is not None]
    read = [v for v in verdicts if v.get("problem") is None]
    return {
        "exit_code": done.returncode,
        "asked": len(verdicts),
        "read": len(read),
        "answer": doc.get("answer", {}).get("text") is not None,
        "problems": sorted({v["problem"] for v in verdicts if v.get("problem")}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="SRC", help="also run the council in SRC")
    parser.add_argument("--runs", type=int, default=len(QUESTIONS))
    args = parser.parse_args()
    subjects = {"after": ROOT / "src"}
    if args.before:
        subjects = {"before": Path(args.before).resolve(), **subjects}
    rows: dict[str, list[dict[str, object]]] = {name: [] for name in subjects}
    with tempfile.TemporaryDirectory() as tmp:
        for i, question in enumerate(QUESTIONS[: args.runs]):
            for name, src in subjects.items():  # alternately: the same machine load
                row = deliberation(src, Path(tmp) / name, question)
                rows[name].append(row)
                print(json.dumps({"council": name, "question": i + 1, **row}), flush=True)
    for name, results in rows.items():
        readable = sum(1 for r in results if r["asked"] and r["read"] == r["asked"])
        answered = sum(1 for r in results if r["answer"])
        asked = sum(int(r["asked"]) for r in results)  # type: ignore[call-overload]
        read = sum(int(r["read"]) for r in results)  # type: ignore[call-overload]
        codes = Counter(r["exit_code"] for r in results)
        print(
            f"{name}: every verdict readable in {readable}/{len(results)} deliberations; "
            f"an answer in {answered}/{len(results)}; verdicts read {read}/{asked}; "
            f"exit codes {dict(sorted(codes.items()))}"
        )


if __name__ == "__main__":
    main()
