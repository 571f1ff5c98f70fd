"""The history under stress: a locked or corrupted file, live runs, bad values, big questions."""

from __future__ import annotations

import io
import json
import signal
import sqlite3
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import council_process, history_rows_once, invoke, resolved_endpoint
from tests.helpers import history_db_path as db_path
from tests.helpers import history_rows as rows

Event = dict[str, Any]


def history_json() -> list[dict[str, Any]]:
    result = invoke("history", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def verdict(converged: bool, synthesis: str = "Synthesis.") -> Reply:
    data = {"converged": converged, "confidence": 0.9, "synthesis": synthesis, "dissent": []}
    return Reply(text=json.dumps(data))


class EventReader:
    """Reads a `--jsonl` council process's events on a thread; tests wait on what it has seen."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.events: list[Event] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    def wait_for(self, seen: Callable[[Event], bool], timeout: float = 20) -> Event:
        with self._changed:
            if not self._changed.wait_for(lambda: any(seen(e) for e in self.events), timeout):
                kinds = [e.get("type") for e in self.events]
                raise AssertionError(f"no such event within {timeout}s; saw {kinds}")
            return next(e for e in self.events if seen(e))

    def finish(self, timeout: float = 20) -> str:
        """Wait for the process to end; its stderr."""
        try:
            self.process.wait(timeout)
            self._thread.join(timeout)
            assert self.process.stderr is not None
            return self.process.stderr.read()
        finally:
            self.process.kill()


def of_type(kind: str, **fields: Any) -> Callable[[Event], bool]:
    return lambda e: e.get("type") == kind and all(e.get(k) == v for k, v in fields.items())


# -- (a) a locked database delays nothing on screen ------------------------------------------


def test_a_locked_history_delays_no_stream_and_is_written_once_free(fake: FakeOpenAI) -> None:
    assert invoke("history").exit_code == 0  # the file exists, with its schema
    holder = sqlite3.connect(db_path(), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another council process, holding the write lock
    try:
        process = council_process(
            "oracle", "--base-url", fake.base_url, "-p", "judge,critic", "--jsonl", "Locked?"
        )
        reader = EventReader(process)
        # The whole run happens while the lock is held: streams, answers, the end.
        reader.wait_for(of_type("run_finished", exit_code=0))
        for persona in ("judge", "critic"):
            reader.wait_for(of_type("text_delta", persona=persona))
            reader.wait_for(of_type("call_finished", persona=persona))
        # ...and council is still there, waiting to write its history.
        assert process.poll() is None
        assert rows("SELECT * FROM runs") == []
    finally:
        holder.execute("COMMIT")
        holder.close()
    err = reader.finish()
    assert process.returncode == 0, err
    assert "warning" not in err
    (run,) = rows("SELECT * FROM runs")
    assert (run["query"], run["status"]) == ("Locked?", "ok")
    assert len(rows("SELECT * FROM calls WHERE status = 'answered'")) == 2


# -- (b) errors of views and the recorder: one line, answers unaffected -----------------------


def test_a_failing_view_is_reported_in_one_line_and_changes_no_answer(
    fake: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    from council.app.run import run_oracle
    from council.config.personas import PersonaCatalog
    from council.engine.plan import build_oracle_plan
    from council.render import OutputMode
    from council.store.recorder import RecordOptions

    plan = build_oracle_plan(
        query="Q",
        personas=PersonaCatalog.discover().resolve(["judge", "critic"]),
        endpoint=resolved_endpoint(fake.base_url),
    )
    closed = io.StringIO()
    closed.close()  # the JSON-lines view fails on every event
    code = run_oracle(plan, OutputMode.JSONL, stdout=closed, record=RecordOptions())
    assert code == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("council: warning: showing or recording the run failed: ValueError")
    assert "the answers are unaffected" in lines[0]
    answered = rows("SELECT persona, text FROM calls WHERE status = 'answered' ORDER BY persona")
    assert [(r["persona"], r["text"].split(":")[0]) for r in answered] == [
        ("critic", "critic says"),
        ("judge", "judge says"),
    ]


# -- (c) a corrupted file: the same clean line from every command -----------------------------


def corrupt_the_runs_table() -> None:
    """Overwrite the `runs` table's root page with garbage, as a bad disk block would."""
    connection = sqlite3.connect(db_path())
    root = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = 'runs'").fetchone()
    size = connection.execute("PRAGMA page_size").fetchone()[0]
    connection.close()  # the last connection: the WAL is checkpointed into the file
    with db_path().open("r+b") as file:
        file.seek((root[0] - 1) * size)
        file.write(b"\xa5" * size)


@pytest.mark.parametrize(
    "args",
    [
        ("history",),
        ("history", "--json"),
        ("history", "export"),
        ("history", "rm", "0"),
        ("history", "prune", "--older-than", "1d"),
        ("show", "0"),
        ("stats",),
        ("deliberate", "--resume", "0"),
    ],
    ids=["history", "history-json", "export", "rm", "prune", "show", "stats", "resume"],
)
def test_a_corrupted_history_is_one_clean_line_from_every_command(
    fake: FakeOpenAI, args: tuple[str, ...]
) -> None:
    for question in ("one", "two"):
        assert invoke("oracle", "--base-url", fake.base_url, "-p", "judge", question).exit_code == 0
    corrupt_the_runs_table()
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        f"council: error: cannot use the history database {db_path()}: database disk image is "
        "malformed; move the file away to start a new history, or pass --no-history"
    )


