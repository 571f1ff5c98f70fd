"""Issue 26, point 2's rest: `council judge --items`, `jury:` in a preset, judge runs in the
history; against the fake server, jurors scripted per persona (FIFO)."""

from __future__ import annotations

import json
import os
import signal
import stat
from pathlib import Path
from typing import Any

import pytest

from council.errors import UsageError
from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import council_process, history_db_path, history_rows, invoke

JURY = "judge,critic"


def grades(verdict: str, scores: tuple[int, int] = (4, 4)) -> Reply:
    body = {"reasoning": "Weighed it.", "scores": list(scores), "verdict": verdict}
    return Reply(text=json.dumps(body))


def ballot(choice: str) -> Reply:
    return Reply(text=json.dumps({"choice": choice, "confidence": 0.9, "reason": "Better."}))


def write_items(path: Path, *items: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def lines_of(out: Path) -> dict[str, dict[str, Any]]:
    return {line["id"]: line for line in map(json.loads, out.read_text().splitlines())}


def prompts(fake: FakeOpenAI, start: int = 0) -> list[str]:
    return [r.body["messages"][-1]["content"] for r in fake.requests[start:] if r.body]


ITEMS = (
    {"id": "good", "query": "Which database?", "answer": "Use Postgres.", "team": "db"},
    {"id": "bad", "query": "Which cache?", "answer": "Use a text file.", "rubric": ["fast"]},
    {"id": "pair", "query": "Which reply?", "a": "Reply one.", "b": "Reply two."},
)


def test_every_item_gets_its_verdict_line_and_the_run_a_summary(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    items, out = write_items(tmp_path / "items.jsonl", *ITEMS), tmp_path / "verdicts.jsonl"
    # One item at a time, so each juror's queue is read in the file's order.
    fake.script("judge", grades("approve"), grades("reject", (1, 1)), ballot("A"), ballot("B"))
    fake.script("critic", grades("approve"), grades("reject", (2, 2)), ballot("A"), ballot("A"))
    result = invoke(
        "judge", "--base-url", fake.base_url, "-p", JURY, "--max-concurrency", "1",
        "--items", str(items), "--out", str(out), "--rubric", "correct, clear", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = lines_of(out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    good, bad, pair = lines["good"], lines["bad"], lines["pair"]
    assert (good["verdict"], good["criteria"], good["team"]) == (
        "approve",
        ["correct", "clear"],
        "db",
    )
    assert "answer" not in good  # the answers are the input's, not repeated on every line
    assert good["agreement"]["statistic"] == "krippendorff_alpha_interval"
    assert [j["verdict"] for j in bad["jurors"]] == ["reject", "reject"]
    assert bad["criteria"] == ["fast"]
    # judge kept answer one whichever place it had; critic always chose the first shown.
    assert pair["verdict"] == "undecided" and pair["position_flip_rate"] == 0.5
    assert [j["flipped"] for j in pair["jurors"]] == [False, True]
    assert pair["agreement"]["statistic"] == "fleiss_kappa"
    assert all(line["status"] == "ok" and line["metrics"]["calls"] for line in lines.values())
    summary = json.loads(result.stdout)
    assert summary["judged"] == 3 and summary["failed"] == 0
    assert summary["verdicts"] == {"approve": 1, "reject": 1, "undecided": 1}
    assert summary["mean_position_flip_rate"] == 0.5
    assert set(summary["mean_agreement"]) == {"fleiss_kappa", "krippendorff_alpha_interval"}
    assert "3 items judged (1 approve, 1 reject, 1 undecided)" in result.stderr
    # Each juror read each item's own texts; the pair in both orders.
    asked = prompts(fake)
    assert len(asked) == 2 + 2 + 4
    assert sum("Use a text file." in p and "1. fast" in p for p in asked) == 2
    assert (
        sum(p.index("Reply one.") > p.index("Reply two.") for p in asked if "Reply one." in p) == 2
    )


@pytest.mark.parametrize(
    ("verdicts", "code"),
    [(("approve", "approve"), 0), (("approve", "reject"), 4), (("approve", None), 3)],
)
def test_gate_over_items_fails_on_any_rejection(
    fake: FakeOpenAI, tmp_path: Path, verdicts: tuple[str, str | None], code: int
) -> None:
    two = [{"id": f"i{n}", "query": "q", "answer": f"Answer {n}."} for n in (1, 2)]
    items, out = write_items(tmp_path / "items.jsonl", *two), tmp_path / "out.jsonl"
    for verdict in verdicts:
        reply = grades(verdict) if verdict else Reply(status=400, error_message="bad request")
        fake.script("judge", reply)
    result = invoke(
        "judge", "--base-url", fake.base_url, "-p", "judge", "--max-concurrency", "1",
        "--items", str(items), "--out", str(out), "--rubric", "correct", "--gate",
    )  # fmt: skip
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    statuses = [line["status"] for line in lines_of(out).values()]
    assert statuses == ["ok", "ok" if verdicts[1] else "failed"]


def test_a_stopped_run_resumes_without_asking_a_finished_item_again(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    three = [{"id": f"i{n}", "query": "q", "answer": f"Answer {n}."} for n in (1, 2, 3)]
    items, out = write_items(tmp_path / "items.jsonl", *three), tmp_path / "out.jsonl"
    fake.default = grades("approve")
    fake.script("judge", grades("approve"), grades("approve"), Reply(hang=True))
    args = ["--base-url", fake.base_url, "-p", JURY, "--max-concurrency", "1"]
    args += ["--items", str(items), "--out", str(out), "--rubric", "correct"]
    process = council_process("judge", *args)
    try:
        fake.wait_for(lambda f: len(f.requests_for("judge")) == 3, timeout=30)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "the same command resumes it" in err
    assert set(lines_of(out)) == {"i1", "i2"}
    (run,) = history_rows("SELECT command, status FROM runs")
    assert (run["command"], run["status"]) == ("judge", "interrupted")
    before = len(fake.requests)
    again = invoke("judge", *args)
    assert again.exit_code == 0, again.output
    asked = prompts(fake, before)
    assert len(asked) == 2 and all("Answer 3." in p for p in asked)
    assert set(lines_of(out)) == {"i1", "i2", "i3"}
    assert "3 items judged (3 approve)" in again.stderr


def test_failed_items_wait_for_retry_failed(fake: FakeOpenAI, tmp_path: Path) -> None:
    one = {"id": "i1", "query": "q", "answer": "Answer."}
    items, out = write_items(tmp_path / "items.jsonl", one), tmp_path / "out.jsonl"
    fake.script("judge", Reply(status=400, error_message="bad request"))
    fake.default = grades("approve")
    args = ["--base-url", fake.base_url, "-p", "judge", "--items", str(items)]
    args += ["--out", str(out), "--rubric", "correct"]
    first = invoke("judge", *args)
    assert first.exit_code == 1 and lines_of(out)["i1"]["status"] == "failed"
    assert lines_of(out)["i1"]["errors"][0]["persona"] == "judge"
    asked = len(fake.requests)
    skipped = invoke("judge", *args)
    assert len(fake.requests) == asked and skipped.exit_code == 1
    retried = invoke("judge", *args, "--retry-failed")
    assert retried.exit_code == 0 and lines_of(out)["i1"]["verdict"] == "approve"


def test_bad_items_and_usage_errors_say_what_to_do(fake: FakeOpenAI, tmp_path: Path) -> None:
    items = write_items(
        tmp_path / "items.jsonl",
        {"id": "both", "query": "q", "answer": "x", "a": "y", "b": "z"},
        {"id": "norubric", "query": "q", "answer": "x"},
        {"id": "half", "query": "q", "a": "y"},
        {"id": "ok", "query": "q", "a": "y", "b": "z"},
    )
    fake.default = ballot("A")
    base = ["judge", "--base-url", fake.base_url, "-p", "judge", "--items", str(items)]
    result = invoke(*base, "--out", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 0, result.output
    assert f'{items}:1: give "answer"' in result.stderr
    assert f"{items}:2: no rubric" in result.stderr and f'{items}:3: no "answer"' in result.stderr
    assert set(lines_of(tmp_path / "out.jsonl")) == {"ok"}
    for args, said in [
        ([], "--items needs --out"),
        (["--out", "o.jsonl", "--pair", "a", "b"], "--items judges the cases of its file"),
        (["--out", "o.jsonl", "a question"], "drop the QUESTION argument"),
    ]:
        bad = invoke(*base, *args)
        assert bad.exit_code == 2 and said in bad.output, bad.output
        assert "Traceback" not in bad.output
    alone = invoke("judge", "--base-url", fake.base_url, "--out", "o.jsonl", "q")
    assert alone.exit_code == 2 and "--out goes with --items" in alone.output


def test_a_judge_run_is_in_the_history_and_shown_again(fake: FakeOpenAI, tmp_path: Path) -> None:
    answer = tmp_path / "answer.md"
    answer.write_text("Use Postgres.")
    fake.default = grades("approve")
    args = ["judge", "--base-url", fake.base_url, "-p", JURY, "--answer", str(answer)]
    args += ["--rubric", "correct", "Which database?"]
    result = invoke(*args)
    assert result.exit_code == 0
    (run,) = history_rows("SELECT id, command, query FROM runs")
    assert (run["command"], run["query"]) == ("judge", "Which database?")
    assert stat.S_IMODE(os.stat(history_db_path()).st_mode) == 0o600
    listed = invoke("history")
    assert "judge" in listed.stdout and "Which database?" in listed.stdout
    shown = invoke("show", run["id"])
    assert shown.exit_code == 0 and shown.stdout == result.stdout  # the report, as printed
    document = json.loads(invoke("show", run["id"], "--json").stdout)
    assert document["verdict"] == "approve" and document["command"] == "judge"
    calls = history_rows("SELECT persona FROM calls WHERE run_id = ?", run["id"])
    assert sorted(c["persona"] for c in calls) == ["critic", "judge"]
    invoke(*args, "--no-history")
    assert len(history_rows("SELECT id FROM runs")) == 1


def test_a_pair_is_one_run_with_both_orders_calls(fake: FakeOpenAI, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "b.txt").write_text("two")
    fake.default = ballot("A")
    result = invoke(
        "judge", "--base-url", fake.base_url, "-p", JURY,
        "--pair", str(tmp_path / "a.txt"), str(tmp_path / "b.txt"), "q",
    )  # fmt: skip
    assert result.exit_code == 0
    (run,) = history_rows("SELECT id FROM runs")
    calls = history_rows("SELECT call_id FROM calls WHERE run_id = ?", run["id"])
    ids = [c["call_id"] for c in calls]
    assert len(ids) == 4 and len(set(ids)) == 4


def write_preset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> str:
    presets = tmp_path / "presets"
    presets.mkdir(exist_ok=True)
    (presets / "review.yaml").write_text(f"name: review\npersonas: [judge]\n{body}")
    monkeypatch.setenv("COUNCIL_PRESET_PATH", str(presets))
    return str(presets / "review.yaml")


def test_a_presets_jury_judges_unless_the_command_line_names_one(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_preset(tmp_path, monkeypatch, "jury: [critic, skeptic]\n")
    answer = tmp_path / "answer.md"
    answer.write_text("Use Postgres.")
    fake.default = grades("approve")
    base = ["judge", "--base-url", fake.base_url, "--preset", "review", "--json"]
    base += ["--answer", str(answer), "--rubric", "correct", "q"]
    doc = json.loads(invoke(*base).stdout)
    assert [j["juror"] for j in doc["jurors"]] == ["critic", "skeptic"]
    assert sorted(r.persona for r in fake.requests) == ["critic", "skeptic"]
    doc = json.loads(invoke(*base, "-p", "judge").stdout)
    assert [j["juror"] for j in doc["jurors"]] == ["judge"]
    # The preset's other commands do not ask the jury.
    fake.reset()
    invoke("oracle", "--base-url", fake.base_url, "--preset", "review", "q")
    assert [r.persona for r in fake.requests] == ["judge"]
    shown = json.loads(invoke("presets", "show", "review", "--json").stdout)
    assert shown["values"]["jury"] == ["critic", "skeptic"]


def test_a_bad_jury_is_refused_with_its_file_and_line(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_preset(tmp_path, monkeypatch, "jury:\n  - critic\n  - critik\n")
    result = invoke("presets", "validate", path)
    assert result.exit_code != 0
    assert "review.yaml:5" in result.output and "unknown persona 'critik'" in result.output
    assert "did you mean 'critic'" in result.output
    (tmp_path / "a").write_text("one")
    pair = ["--pair", str(tmp_path / "a"), str(tmp_path / "a")]
    run = invoke("judge", "--base-url", fake.base_url, "--preset", "review", *pair)
    assert run.exit_code == 2 and "critik" in run.output and not fake.requests
    write_preset(tmp_path, monkeypatch, "jury: critic\n")
    result = invoke("presets", "validate", path)
    assert "jury: expected a list of persona names or definitions" in result.output


def test_the_api_judges_as_the_command_does(fake: FakeOpenAI) -> None:
    from council import Council

    fake.script("judge", ballot("A"), ballot("B"))
    fake.script("critic", ballot("A"), ballot("A"))
    council = Council(personas=["judge", "critic"], base_url=fake.base_url, model="m")
    outcome = council.judge("Which?", pair=("Reply one.", "Reply two."), gate=True)
    assert outcome.verdict is not None and outcome.verdict.position_flip_rate == 0.5
    assert (outcome.verdict.verdict, outcome.exit_code) == ("undecided", 3)
    assert outcome.document["jurors"][0]["orders"] == {"a_first": "A", "b_first": "A"}
    (run,) = history_rows("SELECT id, command FROM runs")
    assert (run["id"], run["command"]) == (outcome.run_id, "judge")
    fake.default = grades("reject", (1, 2))
    graded = council.judge("q", answer="Use a text file.", rubric=["fast", "safe"])
    assert graded.verdict is not None and graded.verdict.verdict == "reject"
    assert graded.verdict.criteria == ("fast", "safe")
    with pytest.raises(UsageError, match="grades one answer or a pair"):
        council.judge("q")


def test_an_unreachable_endpoint_fails_one_case_at_once_and_says_so(tmp_path: Path) -> None:
    import socket

    with socket.socket() as free:  # a port nothing listens on once closed
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    answer = tmp_path / "answer.md"
    answer.write_text("x")
    result = invoke(
        "judge", "--base-url", f"http://127.0.0.1:{port}/v1", "-p", JURY, "--retries", "0",
        "--answer", str(answer), "--rubric", "correct", "--gate", "q",
    )  # fmt: skip
    assert result.exit_code == 3  # --gate: no verdict (an outage is not waited through)
    assert f"cannot reach http://127.0.0.1:{port}/v1; is the server running?" in result.stderr
    assert "Traceback" not in result.output
