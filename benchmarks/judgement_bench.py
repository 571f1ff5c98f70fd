"""Issue 26 on the fake server with scripted replies: what the agreement map costs, and
whether the jury's position-flip detector sees a biased juror.

1. The agreement map (`oracle -s`). The arbiter streams its synthesis at TOKEN_DELAY
   seconds a chunk; with the map it then writes the map block in the same reply.
   Measured side by side, same answer text: when the answer's last chunk arrived
   (what a person waits for) and when the synthesis call ended, with the map and
   without it (the synthesis as it was before). Ratios: with / without.
2. The flip-rate detector (`council judge --pair`): three jurors that always prefer
   the answer shown first (flip rate should be 1.0), and three that always prefer the
   same answer whichever place it is in (0.0).
3. Escalation (`oracle -s --escalate`): QUESTIONS questions, a share of them easy (the
   first panel states one answer at 95 % confidence) and the rest hard (50 %). The
   calls the fake server received with --escalate against the same questions asked of
   the full council (its personas and the synthesis), for councils of 3 and 5 personas
   and first panels of 1 and 2. Target: at least 50 % saved when 70 % are easy.
4. Stopping (`--vote --stop-rule`): a council of 9 votes A/B; at each agreement level
   each voter says B with that probability (seeded), and its ballot arrives after a
   seeded delay. The same scripted ballots are voted on with every rule, fixed-N
   (`none`: every ballot counted) first; per rule: the ballots counted, the ballot
   calls stopped, the output tokens streamed against fixed-N, and how often the answer
   is fixed-N's.

    python benchmarks/judgement_bench.py
    python benchmarks/judgement_bench.py --words 400 --token-delay 0.01
    python benchmarks/judgement_bench.py --only stopping --trials 40
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from council.app.run import run_quietly
from council.config.personas import Persona
from council.engine.events import CallFinished, Event, EventBus, TextDelta
from council.engine.plan import build_oracle_plan
from council.engine.results import OracleResult
from council.engine.stopping import stop_rule
from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import resolved_endpoint

MAP = {
    "consensus": ["Postgres fits an invoicing app", "transactions matter for money"],
    "contradictions": [
        {
            "point": "whether a document store helps",
            "sides": [
                {"members": ["judge"], "position": "no: the data is relational"},
                {"members": ["critic"], "position": "maybe: line items vary by customer"},
            ],
            "assumption": "how much invoice formats differ",
        }
    ],
    "unique_insights": [{"point": "JSONB covers the varying parts", "member": "critic"}],
    "blind_spots": ["hosting and backups"],
    "dissent": ["critic: flexible schemas may matter later"],
    "confidence": 0.8,
}


def _plan(fake: FakeOpenAI) -> object:
    personas = [Persona(name=n, description=n, system=f"You are {n}.") for n in ("judge", "critic")]
    arbiter = Persona(name="arbiter", description="arbiter", system="You sum up.")
    endpoint = resolved_endpoint(fake.base_url)
    return build_oracle_plan(query="q", personas=personas, endpoint=endpoint, arbiter=arbiter)


def _synthesis_times(fake: FakeOpenAI, text: str, delay: float) -> tuple[float, float, int]:
    """(answer's last chunk, call end) in seconds from the synthesis's start; chunks sent."""
    fake.script("arbiter", Reply(text=text, token_delay=delay))
    seen: list[tuple[float, str]] = []
    ended: list[float] = []

    def listen(event: Event) -> None:
        if getattr(event, "role", "") != "arbiter":
            return
        if isinstance(event, TextDelta):
            seen.append((time.perf_counter(), event.text))
        elif isinstance(event, CallFinished):
            ended.append(time.perf_counter())

    bus = EventBus()
    bus.subscribe(listen)
    asyncio.run(run_quietly(_plan(fake), bus))  # type: ignore[arg-type]
    start = seen[0][0]
    streamed = ""
    answer_end = seen[-1][0]
    for at, chunk in seen:
        if "<agreement>" in streamed + chunk:
            break
        streamed += chunk
        answer_end = at
    return answer_end - start, ended[0] - start, len(seen)


def map_cost(words: int, delay: float, repeats: int) -> None:
    answer = "## Recommendation\n" + " ".join(f"w{i}" for i in range(words))
    with_map = f"{answer}\n\n<agreement>\n{json.dumps(MAP)}\n</agreement>"
    rows = {"without the map (before)": answer, "with the map (now)": with_map}
    results: dict[str, list[tuple[float, float, int]]] = {k: [] for k in rows}
    with FakeOpenAI() as fake:
        for _ in range(repeats):  # side by side, alternating
            for name, text in rows.items():
                results[name].append(_synthesis_times(fake, text, delay))
    print(f"1. agreement map: synthesis of {words} words, {delay * 1000:g} ms a chunk, "
          f"median of {repeats}")  # fmt: skip
    medians = {}
    for name, runs in results.items():
        answer_end = sorted(r[0] for r in runs)[len(runs) // 2]
        call_end = sorted(r[1] for r in runs)[len(runs) // 2]
        medians[name] = (answer_end, call_end)
        print(f"   {name:26} answer complete {answer_end:6.3f} s · call ends {call_end:6.3f} s "
              f"· {runs[0][2]} chunks")  # fmt: skip
    before, now = medians["without the map (before)"], medians["with the map (now)"]
    print(f"   ratio now/before: answer complete {now[0] / before[0]:.2f}× · "
          f"call end {now[1] / before[1]:.2f}×")  # fmt: skip


def flip_rates() -> None:
    print("2. position-flip detector (council judge --pair, 3 jurors)")
    with FakeOpenAI() as fake, tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp, "a.txt"), Path(tmp, "b.txt")
        a.write_text("Answer one.")
        b.write_text("Answer two.")
        env = {**os.environ, "COUNCIL_HOME": tmp, "COUNCIL_HISTORY": "off"}
        jury = ["-p", "judge,critic,skeptic", "--json", "--pair", str(a), str(b), "q"]
        command = [sys.executable, "-m", "council.cli", "judge", "--base-url", fake.base_url, *jury]

        def ballot(choice: str) -> Reply:
            return Reply(text=json.dumps({"choice": choice, "confidence": 0.9, "reason": "."}))

        fake.default = ballot("A")
        biased = json.loads(subprocess.run(command, capture_output=True, env=env).stdout)
        fake.default = Reply()
        for name in ("judge", "critic", "skeptic"):
            fake.script(name, ballot("A"), ballot("B"))
        steady = json.loads(subprocess.run(command, capture_output=True, env=env).stdout)
    print(f"   always prefers the first shown: flip rate {biased['position_flip_rate']}, "
          f"verdict {biased['verdict']}")  # fmt: skip
    print(f"   consistent:                     flip rate {steady['position_flip_rate']}, "
          f"verdict {steady['verdict']}")  # fmt: skip


def _escalation_calls(
    fake: FakeOpenAI, personas: list[str], panel: int, easy: int, questions: int
) -> tuple[int, int, int]:
    """(calls with --escalate, calls of the full council, runs that escalated)."""
    from council import Council

    council = Council(personas, base_url=fake.base_url, history=False)
    counts = []
    escalated = 0
    for escalate in (False, True):
        fake.reset()
        for number in range(questions):
            sure = 95 if number < easy else 50
            reply = Reply(text=f"Reasons.\nAnswer: yes\nConfidence: {sure}%")
            for name in personas[:panel]:
                fake.script(name, reply)
            options = {"panel": panel} if escalate else False
            result = council.ask(f"Question {number}?", synthesize=True, escalate=options)
            if escalate and result.escalation is not None and result.escalation["escalated"]:
                escalated += 1
        counts.append(len(fake.requests))
    full, with_escalation = counts
    return with_escalation, full, escalated


def escalation_savings(questions: int) -> None:
    print(f"3. escalation (oracle -s --escalate), {questions} questions each")
    names = ["judge", "critic", "skeptic", "optimist", "pragmatist"]
    with FakeOpenAI() as fake:
        for size, panel in ((3, 1), (5, 1), (5, 2)):
            for share in (0.3, 0.5, 0.7, 0.9):
                easy = round(questions * share)
                made, full, escalated = _escalation_calls(
                    fake, names[:size], panel, easy, questions
                )
                saved = 1 - made / full
                print(f"   council of {size}, panel of {panel}, {share:.0%} easy: "
                      f"{made} of {full} calls ({escalated} escalated): "
                      f"{saved:.1%} saved")  # fmt: skip


VOTERS = ("judge", "critic", "skeptic", "optimist", "pragmatist", "historian")
VOTERS += ("minimalist", "security", "user-advocate")
RULES = ("none", "overtake", "posterior", "window")


def _vote(fake: FakeOpenAI, rule: str, ballots: list[tuple[str, float]]) -> OracleResult:
    """One vote of VOTERS on the scripted (choice, delay) ballots, stopping on `rule`."""
    reason = " ".join(f"r{i}" for i in range(30))  # a ballot of some length, streamed
    for name, (choice, delay) in zip(VOTERS, ballots, strict=True):
        text = json.dumps({"choice": choice, "confidence": 0.8, "reason": reason})
        fake.script(name, Reply(text=text, ttft=delay, token_delay=0.001))
    personas = [Persona(name=n, description=n, system=f"You are {n}.") for n in VOTERS]
    plan = build_oracle_plan(
        query="A or B?",
        personas=personas,
        endpoint=resolved_endpoint(fake.base_url, max_concurrency=len(VOTERS)),
        vote=True,
        choices=("A", "B"),
        vote_early_stop=rule != "none",
        vote_stop=stop_rule(rule),
    )
    result = asyncio.run(run_quietly(plan))
    assert isinstance(result, OracleResult)
    return result


def stopping(levels: list[float], trials: int) -> None:
    print(f"4. stopping rules: {len(VOTERS)} voters, A or B, {trials} seeded councils a level; "
          "the same ballots for every rule")  # fmt: skip
    print(f"   {'agreement':>9} {'rule':>9} {'counted':>8} {'stopped':>8} "
          f"{'tokens vs fixed-N':>17} {'same answer':>11}")  # fmt: skip
    with FakeOpenAI() as fake:
        for level in levels:
            rows: dict[str, list[tuple[int, int, int, bool]]] = {r: [] for r in RULES}
            for trial in range(trials):
                rng = random.Random(f"{level}-{trial}")
                ballots = [
                    ("B" if rng.random() < level else "A", rng.uniform(0.0, 0.08)) for _ in VOTERS
                ]
                fixed: str | None = None
                for rule in RULES:
                    result = _vote(fake, rule, ballots)
                    vote = result.vote
                    assert vote is not None
                    tokens = sum(c.tokens_out or 0 for c in result.calls)
                    fixed = vote.answer if rule == "none" else fixed
                    counted = len(vote.ballots)
                    rows[rule].append((counted, len(vote.stopped), tokens, vote.answer == fixed))
            full = sum(r[2] for r in rows["none"])
            for rule, runs in rows.items():
                counted = sum(r[0] for r in runs) / len(runs)
                stopped = sum(r[1] for r in runs) / (len(runs) * len(VOTERS))
                tokens = sum(r[2] for r in runs) / full
                same = sum(r[3] for r in runs) / len(runs)
                print(f"   {level:>9.0%} {rule:>9} {counted:>8.2f} {stopped:>8.0%} "
                      f"{tokens:>17.0%} {same:>11.0%}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=200)
    parser.add_argument("--token-delay", type=float, default=0.005)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--trials", type=int, default=20, help="councils per agreement level")
    parser.add_argument("--levels", default="0.9,0.8,0.7,0.6")
    parser.add_argument(
        "--only",
        choices=("map", "flips", "escalation", "stopping"),
        help="run one part of the benchmark",
    )
    args = parser.parse_args()
    os.environ.setdefault("COUNCIL_HOME", tempfile.mkdtemp())
    if args.only in (None, "map"):
        map_cost(args.words, args.token_delay, args.repeats)
    if args.only in (None, "flips"):
        flip_rates()
    if args.only in (None, "escalation"):
        escalation_savings(args.questions)
    if args.only in (None, "stopping"):
        stopping([float(x) for x in args.levels.split(",")], args.trials)


if __name__ == "__main__":
    main()