def test_a_run_on_a_corrupted_history_answers_and_warns(fake: FakeOpenAI) -> None:
    assert invoke("oracle", "--base-url", fake.base_url, "-p", "judge", "one").exit_code == 0
    corrupt_the_runs_table()
    result = invoke("oracle", "--base-url", fake.base_url, "-p", "judge", "two")
    assert result.exit_code == 0
    assert "judge says:" in result.stdout
    assert "warning: history not recorded (database disk image is malformed)" in result.stderr


# -- (d) a run still going cannot be resumed ---------------------------------------------------


def test_a_live_deliberation_cannot_be_resumed_until_it_has_ended(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(text="judge answer 1"), round=1)
    fake.script("critic", Reply(hang=True), round=1)
    process = council_process(
        "deliberate", "--base-url", fake.base_url, "-p", "judge,critic", "--jsonl", "Live?"
    )
    reader = EventReader(process)
    run_id = reader.wait_for(of_type("run_started"))["run_id"]
    reader.wait_for(of_type("call_finished", persona="judge"))
    # Both go out at once; the critic's request may reach the server after the judge's answer.
    fake.wait_for(lambda f: len(f.requests) == 2)
    asked = len(fake.requests)
    refused = invoke("deliberate", "--resume", run_id, "--base-url", fake.base_url)
    assert refused.exit_code == 2, refused.output
    assert f"run {run_id} is still going in another council process" in refused.stderr
    assert len(fake.requests) == asked  # nothing asked twice
    process.send_signal(signal.SIGINT)
    reader.finish()
    assert process.returncode == 130
    # Ended, it resumes: only the critic and the arbiter are asked.
    fake.reset()
    fake.script("critic", Reply(text="critic answer 1"), round=1)
    fake.script("arbiter", verdict(True, "Agreed after all."), round=1)
    resumed = invoke("deliberate", "--resume", run_id, "--base-url", fake.base_url, "--json")
    assert resumed.exit_code == 0, resumed.output
    assert sorted(r.persona for r in fake.requests) == ["arbiter", "critic"]


def test_a_run_left_running_by_a_dead_process_can_be_resumed(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(text="judge answer 1"), round=1)
    fake.script("critic", Reply(hang=True), round=1)
    process = council_process(
        "deliberate", "--base-url", fake.base_url, "-p", "judge,critic", "--jsonl", "Dead?"
    )
    reader = EventReader(process)
    run_id = reader.wait_for(of_type("run_started"))["run_id"]
    reader.wait_for(of_type("call_finished", persona="judge"))
    # The judge's answer in the history (written on council's own thread) before the kill.
    history_rows_once(
        "SELECT persona FROM calls WHERE status = 'answered'",
        lambda found: [r["persona"] for r in found] == ["judge"],
    )
    process.kill()  # kill -9: no handler runs, the row says 'running' for ever
    reader.finish()
    assert [r["status"] for r in rows("SELECT status FROM runs")] == ["running"]
    fake.reset()
    fake.script("critic", Reply(text="critic answer 1"), round=1)
    fake.script("arbiter", verdict(True), round=1)
    resumed = invoke("deliberate", "--resume", run_id, "--base-url", fake.base_url, "--json")
    assert resumed.exit_code == 0, resumed.output


# -- (e) the question is stored once, and read back exactly -----------------------------------


def occurrences(marker: str) -> int:
    """How many times `marker` is stored, across every text column of the history."""
    total = 0
    for table, columns in (
        ("runs", ("query", "plan", "document", "markdown", "answer")),
        ("calls", ("text",)),
    ):
        for row in rows(f"SELECT {', '.join(columns)} FROM {table}"):
            total += sum((value or "").count(marker) for value in row)
    return total


@pytest.mark.parametrize("command", ["oracle", "deliberate"])
def test_the_question_is_stored_once_and_read_back_exactly(
    fake: FakeOpenAI, tmp_path: Path, command: str
) -> None:
    marker = "zebra-7f3a"
    question = f"{marker} " + "Is this design sound? " * 2000  # 44 kB
    context = tmp_path / "design.md"
    context.write_text("The design, in detail.\n" * 500)
    args = [command, "--base-url", fake.base_url, "-p", "judge,critic", "-c", str(context)]
    if command == "oracle":
        args.append("--synthesize")
    else:
        fake.script("arbiter", verdict(True))
    printed = invoke(*args, "--json", question)
    assert printed.exit_code == 0, printed.output
    assert occurrences(marker) == 1
    assert occurrences("The design, in detail.") == 500  # the context, once
    run_id = json.loads(printed.stdout)["run_id"]
    shown = invoke("show", run_id, "--json")
    assert json.loads(shown.stdout) == json.loads(printed.stdout)
    planned = json.loads(invoke(*args, "--dry-run", "--json", question).stdout)
    del planned["sources"]
    del planned["prices"], planned["worst_case_usd"]  # what the dry run adds, as sources
    (exported,) = (json.loads(line) for line in invoke("history", "export").stdout.splitlines())
    assert exported["plan"] == planned
    assert exported["query"] == question.strip()


def test_a_stored_plan_is_rebuilt_to_the_very_bytes() -> None:
    from council.store.question import full_plan, stored_plan

    plan = {
        "command": "oracle",
        "query": "Q?",
        "calls": [
            {
                "messages": [
                    {"role": "system", "content": "S"},
                    {"role": "user", "content": "Q?\n\nctx"},
                ]
            },
            {"messages": [{"role": "user", "content": "before Q?\n\nctx after Q?\n\nctx"}]},
        ],
        "limits": {"timeout": 1},
    }
    stored = stored_plan(plan, "Q?")
    assert "Q?" not in json.dumps(stored).replace('"Q?\\n\\nctx"', "")
    assert json.dumps(full_plan(stored, "Q?")) == json.dumps(plan)
    assert full_plan(plan, "Q?") is plan  # recorded before: read as it is
