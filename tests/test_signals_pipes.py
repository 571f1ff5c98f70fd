"""council as a real process, stopped by SIGTERM or SIGHUP, or read by a pipe that closes early."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import council_process, invoke

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")


def history_rows(sql: str) -> list[sqlite3.Row]:
    connection = sqlite3.connect(Path(os.environ["COUNCIL_HOME"]) / "history.db")
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def stop_when_second_call_hangs(
    fake: FakeOpenAI, process: subprocess.Popen[str], signum: int
) -> tuple[str, str]:
    """Send `signum` once the second call is in: by then the first has finished in council.

    With --max-concurrency 1 the second request is sent only after the first call
    ended and its answer was recorded by council, so no timing is involved.
    """
    try:
        fake.wait_for(lambda f: len(f.requests) == 2, timeout=20)
        process.send_signal(signum)
        return process.communicate(timeout=20)
    finally:
        process.kill()


# -- SIGTERM and SIGHUP end a run as Ctrl-C does ----------------------------------------------


@pytest.mark.parametrize(
    ("signum", "code", "name"),
    [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGHUP, 129, "SIGHUP")],
    ids=["sigterm", "sighup"],
)
def test_a_stop_signal_prints_and_records_what_finished(
    fake: FakeOpenAI, signum: int, code: int, name: str
) -> None:
    fake.script(None, Reply(text="The first answer is in."), Reply(hang=True))
    args = ["oracle", "--base-url", fake.base_url, "-p", "judge,critic", "--max-concurrency", "1"]
    process = council_process(*args, "Ship it?")
    out, err = stop_when_second_call_hangs(fake, process, signum)
    assert process.returncode == code, err
    assert "The first answer is in." in out
    assert "cancelled" in out
    assert f"council: stopped by {name}; 1 of 2 answers had finished" in err
    assert "Traceback" not in err
    # The call in flight was cancelled: its connection closed.
    fake.wait_for(lambda f: f.requests[1].disconnected)
    (run,) = history_rows("SELECT * FROM runs")
    assert (run["status"], run["exit_code"]) == ("interrupted", code)
    assert run["document"] is not None  # what was printed, for `council show`
    calls = sorted(c["status"] for c in history_rows("SELECT * FROM calls"))
    assert calls == ["answered", "cancelled"]


def test_sigterm_stops_a_deliberation_and_closes_its_history_row(fake: FakeOpenAI) -> None:
    fake.script(None, Reply(text="Round one, first."), Reply(hang=True))
    process = council_process(
        "deliberate", "--base-url", fake.base_url, "-p", "judge,critic", "--max-concurrency", "1",
        "--json", "Ship it?",
    )  # fmt: skip
    out, err = stop_when_second_call_hangs(fake, process, signal.SIGTERM)
    assert process.returncode == 143, err
    assert '"exit_code": 143' in out and '"status": "interrupted"' in out
    assert "stopped by SIGTERM" in err
    (run,) = history_rows("SELECT * FROM runs")
    assert (run["status"], run["exit_code"]) == ("interrupted", 143)
    # The answer that finished is kept, for `deliberate --resume`.
    answered = history_rows("SELECT * FROM calls WHERE status = 'answered'")
    assert [c["text"] for c in answered] == ["Round one, first."]


def test_jsonl_ends_with_the_signal_exit_code(fake: FakeOpenAI) -> None:
    fake.script(None, Reply(text="Done."), Reply(hang=True))
    process = council_process(
        "oracle", "--base-url", fake.base_url, "-p", "judge,critic", "--max-concurrency", "1",
        "--jsonl", "Q",
    )  # fmt: skip
    out, _ = stop_when_second_call_hangs(fake, process, signal.SIGTERM)
    assert process.returncode == 143
    last = out.strip().splitlines()[-1]
    assert '"type": "run_finished"' in last and '"exit_code": 143' in last


# -- a closed stdout ends quietly -------------------------------------------------------------


def closed_stdout(*args: str) -> tuple[int, str]:
    """Run council with a stdout pipe nobody reads: closed before council writes a byte.

    What `council ... | head -1` does once head has its line, without the race.
    """
    process = council_process(*args)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    try:
        err = process.stderr.read()
        return process.wait(timeout=30), err
    finally:
        process.kill()


def recorded_runs(fake: FakeOpenAI, count: int) -> None:
    for i in range(count):
        result = invoke("oracle", "--base-url", fake.base_url, "-p", "judge", f"question {i}")
        assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "args",
    [("history",), ("history", "--json"), ("history", "export"), ("personas", "list")],
    ids=["history", "history-json", "history-export", "personas-list"],
)
def test_listings_end_quietly_when_stdout_closes(fake: FakeOpenAI, args: tuple[str, ...]) -> None:
    recorded_runs(fake, 3)
    code, err = closed_stdout(*args)
    assert (code, err) == (0, "")


@pytest.mark.parametrize(
    "output", [(), ("--json",), ("--jsonl",)], ids=["markdown", "json", "jsonl"]
)
def test_a_run_whose_reader_left_ends_quietly_and_is_recorded(
    fake: FakeOpenAI, output: tuple[Any, ...]
) -> None:
    code, err = closed_stdout(
        "oracle", "--base-url", fake.base_url, "-p", "judge,critic", *output, "Ship?"
    )
    assert (code, err) == (0, "")
    (run,) = history_rows("SELECT * FROM runs")
    assert (run["status"], run["exit_code"]) == ("ok", 0)
    assert len(history_rows("SELECT * FROM calls WHERE status = 'answered'")) == 2
