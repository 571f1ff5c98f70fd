"""Issue 26, point 2: `council eval --scorer jury`, and the jury's Cohen's kappa with the labels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import invoke

CITIES = ["Paris", "Lyon", "Nice"]


def grades(verdict: str) -> Reply:
    scores = [5] if verdict == "approve" else [1]
    return Reply(text=json.dumps({"reasoning": "Compared.", "scores": scores, "verdict": verdict}))


def write_cities(tmp_path: Path, count: int = 4) -> Path:
    items = [
        {"id": f"q{i}", "query": f"Which city, {i}?", "choices": CITIES, "expected": "C"}
        for i in range(count)
    ]
    path = tmp_path / "cities.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def eval_jury(fake: FakeOpenAI, data: Path, *args: str) -> Any:
    return invoke(
        "eval", str(data), "--base-url", fake.base_url, "--max-concurrency", "1",
        "--strategies", "skeptic", "--scorer", "jury", *args,
    )  # fmt: skip


def script_round(fake: FakeOpenAI) -> None:
    """skeptic right, right, wrong, wrong (the labels); the jury passes all but the third."""
    right, wrong = Reply(text="Answer: C"), Reply(text="Answer: B")
    fake.script("skeptic", right, right, wrong, wrong)
    for juror in ("judge", "critic"):
        fake.script(juror, *(grades(v) for v in ("approve", "approve", "reject", "approve")))


def test_the_jury_scores_answers_and_its_kappa_with_the_labels_is_reported(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    data, out = write_cities(tmp_path), tmp_path / "results.jsonl"
    script_round(fake)
    result = eval_jury(fake, data, "-p", "judge,critic", "--json", "--out", str(out))
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    (skeptic,) = document["strategies"]
    assert (skeptic["correct"], skeptic["n"]) == (3, 4)  # what the jury approved
    assert (skeptic["calls"], skeptic["judge_calls"]) == (4, 8)  # the jury's counted apart
    # Jury [pass, pass, fail, pass] against labels [right, right, wrong, wrong]:
    # observed 3/4, chance (3·2 + 1·2)/16 = 1/2, kappa (0.75 - 0.5) / 0.5 = 0.5.
    agreement = document["jury_agreement"]
    assert (agreement["statistic"], agreement["value"], agreement["n"]) == ("cohen_kappa", 0.5, 4)
    assert agreement["strategies"] == {"skeptic": {"value": 0.5, "n": 4}}
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["label_correct"] for line in lines] == [True, True, False, False]
    assert [line["jury"]["verdict"] for line in lines] == ["approve"] * 2 + ["reject", "approve"]
    assert [j["name"] for j in lines[0]["jury_setup"]] == ["judge", "critic"]
    # Each juror graded the strategy's answer against the expected one, as JSON grades.
    request = fake.requests_for("critic")[2]
    prompt = request.body["messages"][-1]["content"]
    assert "<answer>\nAnswer: B\n</answer>" in prompt and "<reference>\nC\n</reference>" in prompt
    assert "1. agrees with the reference answer" in prompt and "C) Nice" in prompt
    assert request.body["response_format"]["json_schema"]["name"] == "grades"
    # The terminal report says it in one line.
    fake.reset()
    script_round(fake)
    text = eval_jury(fake, data, "-p", "judge,critic")
    assert "Jury vs labels: Cohen's kappa 0.50 over 4 answers" in text.stdout


def test_another_jury_rescores_stored_answers_without_asking_again(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    data, out = write_cities(tmp_path), tmp_path / "results.jsonl"
    script_round(fake)
    assert eval_jury(fake, data, "-p", "judge,critic", "--out", str(out)).exit_code == 0
    asked = len(fake.requests_for("skeptic"))
    fake.default = grades("reject")
    again = eval_jury(fake, data, "-p", "judge", "--json", "--out", str(out))
    assert again.exit_code == 0, again.output
    assert len(fake.requests_for("skeptic")) == asked  # the answers were kept
    assert "re-scoring 4 stored answers" in again.stderr and "jury changed" in again.stderr
    document = json.loads(again.stdout)
    assert document["strategies"][0]["correct"] == 0
    # Jury all fail, labels half right: chance equals what is observed, kappa 0.
    assert document["jury_agreement"]["value"] == pytest.approx(0.0)


def test_a_presets_jury_is_the_evals_jury(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "graders.yaml").write_text("name: graders\npersonas: [judge]\njury: [historian]\n")
    monkeypatch.setenv("COUNCIL_PRESET_PATH", str(presets))
    data = write_cities(tmp_path, count=2)
    fake.default = grades("approve")
    result = eval_jury(fake, data, "--preset", "graders", "--json")
    assert result.exit_code == 0, result.output
    assert len(fake.requests_for("historian")) == 2 and not fake.requests_for("judge")
    assert json.loads(result.stdout)["strategies"][0]["correct"] == 2
