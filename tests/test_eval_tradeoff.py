"""Issue 26 point 6: `council eval`'s baselines, cost-accuracy view and paired differences."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from council.engine.tradeoff import (
    Point,
    answer_key,
    baselines,
    dominated,
    paired_bootstrap,
)
from tests.fake_openai import Reply
from tests.helpers import invoke
from tests.test_eval import city_items, write_items

COUNCIL = "judge,critic,skeptic"


def answer(letter: str) -> Reply:
    return Reply(text=f"Let me think.\nAnswer: {letter}")


def scripted_synthesis(fake: Any, tmp_path: Path, *args: str) -> Any:
    """Four items (C expected): judge right on 3, critic on 2, skeptic on 1; the members'
    majority right on 2 (two items tied three ways); the synthesis right on all 4."""
    fake.script("judge", *map(answer, "CCCB"))
    fake.script("critic", *map(answer, "CBBC"))
    fake.script("skeptic", *map(answer, "ACDD"))
    fake.script("arbiter", *[Reply(text="## Recommendation\nAnswer: C")] * 4)
    return invoke(
        "eval", str(city_items(tmp_path)), "--base-url", fake.base_url,
        "--max-concurrency", "1", "-p", COUNCIL, "--strategies", "synthesize", *args,
    )  # fmt: skip


def test_baselines_are_read_from_the_members_answers_without_a_call(fake, tmp_path):
    result = scripted_synthesis(fake, tmp_path, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    # No call beyond the synthesis's own: three members and the arbiter per item.
    assert len(fake.requests) == 16
    found = document["baselines"]
    assert (found["source"], found["best_single"], found["majority_ties"]) == (
        "synthesize",
        "judge",
        2,
    )
    rows = {row["name"]: row for row in found["rows"]}
    best, majority = rows["best single (judge)"], rows["majority vote"]
    assert (best["correct"], best["n"], best["calls"], best["kind"]) == (3, 4, 4, "baseline")
    assert (majority["correct"], majority["n"], majority["calls"]) == (2, 4, 12)
    (synthesize,) = document["strategies"]
    assert (synthesize["correct"], synthesize["calls"], synthesize["kind"]) == (4, 16, "strategy")
    assert synthesize["calls_per_item"] == 4.0 and best["calls_per_item"] == 1.0


def test_each_line_keeps_its_members_answers_scored(fake, tmp_path):
    out = tmp_path / "r.jsonl"
    result = scripted_synthesis(fake, tmp_path, "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = {json.loads(x)["item"]: json.loads(x) for x in out.read_text().splitlines()}
    members = {m["persona"]: m for m in lines["q3"]["members"]}
    assert (members["judge"]["predicted"], members["judge"]["correct"]) == ("B", False)
    assert (members["critic"]["predicted"], members["critic"]["correct"]) == ("C", True)
    assert members["skeptic"]["metrics"]["calls"] == 1
    assert members["skeptic"]["metrics"]["tokens_out"] > 0
    # Resumed: nothing is asked again and the baselines come back from the file.
    again = invoke(
        "eval", str(city_items(tmp_path)), "--base-url", fake.base_url, "-p", COUNCIL,
        "--strategies", "synthesize", "--out", str(out), "--json",
    )  # fmt: skip
    assert again.exit_code == 0 and len(fake.requests) == 16
    assert json.loads(again.stdout)["baselines"]["best_single"] == "judge"


def test_the_dominated_baseline_is_marked_and_the_differences_are_paired(fake, tmp_path):
    result = scripted_synthesis(fake, tmp_path, "--json")
    document = json.loads(result.stdout)
    points = {p["name"]: p for p in document["tradeoff"]["points"]}
    assert document["tradeoff"]["cost_axis"] == "tokens"  # the fake has no price
    # The majority costs three members' tokens for less than the judge alone gets right.
    assert points["majority vote"]["dominated_by"] == "best single (judge)"
    assert points["synthesize"]["dominated_by"] is None
    assert points["best single (judge)"]["dominated_by"] is None
    comparisons = document["comparisons"]
    assert comparisons["reference"] == "best single (judge)"
    assert (comparisons["resamples"], comparisons["seed"]) == (2000, 0)
    diffs = {d["name"]: d for d in comparisons["differences"]}
    # synthesize - judge per item: 0, 0, 0, +1. Resampled, the mean is K/4 with K the
    # draws of the +1 item, Binomial(4, 1/4): P(K=0) = .316, P(K<=2) = .949,
    # P(K<=3) = .996; so the 2.5th percentile is 0 and the 97.5th is 3/4.
    synthesize = diffs["synthesize"]
    assert (synthesize["n"], synthesize["difference"]) == (4, 0.25)
    assert (synthesize["ci_low"], synthesize["ci_high"]) == (0.0, 0.75)
    assert synthesize["verdict"] == "no clear difference"
    majority = diffs["majority vote"]
    assert (majority["difference"], majority["ci_low"], majority["ci_high"]) == (-0.25, -0.75, 0.0)


def test_a_council_that_clearly_beats_its_best_member_says_better(fake, tmp_path):
    # Ten items: every member wrong but on two (judge), the synthesis right on all ten.
    fake.script("judge", *map(answer, "CCBBBBBBBB"))
    fake.script("critic", *map(answer, "B" * 10))
    fake.script("skeptic", *map(answer, "D" * 10))
    fake.script("arbiter", *[Reply(text="Answer: C")] * 10)
    result = invoke(
        "eval", str(city_items(tmp_path, count=10)), "--base-url", fake.base_url,
        "--max-concurrency", "1", "-p", COUNCIL, "--strategies", "synthesize", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    diffs = {d["name"]: d for d in document["comparisons"]["differences"]}
    win = diffs["synthesize"]
    assert (win["versus"], win["n"], win["difference"]) == ("best single (judge)", 10, 0.8)
    assert win["ci_low"] > 0 and win["verdict"] == "better"
    # The majority (B on eight items, a three-way tie on two) is no better than the judge.
    assert diffs["majority vote"]["difference"] == -0.2


def test_the_csv_has_a_row_per_strategy_and_baseline(fake, tmp_path):
    table = tmp_path / "t.csv"
    result = scripted_synthesis(fake, tmp_path, "--csv", str(table))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(table.open()))
    assert [(r["name"], r["kind"]) for r in rows] == [
        ("synthesize", "strategy"),
        ("best single (judge)", "baseline"),
        ("majority vote", "baseline"),
    ]
    by = {r["name"]: r for r in rows}
    assert [by[n]["accuracy"] for n in by] == ["1.0", "0.75", "0.5"]
    assert [by[n]["calls_per_item"] for n in by] == ["4.0", "1.0", "3.0"]
    assert float(by["synthesize"]["ci_low"]) == pytest.approx(0.510, abs=1e-3)  # Wilson 4/4
    assert by["majority vote"]["dominated_by"] == "best single (judge)"
    assert by["synthesize"]["dominated_by"] == ""
    assert (by["synthesize"]["diff"], by["synthesize"]["diff_ci_high"]) == ("0.25", "0.75")
    assert by["synthesize"]["diff_vs"] == "best single (judge)"
    tokens = {name: float(row["tokens_per_item"]) for name, row in by.items()}
    assert tokens["synthesize"] > tokens["majority vote"] > tokens["best single (judge)"]
    assert by["synthesize"]["cost_per_item"] == ""  # no price known: empty, never 0
    # Names and numbers only, no question or answer: an ordinary file.
    assert "Which city" not in table.read_text()


def test_the_report_shows_baselines_a_chart_and_differences_in_80_columns(fake, tmp_path):
    result = scripted_synthesis(fake, tmp_path)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "| best single (judge) | 75.0 % |" in text and "| majority vote | 50.0 % |" in text
    assert "baselines: read from the answers of synthesize (no extra call)" in text
    chart = text.split("```text\n", 1)[1].split("```", 1)[0].splitlines()
    assert all(len(line) <= 80 for line in chart), chart
    assert chart[0] == "accuracy against tokens per item (* several)"
    legend = [line for line in chart if line.startswith("  3 ")]
    assert legend and legend[0].endswith("dominated by best single (judge)")
    assert any("synthesize" in line and "+25.0 pp [+0.0, +75.0]" in line for line in chart)
    # The synthesis (1) is drawn on the 100 % line, the majority (3) on the 50 % line.
    assert "1" in next(line for line in chart if line.startswith("100 % ┤"))
    assert "3" in next(line for line in chart if line.startswith(" 50 % ┤"))


def test_the_terminal_chart_fits_80_columns():
    from rich.console import Console

    from council.engine.tradeoff import trade_off
    from council.render.eval_report import eval_renderable

    lines = [
        {"item": f"q{i}", "strategy": s, "status": "ok", "correct": ok, "metrics": {"calls": c}}
        for i in range(10)
        for s, ok, c in (("a-rather-long-strategy-name", i < 7, 5), ("cheap", i < 5, 1))
    ]
    tradeoff = trade_off(lines, ["a-rather-long-strategy-name", "cheap"], [])
    console = Console(width=80, file=io.StringIO(), force_terminal=False, color_system=None)
    console.print(eval_renderable([], "heading", tradeoff))
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "accuracy against calls per item" in shown
    assert max(len(line) for line in shown.splitlines()) <= 80


# -- the statistics, against known values -------------------------------------------------


def test_an_identical_pair_differs_by_exactly_nothing():
    same = {f"q{i}": float(i % 2) for i in range(30)}
    assert paired_bootstrap(same, dict(same)) == (30, 0.0, 0.0, 0.0)


def test_a_clear_win_excludes_0_and_a_seed_repeats_it():
    # 30 items: a right on 27, b on 9; wherever b is right, a is too.
    a = {f"q{i}": 1.0 if i < 27 else 0.0 for i in range(30)}
    b = {f"q{i}": 1.0 if i < 9 else 0.0 for i in range(30)}
    n, mean, low, high = paired_bootstrap(a, b, seed="7")
    assert (n, mean) == (30, pytest.approx(0.6))
    assert 0 < low < mean < high <= 1
    assert paired_bootstrap(a, b, seed="7") == (n, mean, low, high)
    # Paired: a's edge is the same 18 items every time, so the interval is narrower than
    # two independent Wilson intervals would suggest: the normal approximation of the
    # paired difference (sd of d / sqrt n) gives 0.6 ± 0.18.
    assert low == pytest.approx(0.42, abs=0.05) and high == pytest.approx(0.77, abs=0.05)


def test_the_bootstrap_of_a_hand_computed_case():
    # d = (+1, 0, 0, 0): the resampled mean is K/4, K ~ Binomial(4, 1/4); the 2.5th
    # percentile of that is 0, the 97.5th is 3/4 (P(K <= 2) = 0.949 < 0.975).
    got = paired_bootstrap({"a": 1.0, "b": 0.0, "c": 0.0, "d": 0.0}, dict.fromkeys("abcd", 0.0))
    assert got == (4, 0.25, 0.0, 0.75)
    # Only the items both sides scored are paired.
    assert paired_bootstrap({"a": 1.0}, {"b": 1.0}) is None
    assert paired_bootstrap({"a": 1.0, "b": 1.0}, {"b": 0.0})[:2] == (1, 1.0)


def test_dominance_needs_strictly_better_in_one():
    found = [
        Point("cheap", 0.6, 1.0, None, None),
        Point("twin", 0.6, 1.0, None, None),  # the same point: neither dominates
        Point("dear", 0.6, 3.0, None, None),  # as accurate, dearer: dominated
        Point("worse", 0.5, 1.0, None, None),  # as cheap, less accurate: dominated
        Point("best", 0.9, 5.0, None, None),  # the most accurate: never dominated
    ]
    marks = dominated(found, "calls")
    assert marks == {"dear": "cheap", "worse": "cheap"}


def test_free_text_majorities_count_by_the_final_answer():
    def line(persona: str, text: str | None, correct: bool = False) -> dict[str, Any]:
        status = "ok" if text is not None else "failed"
        return {"persona": persona, "status": status, "answer": text, "correct": correct}

    council = [
        {
            "item": "w",
            "strategy": "synthesize",
            "scorer": "exact",
            "status": "ok",
            "correct": True,
            "members": [
                line("judge", "Hot's opposite.\nAnswer: **Cold**", True),
                line("critic", "cold.", True),
                line("skeptic", "Answer: warm", False),
            ],
        },
        {
            "item": "x",
            "strategy": "synthesize",
            "scorer": "exact",
            "status": "ok",
            "correct": False,
            "members": [
                line("judge", "Answer: up", False),
                line("critic", None, False),  # failed: no vote
                line("skeptic", "Answer: down", True),
            ],
        },
        {
            "item": "y",
            "strategy": "synthesize",
            "scorer": "exact",
            "status": "ok",
            "correct": False,
            "members": [line("judge", "", False), line("critic", ""), line("skeptic", "")],
        },
        {
            "item": "z",
            "strategy": "synthesize",
            "scorer": "exact",
            "status": "failed",
            "correct": False,
            "members": [line("judge", None), line("critic", None), line("skeptic", None)],
        },
    ]
    assert answer_key({**council[0]["members"][0], "scorer": "exact"}) == "cold"
    found = baselines(council, ["synthesize"], [])
    majority = {r["item"]: r for r in found.rows["majority vote"]}
    assert majority["w"]["correct"] is True  # "Cold" and "cold." are one answer
    assert majority["x"]["correct"] is False and found.ties == 1  # up against down: a tie
    # An empty answer is a wrong one; only when every call failed is the item failed.
    assert (majority["y"]["status"], majority["y"]["correct"]) == ("ok", False)
    assert majority["z"]["status"] == "failed"
    assert found.persona == "judge"  # 1 of 4, as skeptic; judge comes first


def test_model_graded_members_leave_the_baselines_out_with_a_reason():
    lines = [
        {
            "item": "o",
            "strategy": "synthesize",
            "status": "ok",
            "correct": True,
            "members": [{"persona": "judge", "status": "ok", "answer": "x", "correct": None}],
        }
    ]
    found = baselines(lines, ["synthesize"], [])
    assert not found.rows and "would need a call each" in (found.why or "")
    # A persona alone was judged: the baselines read its lines instead.
    alone = {"item": "o", "strategy": "critic", "status": "ok", "correct": True, "answer": "y"}
    found = baselines([*lines, alone], ["synthesize", "critic"], ["critic"])
    assert (found.source, found.persona, found.why) == ("critic", "critic", None)
    # Lines from before members were kept: said, not guessed.
    older = [{k: v for k, v in lines[0].items() if k != "members"}]
    assert "an older council's lines keep none" in (baselines(older, ["synthesize"], []).why or "")


def test_a_ballot_the_vote_stopped_is_no_answer_not_a_wrong_one(fake, tmp_path):
    def ballot(choice: str, **extra: Any) -> Reply:
        body = {"choice": choice, "confidence": 0.8, "reason": "r"}
        return Reply(text=json.dumps(body), **extra)

    data = write_items(
        tmp_path / "one.jsonl",
        [{"id": "q0", "query": "Which?", "choices": ["x", "y", "z"], "expected": "A"}],
    )
    fake.script("judge", ballot("A"))
    fake.script("critic", ballot("A"))
    fake.script("skeptic", ballot("B", gate="never"))  # still out when the vote is decided
    result = invoke(
        "eval", str(data), "--base-url", fake.base_url, "-p", COUNCIL,
        "--strategies", "vote", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["baselines"]["source"] == "vote"
    rows = {row["name"]: row for row in document["baselines"]["rows"]}
    assert (rows["best single (judge)"]["correct"], rows["majority vote"]["calls"]) == (1, 2)


def test_drawing_counts_is_the_same_bootstrap_as_drawing_items():
    import random

    from council.engine.scoring import percentile

    rng = random.Random(3)
    a = {f"q{i}": float(rng.random() < 0.7) for i in range(200)}
    b = {k: v if rng.random() < 0.8 else 1 - v for k, v in a.items()}
    n, mean, low, high = paired_bootstrap(a, b, resamples=20000)
    draws = random.Random(5)
    diffs = [a[k] - b[k] for k in a]
    means = [sum(draws.choices(diffs, k=n)) / n for _ in range(20000)]
    assert mean == pytest.approx(sum(diffs) / n)
    # Two independent runs of 20000 resamples: the bounds agree within one item (0.005).
    assert low == pytest.approx(percentile(means, 2.5), abs=0.006)
    assert high == pytest.approx(percentile(means, 97.5), abs=0.006)


def test_the_python_api_carries_the_trade_off_and_its_seed(fake, tmp_path):
    from council.app.eval.command import EvalOptions, run_eval
    from council.app.flags import AskFlags
    from council.errors import UsageError

    data = str(city_items(tmp_path))
    flags = AskFlags(base_url=fake.base_url, personas=COUNCIL, max_concurrency=1)
    fake.script("judge", *map(answer, "CCCB"))
    fake.script("critic", *map(answer, "CBBC"))
    fake.script("skeptic", *map(answer, "ACDD"))
    options = EvalOptions(data=data, strategies="synthesize", seed=5, resamples=500)
    report = run_eval(flags, options)
    assert report.tradeoff is not None
    assert (report.tradeoff.seed, report.tradeoff.resamples) == (5, 500)
    assert report.tradeoff.baselines.persona == "judge"
    assert report.document()["comparisons"]["seed"] == 5
    with pytest.raises(UsageError, match="too few"):
        run_eval(flags, EvalOptions(data=data, resamples=0))


def test_seed_is_an_eval_flag_shown_in_help():
    from tests.test_help import flowing, help_text

    words = flowing(help_text("eval", "--help", columns=100))
    assert "--seed" in words and "the same seed, the same intervals" in words
