"""Issue 26, point 2: `council judge`, a jury with its agreement, against the fake server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from council.engine.jury import criteria_of, read_grades
from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import invoke

JURY = "judge,critic,skeptic"


def grades(scores: list[int], verdict: str) -> Reply:
    return Reply(
        text=json.dumps({"reasoning": "Weighed it.", "scores": scores, "verdict": verdict})
    )


def ballot(choice: str) -> Reply:
    return Reply(text=json.dumps({"choice": choice, "confidence": 0.9, "reason": "Better."}))


def judge(fake: FakeOpenAI, tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    answer = tmp_path / "answer.md"
    answer.write_text("Use Postgres.")
    result = invoke(
        "judge", "--base-url", fake.base_url, "-p", JURY, "--json",
        "--answer", str(answer), "--rubric", "correct\nclear", *args, "Which database?",
    )  # fmt: skip
    return result.exit_code, json.loads(result.stdout)


def pair(fake: FakeOpenAI, tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    (tmp_path / "a.txt").write_text("Answer one.")
    (tmp_path / "b.txt").write_text("Answer two.")
    result = invoke(
        "judge", "--base-url", fake.base_url, "-p", JURY, "--json",
        "--pair", str(tmp_path / "a.txt"), str(tmp_path / "b.txt"), *args, "q",
    )  # fmt: skip
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.parametrize(
    ("verdicts", "code", "pooled"),
    [
        (["approve", "approve", "reject"], 0, "approve"),
        (["reject", "reject", "approve"], 4, "reject"),
    ],
)
def test_gate_exit_codes_follow_the_majority(
    fake: FakeOpenAI, tmp_path: Path, verdicts: list[str], code: int, pooled: str
) -> None:
    for name, verdict in zip(JURY.split(","), verdicts, strict=True):
        fake.script(name, grades([4, 4] if verdict == "approve" else [2, 1], verdict))
    exit_code, doc = judge(fake, tmp_path, "--gate")
    assert (exit_code, doc["verdict"]) == (code, pooled)
    assert [j["verdict"] for j in doc["jurors"]] == verdicts
    assert doc["agreement"]["statistic"] == "krippendorff_alpha_interval"
    assert isinstance(doc["agreement"]["value"], float)
    assert all(j["reason"] == "Weighed it." for j in doc["jurors"])
    # Every juror was asked for JSON grades of the answer, with the rubric.
    for request in fake.requests:
        assert request.body is not None
        prompt = request.body["messages"][-1]["content"]
        assert "Use Postgres." in prompt and "1. correct\n2. clear" in prompt
        assert request.body["response_format"]["json_schema"]["name"] == "grades"


def test_gate_is_undecided_on_a_split_and_failed_when_no_juror_answers(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    fake.script("judge", grades([5, 5], "approve"))
    fake.script("critic", grades([1, 1], "reject"))
    fake.script("skeptic", Reply(status=400, error_message="bad request"))
    exit_code, doc = judge(fake, tmp_path, "--gate")
    assert (exit_code, doc["verdict"]) == (3, "undecided")
    assert doc["jurors"][2]["verdict"] is None and doc["jurors"][2]["problem"]
    for name in JURY.split(","):
        fake.script(name, Reply(status=400, error_message="bad request"))
    exit_code, doc = judge(fake, tmp_path, "--gate")
    assert (exit_code, doc["verdict"]) == (3, "undecided")


def test_mean_pooling_weighs_scores_not_verdicts(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.script("judge", grades([5, 5], "approve"))
    fake.script("critic", grades([3, 3], "reject"))
    fake.script("skeptic", grades([3, 3], "reject"))
    exit_code, doc = judge(fake, tmp_path, "--gate", "--pool", "mean", "--pass-score", "3.5")
    assert doc["mean_score"] == pytest.approx(11 / 3, abs=1e-4)
    assert (exit_code, doc["verdict"]) == (0, "approve")


def test_a_juror_that_always_prefers_position_a_flips_every_time(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    fake.default = ballot("A")  # whatever is shown first wins
    exit_code, doc = pair(fake, tmp_path)
    assert exit_code == 0
    assert doc["position_flip_rate"] == 1.0
    assert doc["verdict"] == "tie" and {j["verdict"] for j in doc["jurors"]} == {"tie"}
    assert all(j["orders"] == {"a_first": "A", "b_first": "B"} for j in doc["jurors"])
    # Each juror saw both orders.
    prompts = [r.body["messages"][-1]["content"] for r in fake.requests if r.body]
    assert len(prompts) == 6
    firsts = [p.index("Answer one.") < p.index("Answer two.") for p in prompts]
    assert sorted(firsts) == [False] * 3 + [True] * 3


def test_a_consistent_jury_never_flips_and_gates_on_its_verdict(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    for name in JURY.split(","):  # answer one is better, whichever place it is shown in
        fake.script(name, ballot("A"), ballot("B"))
    exit_code, doc = pair(fake, tmp_path, "--gate")
    assert doc["position_flip_rate"] == 0.0
    assert (exit_code, doc["verdict"]) == (0, "A")
    assert doc["agreement"] == {"statistic": "fleiss_kappa", "value": None}  # all one answer
    for name in JURY.split(","):
        fake.script(name, ballot("B"), ballot("A"))
    exit_code, doc = pair(fake, tmp_path, "--gate")
    assert (exit_code, doc["verdict"], doc["position_flip_rate"]) == (4, "B", 0.0)


def test_the_markdown_report_and_usage_errors(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.default = grades([4, 5], "approve")
    answer = tmp_path / "answer.md"
    answer.write_text("Use Postgres.")
    base = ["judge", "--base-url", fake.base_url, "-p", JURY]
    result = invoke(*base, "--answer", str(answer), "--rubric", "correct, clear", "q")
    assert result.exit_code == 0
    assert "# Verdict: approve" in result.stdout and "- **critic**: approve" in result.stdout
    assert "Krippendorff's alpha (interval)" in result.stdout
    quiet = invoke(*base, "-q", "--answer", str(answer), "--rubric", "correct, clear", "q")
    assert (quiet.exit_code, quiet.stdout) == (0, "approve\n")
    bad = invoke(*base, "--answer", str(answer), "q")
    assert bad.exit_code == 2 and "--answer needs --rubric" in bad.output
    assert "Traceback" not in bad.output
    missing = invoke(*base, "--pair", str(tmp_path / "nope.txt"), str(answer), "q")
    assert missing.exit_code == 2 and "cannot read answer" in missing.output
    neither = invoke(*base, "q")
    assert neither.exit_code == 2 and "--pair" in neither.output


def test_grades_are_read_tolerantly() -> None:
    assert criteria_of("- correct\n- clear\n\n3. brief") == ["correct", "clear", "brief"]
    fenced = '```json\n{"scores": {"correct": "4", "clear": 9}, "reason": "ok"}\n```'
    juror = read_grades("j", fenced, 3, pass_score=3.5)
    assert juror.scores == (4, None, None) and juror.verdict == "approve"
    assert read_grades("j", "no json", 2, 3.5).verdict is None
