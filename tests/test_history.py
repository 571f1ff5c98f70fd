"""The history: what is recorded, `history`/`show`/`stats`, migrations, concurrency, resume."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from council.engine.events import CallStarted, RunStarted
from council.store.db import HistoryDB
from council.store.migrations import MIGRATIONS
from council.store.recorder import Recorder
from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import council_process, interrupt_after_event, invoke
from tests.helpers import history_db_path as db_path
from tests.helpers import history_rows as rows

TEST_KEY = "sk-test-history-0123456789abcdefghij"
PERSONAS = ("judge", "critic", "skeptic")


def only_run() -> sqlite3.Row:
    (run,) = rows("SELECT * FROM runs")
    return run


def verdict(converged: bool, synthesis: str = "Synthesis.", **extra: Any) -> Reply:
    data = {"converged": converged, "confidence": 0.9, "synthesis": synthesis, "dissent": []}
    return Reply(text=json.dumps(data), **extra)


def finished(persona: str, round_number: int = 1) -> Any:
    """An event filter: this persona's call of this round has finished."""
    return lambda e: (
        e.get("type") == "call_finished"
        and e.get("persona") == persona
        and e.get("round") == round_number
    )


def history_json(*args: str) -> list[dict[str, Any]]:
    result = invoke("history", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- what is recorded ----------------------------------------------------------------------


def test_a_successful_run_is_recorded_without_the_key(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    result = invoke("oracle", "--base-url", fake.base_url, "-p", "judge,critic", "Monorepo?")
    assert result.exit_code == 0, result.output
    assert fake.requests[0].headers["authorization"] == f"Bearer {TEST_KEY}"  # it was sent...
    run = only_run()
    assert (run["command"], run["status"], run["exit_code"]) == ("oracle", "ok", 0)
    assert run["query"] == "Monorepo?" and run["wall"] > 0
    calls = rows("SELECT * FROM calls ORDER BY persona")
    assert [(c["persona"], c["status"], c["round"]) for c in calls] == [
        ("critic", "answered", 1),
        ("judge", "answered", 1),
    ]
    assert all(c["latency"] > 0 and c["ttft"] is not None and c["tokens_out"] for c in calls)
    assert calls[0]["text"].startswith("critic says:")
    assert calls[0]["endpoint_host"] == fake.base_url.split("/")[2]
    # ...but is nowhere in the database, nor is any auth header.
    data = b"".join(p.read_bytes() for p in db_path().parent.glob("history.db*"))
    assert TEST_KEY.encode() not in data and b"Bearer" not in data
    assert stat.S_IMODE(db_path().stat().st_mode) == 0o600


def test_a_partial_failure_is_recorded_with_its_error(fake: FakeOpenAI) -> None:
    fake.script("critic", Reply(status=400, error_message="too long"))
    result = invoke("oracle", "--base-url", fake.base_url, "-p", "judge,critic", "q")
    assert result.exit_code == 3
    assert only_run()["status"] == "partial"
    (failed,) = rows("SELECT * FROM calls WHERE status = 'failed'")
    assert (failed["persona"], failed["error_kind"]) == ("critic", "bad_request")


def test_a_discarded_speculative_round_is_recorded_as_not_kept(fake: FakeOpenAI) -> None:
    fake.script("arbiter", verdict(True, gate="v1"), round=1)
    for name in PERSONAS:
        fake.script(name, Reply(tokens=30, hang_after=2), round=2)
    done = threading.Event()
    outcome: list[Any] = []

    def run() -> None:
        outcome.append(invoke("deliberate", "--base-url", fake.base_url, "--speculative", "q"))
        done.set()

    threading.Thread(target=run, daemon=True).start()
    fake.wait_for(lambda f: sum(r.tokens_sent for r in f.requests if r.round == "2") == 6)
    fake.release("v1")
    assert done.wait(10) and outcome[0].exit_code == 0
    run_row = only_run()
    assert (run_row["rounds"], run_row["converged"], run_row["wasted_tokens"]) == (1, 1, 6)
    second = rows("SELECT * FROM calls WHERE round = 2")
    assert len(second) == 3
    assert {(c["status"], c["kept"], c["speculative"]) for c in second} == {("cancelled", 0, 1)}


def test_an_interrupted_run_keeps_what_finished(fake: FakeOpenAI) -> None:
    # The judge answers after the critic was sent.
    fake.script("judge", Reply(ttft=0.3))
    fake.script("critic", Reply(hang=True))
    process = council_process(
        "oracle", "--base-url", fake.base_url, "-p", "judge,critic", "--jsonl", "q"
    )
    interrupt_after_event(process, finished("judge"))
    assert process.returncode == 130
    run = only_run()
    assert (run["status"], run["exit_code"]) == ("interrupted", 130)
    statuses = {c["persona"]: c["status"] for c in rows("SELECT * FROM calls")}
    assert statuses == {"judge": "answered", "critic": "cancelled"}


def test_a_run_that_never_reports_its_end_is_marked_crashed(tmp_path: Path) -> None:
    history = HistoryDB.open(tmp_path / "h.db")
    recorder = Recorder(history, command="oracle", plan={"calls": []}, store_text=True)
    recorder.handle(
        RunStarted(
            run_id="r1", command="oracle", query="q", personas=("a",), model="m", endpoint_host="h"
        )
    )
    recorder.handle(CallStarted(run_id="r1", call_id="c", persona="a", model="m"))
    recorder.close()
    assert history.find_run("r1")["status"] == "crashed"
    history.close()


def test_no_store_text_keeps_metrics_but_no_words(fake: FakeOpenAI) -> None:
    question = "Should we migrate the zebra-unique-question?"
    fake.script("judge", Reply(text="A zebra-unique-answer."))
    result = invoke(
        "oracle", "--base-url", fake.base_url, "-p", "judge", "--no-store-text", question
    )
    assert result.exit_code == 0
    data = db_path().read_bytes() + b"".join(
        p.read_bytes() for p in db_path().parent.glob("history.db-*")
    )
    assert b"zebra-unique" not in data
    (call,) = rows("SELECT * FROM calls")
    assert call["latency"] > 0 and call["text"] is None
    shown = invoke("show", only_run()["id"])
    assert "texts were not stored" in shown.stdout and "judge" in shown.stdout


@pytest.mark.parametrize("how", ["flag", "env", "config"])
def test_history_can_be_switched_off(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    args = ["oracle", "--base-url", fake.base_url, "-p", "judge", "q"]
    if how == "flag":
        args.insert(1, "--no-history")
    elif how == "env":
        monkeypatch.setenv("COUNCIL_HISTORY", "off")
    else:
        (Path(os.environ["COUNCIL_HOME"]) / "config.yaml").write_text("history: false\n")
    assert invoke(*args).exit_code == 0
    assert not db_path().exists()


def test_an_unusable_history_warns_and_the_run_goes_on(fake: FakeOpenAI) -> None:
    db_path().mkdir(parents=True)  # a directory where the file should be
    result = invoke("oracle", "--base-url", fake.base_url, "-p", "judge", "q")
    assert result.exit_code == 0
    assert "judge says:" in result.stdout
    assert "warning: cannot use the history database" in result.stderr


# -- reading it back -----------------------------------------------------------------------


def test_show_prints_exactly_what_the_run_printed(fake: FakeOpenAI) -> None:
    piped = invoke("oracle", "--base-url", fake.base_url, "-p", "judge,critic", "--synthesize", "q")
    as_json = invoke("deliberate", "--base-url", fake.base_url, "--json", "q")
    assert piped.exit_code == 0 and as_json.exit_code == 0
    document = json.loads(as_json.stdout)
    oracle_id = next(r["id"] for r in history_json() if r["command"] == "oracle")
    assert invoke("show", oracle_id).stdout == piped.stdout
    assert json.loads(invoke("show", document["run_id"][:10], "--json").stdout) == document


def test_history_lists_filters_removes_prunes_and_exports(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".git").mkdir()
    presets = tmp_path / ".council" / "presets"
    presets.mkdir(parents=True)
    (presets / "team.yaml").write_text(
        f"name: team\npersonas: [judge]\nbase_url: {fake.base_url}\n"
    )
    monkeypatch.chdir(tmp_path)
    for question in ("first", "second", "third"):
        assert invoke("oracle", "--preset", "team", question).exit_code == 0
    assert invoke("oracle", "--base-url", fake.base_url, "-p", "critic", "fourth").exit_code == 0
    listed = history_json()
    assert [r["query"] for r in listed] == ["fourth", "third", "second", "first"]
    assert [r["query"] for r in history_json("--preset", "team", "-n", "2")] == ["third", "second"]
    text = invoke("history").stdout
    assert "[team]" in text and "fourth" in text
    # Age the first run by a fortnight.
    first = listed[-1]["id"]
    connection = sqlite3.connect(db_path())
    connection.execute(
        "UPDATE runs SET started_at = started_at - 14 * 86400 WHERE id = ?", (first,)
    )
    connection.commit()
    connection.close()
    assert [r["query"] for r in history_json("--since", "7d")] == ["fourth", "third", "second"]
    exported = [
        json.loads(line) for line in invoke("history", "export", "--jsonl").stdout.splitlines()
    ]
    assert [e["query"] for e in exported] == ["first", "second", "third", "fourth"]
    assert exported[0]["calls"][0]["persona"] == "judge"
    pruned = invoke("history", "prune", "--older-than", "7d")
    assert pruned.exit_code == 0 and "deleted 1 run " in pruned.stdout
    assert invoke("history", "rm", listed[0]["id"]).exit_code == 0
    assert [r["query"] for r in history_json()] == ["third", "second"]
    assert rows("SELECT COUNT(*) AS n FROM calls")[0]["n"] == 2  # calls went with their runs


def test_history_json_and_export_give_times_in_iso_8601_utc(fake: FakeOpenAI) -> None:
    assert invoke("oracle", "--base-url", fake.base_url, "-p", "judge", "when?").exit_code == 0
    (recorded,) = rows("SELECT started_at FROM runs")
    # A known moment, so the test checks the conversion and not only the shape.
    connection = sqlite3.connect(db_path())
    connection.execute("UPDATE runs SET started_at = 1795952551.75")
    connection.commit()
    connection.close()
    assert recorded["started_at"] > 0
    (listed,) = history_json()
    assert listed["started_at"] == "2026-11-29T11:42:31+00:00"
    (exported,) = [
        json.loads(line) for line in invoke("history", "export", "--jsonl").stdout.splitlines()
    ]
    assert exported["started_at"] == "2026-11-29T11:42:31+00:00"
    assert isinstance(exported["calls"][0]["started"], float)  # seconds from the run's start


def test_bad_history_arguments_are_one_line_errors() -> None:
    for args, message in (
        (("history", "--since", "soon"), "--since 'soon' is not an age"),
        (("show", "nope"), "no run 'nope'"),
        (("stats", "--by", "colour"), "--by 'colour' is not one of"),
    ):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_stats_finds_the_slow_persona_and_the_rate_limited_endpoint(fake: FakeOpenAI) -> None:
    for _ in range(3):
        fake.script("critic", Reply(ttft=0.25))
        fake.script("judge", Reply(status=429, retry_after=0), Reply())
        result = invoke("oracle", "--base-url", fake.base_url, "-p", "judge,critic,skeptic", "q")
        assert result.exit_code == 0, result.output
    report = json.loads(invoke("stats", "--json").stdout)
    groups = {g["name"]: g for g in report["groups"]}
    assert report["groups"][0]["name"] == "critic"  # slowest first
    # A 429 is a re-send, not a retry (issue 14), and still counted as rate limited.
    assert groups["judge"]["retries"] == 0 and groups["judge"]["rate_limited"] == 3
    assert groups["critic"]["calls"] == 3 and groups["critic"]["error_rate"] == 0
    assert groups["critic"]["p95_latency"] >= 0.25  # the server's own delay
    suggestions = " ".join(report["suggestions"])
    assert "persona critic is slow" in suggestions
    assert "answered 429 (rate limited)" in suggestions and "lower --max-concurrency" in suggestions
    text = invoke("stats").stdout
    assert "suggestion: persona critic is slow" in text
    by_model = json.loads(invoke("stats", "--by", "model", "--json").stdout)
    assert [g["name"] for g in by_model["groups"]] == ["gpt-4o-mini"]


# -- the file itself -----------------------------------------------------------------------


def test_a_newer_council_opens_a_file_of_the_first_schema(fake: FakeOpenAI) -> None:
    old = HistoryDB.open(db_path(), migrations=MIGRATIONS[:1])
    old.write(
        "INSERT INTO runs (id, started_at, command, query, plan, status, exit_code, wall) "
        "VALUES ('oldrun', ?, 'oracle', 'from long ago', '{}', 'ok', 0, 1.5)",
        (time.time(),),
    )
    assert old.applied_migrations() == ["m001_runs_and_calls"]
    old.close()
    assert invoke("oracle", "--base-url", fake.base_url, "-p", "judge", "new").exit_code == 0
    assert [r["query"] for r in history_json()] == ["new", "from long ago"]
    current = HistoryDB.open(db_path())
    assert current.applied_migrations() == [name for name, _ in MIGRATIONS]
    current.close()
    assert "oldrun" in invoke("show", "oldrun").stdout


def test_two_writers_at_once_both_succeed(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    HistoryDB.open(path).close()
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def writer(tag: str) -> None:
        try:
            history = HistoryDB.open(path)
            start.wait(5)
            for i in range(200):
                history.write(
                    "INSERT INTO runs (id, started_at, command, plan, status) "
                    "VALUES (?, ?, 'oracle', '{}', 'ok')",
                    (f"{tag}{i}", time.time()),
                )
            history.close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(tag,)) for tag in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    check = HistoryDB.open(path)
    assert len(check.runs()) == 400
    check.close()


def test_two_council_processes_record_at_once(fake: FakeOpenAI) -> None:
    # Every answer is held until all four calls are in: the two runs overlap however
    # slowly each process starts (on a busy machine one may start a second later).
    fake.default = Reply(ttft=0.2, gate="all-in")
    processes = [
        council_process("oracle", "--base-url", fake.base_url, "-p", "judge,critic", f"q{i}")
        for i in range(2)
    ]
    try:
        fake.wait_for(lambda f: len(f.requests) == 4, timeout=30)
    finally:
        fake.release("all-in")
    errors = []
    for process in processes:
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr
        errors.append(stderr)
    assert sorted(r["query"] for r in history_json()) == ["q0", "q1"], errors
    assert fake.peak_concurrency >= 3  # they really overlapped


# -- resume --------------------------------------------------------------------------------


def test_resume_asks_only_what_the_interrupted_council_had_not_answered(
    fake: FakeOpenAI,
) -> None:
    for name in PERSONAS:
        fake.script(name, Reply(text=f"{name} answer 1", reasoning=f"{name} thought"), round=1)
    fake.script("arbiter", verdict(False, "Round one."), round=1)
    fake.script(
        "judge", Reply(text="Position: kept\njudge answer 2", finish_reason="length"), round=2
    )
    fake.script("critic", Reply(hang=True), round=2)
    fake.script("skeptic", Reply(hang=True), round=2)
    process = council_process(
        "deliberate", "--base-url", fake.base_url, "--rounds", "3", "--jsonl", "Safe?"
    )
    interrupt_after_event(process, finished("judge", round_number=2))
    assert process.returncode == 130
    (interrupted,) = history_json()
    assert interrupted["status"] == "interrupted"

    fake.reset()
    fake.script("critic", Reply(text="Position: changed\ncritic answer 2"), round=2)
    fake.script("skeptic", Reply(text="Position: kept\nskeptic answer 2"), round=2)
    fake.script("arbiter", verdict(True, "Resumed and agreed."), round=2)
    result = invoke(
        "deliberate", "--resume", interrupted["id"], "--base-url", fake.base_url, "--json"
    )
    assert result.exit_code == 0, result.output
    asked = sorted((r.persona, r.round) for r in fake.requests)
    assert asked == [("arbiter", "2"), ("critic", "2"), ("skeptic", "2")]
    critic = next(r for r in fake.requests if r.persona == "critic")
    prompt = critic.body["messages"][-1]["content"] if critic.body else ""
    assert "judge answer 1" in prompt and "Safe?" in prompt  # the recorded round 1
    doc = json.loads(result.stdout)
    assert doc["answer"]["text"] == "Resumed and agreed."
    assert [r["round"] for r in doc["rounds"]] == [1, 2]
    assert {a["persona"]: a["text"] for a in doc["rounds"][1]["answers"]}["judge"].endswith(
        "judge answer 2"
    )
    # Reused answers come back whole: their finish reason and reasoning too.
    judge_2 = next(a for a in doc["rounds"][1]["answers"] if a["persona"] == "judge")
    assert judge_2["finish_reason"] == "length"
    judge_1 = next(a for a in doc["rounds"][0]["answers"] if a["persona"] == "judge")
    assert (judge_1["finish_reason"], judge_1["reasoning"]) == ("stop", "judge thought")
    reused = [c for c in doc["timeline"] if c["status"] == "reused"]
    assert len(reused) == 5  # three round-1 answers, verdict 1, and the judge's round 2
    newest = history_json()[0]
    assert newest["status"] == "ok"
    assert (
        rows("SELECT resumed_from FROM runs WHERE id = ?", newest["id"])[0][0] == interrupted["id"]
    )


def test_resume_refuses_what_it_cannot_continue(fake: FakeOpenAI) -> None:
    assert invoke("oracle", "--base-url", fake.base_url, "-p", "judge", "q").exit_code == 0
    oracle_id = history_json()[0]["id"]
    result = invoke("deliberate", "--resume", oracle_id)
    assert result.exit_code == 2 and "only deliberations resume" in result.stderr
    fake.script("arbiter", verdict(True))
    assert invoke("deliberate", "--base-url", fake.base_url, "q").exit_code == 0
    finished = history_json()[0]["id"]
    result = invoke("deliberate", "--resume", finished)
    assert result.exit_code == 2 and "there is nothing to resume" in result.stderr
    result = invoke("deliberate", "--resume", finished, "-p", "judge")
    assert result.exit_code == 2 and "it takes no --personas" in result.stderr
