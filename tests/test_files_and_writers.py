"""Issue 22, files two processes write: private files, one writer per --out, foreign files
left alone, input that is not text, one resume at a time.

Where a point is about two processes, both are real processes, made to overlap by a
gate on the fake server (or a line a process prints once it holds what it holds),
never by timing.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import (
    council_process,
    history_db_path,
    history_rows,
    interrupt_after_event,
    invoke,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes, locks and FIFOs")


def write_items(path: Path, count: int) -> Path:
    path.write_text(
        "".join(json.dumps({"id": f"t{n}", "query": f"question t{n}"}) + "\n" for n in range(count))
    )
    return path


def batch(fake: FakeOpenAI, items: Path, out: Path | str, *args: str) -> Any:
    return invoke("batch", str(items), "--base-url", fake.base_url, "--out", str(out), *args)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    return process.returncode, err


# -- 2. files with questions and answers are private ---------------------------------------------


def test_batch_and_eval_out_files_are_created_0600(fake: FakeOpenAI, tmp_path: Path) -> None:
    os.umask(0o022)  # the usual one: a file made without a mode would be 0644
    items = write_items(tmp_path / "items.jsonl", 2)
    assert batch(fake, items, tmp_path / "out.jsonl", "-p", "judge").exit_code == 0
    assert mode_of(tmp_path / "out.jsonl") == 0o600
    data = tmp_path / "eval.jsonl"
    data.write_text(json.dumps({"id": "q1", "query": "2+2?", "expected": "4"}) + "\n")
    fake.default = Reply(text="4")
    evaluated = invoke(
        "eval", str(data), "--base-url", fake.base_url, "-S", "judge", "--out", str(tmp_path / "e")
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert mode_of(tmp_path / "e") == 0o600


def test_a_compacted_out_file_stays_0600(fake: FakeOpenAI, tmp_path: Path) -> None:
    items = write_items(tmp_path / "items.jsonl", 3)
    out = tmp_path / "out.jsonl"
    fake.script("judge", Reply(status=400, error_message="no"))
    assert batch(fake, items, out, "-p", "judge").exit_code == 3
    fake.reset()
    assert batch(fake, items, out, "-p", "judge", "--retry-failed").exit_code == 0
    assert [json.loads(line)["status"] for line in out.read_text().splitlines()] == ["ok"] * 3
    assert mode_of(out) == 0o600


def test_state_directories_council_creates_are_0700(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.umask(0o022)
    home = tmp_path / "new" / "state"
    monkeypatch.setenv("COUNCIL_HOME", str(home))
    process = council_process("oracle", "--base-url", fake.base_url, "-p", "judge", "Private?")
    assert finish(process)[0] == 0
    assert mode_of(tmp_path / "new") == mode_of(home) == 0o700
    assert mode_of(history_db_path()) == 0o600
    assert mode_of(home / "history.running") == 0o700


# -- 6. one --out, one writer ----------------------------------------------------------------------


def test_a_second_batch_on_the_same_out_is_refused_naming_the_first(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    items, out = write_items(tmp_path / "items.jsonl", 4), tmp_path / "out.jsonl"
    fake.default = Reply(gate="hold")
    args = ["batch", str(items), "--base-url", fake.base_url, "--out", str(out), "-p", "judge"]
    first = council_process(*args)
    try:
        fake.wait_for(lambda f: len(f.requests) >= 1, timeout=30)  # it holds --out by now
        second = council_process(*args)
        code, err = finish(second)
        assert code == 2, err
        assert f"is being written by council process {first.pid}" in err
        assert len(err.strip().splitlines()) <= 2  # the error and its hint
        fake.release("hold")
        assert finish(first)[0] == 0
    finally:
        first.kill()
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == [f"t{n}" for n in range(4)]  # one line each, asked once
    assert len(fake.requests) == 4


def test_a_second_eval_on_the_same_out_is_refused(fake: FakeOpenAI, tmp_path: Path) -> None:
    data = tmp_path / "eval.jsonl"
    data.write_text(json.dumps({"id": "q1", "query": "2+2?", "expected": "4"}) + "\n")
    out = tmp_path / "results.jsonl"
    fake.default = Reply(text="4", gate="hold")
    args = ["eval", str(data), "--base-url", fake.base_url, "-S", "judge", "--out", str(out)]
    first = council_process(*args)
    try:
        fake.wait_for(lambda f: len(f.requests) >= 1, timeout=30)
        code, err = finish(council_process(*args))
        assert code == 2, err
        assert f"council process {first.pid}" in err
        fake.release("hold")
        assert finish(first)[0] == 0
    finally:
        first.kill()
    assert len(fake.requests) == 1


def test_out_dash_is_not_locked(fake: FakeOpenAI, tmp_path: Path) -> None:
    items = write_items(tmp_path / "items.jsonl", 2)
    fake.default = Reply(gate="hold")
    first = council_process(
        "batch", str(items), "--base-url", fake.base_url, "--out", "-", "-p", "judge"
    )
    try:
        fake.wait_for(lambda f: len(f.requests) >= 1, timeout=30)
        fake.release("hold")
        second = batch(fake, items, "-", "-p", "judge")
        assert second.exit_code == 0, second.output
        assert finish(first)[0] == 0
    finally:
        first.kill()


def test_a_lock_left_by_a_killed_batch_does_not_stop_the_next(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    items, out = write_items(tmp_path / "items.jsonl", 3), tmp_path / "out.jsonl"
    fake.script("judge", Reply(gate="hold"))
    first = council_process(
        "batch", str(items), "--base-url", fake.base_url, "--out", str(out), "-p", "judge"
    )
    fake.wait_for(lambda f: len(f.requests) >= 1, timeout=30)
    first.send_signal(signal.SIGKILL)
    finish(first)
    fake.reset()
    again = batch(fake, items, out, "-p", "judge")
    assert again.exit_code == 0, again.output


# -- 7. --out never destroys what council did not write ------------------------------------------


def test_a_file_council_did_not_write_is_refused_and_left_whole(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    items = write_items(tmp_path / "items.jsonl", 2)
    notes = tmp_path / "notes.md"
    notes.write_bytes(b"a\nb")  # "b" looks like a torn line; it is the user's
    result = batch(fake, items, notes, "-p", "judge")
    assert result.exit_code == 2, result.output
    assert "is not a council output file (line 1" in result.stderr
    assert notes.read_bytes() == b"a\nb"
    assert fake.requests == []


def test_a_lone_unterminated_line_that_is_not_councils_is_refused(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    items, notes = write_items(tmp_path / "items.jsonl", 1), tmp_path / "notes.txt"
    notes.write_bytes(b"my only line")
    assert batch(fake, items, notes, "-p", "judge").exit_code == 2
    assert notes.read_bytes() == b"my only line"


def test_records_of_the_users_with_matching_ids_are_not_compacted_away(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    items = write_items(tmp_path / "items.jsonl", 2)
    data = tmp_path / "data.jsonl"
    data.write_text('{"id": "t0", "price": 3}\n{"id": "t1", "status": "ok"}\n')
    before = data.read_bytes()
    result = batch(fake, items, data, "-p", "judge", "--retry-failed")
    assert result.exit_code == 2, result.output
    assert data.read_bytes() == before and fake.requests == []


@pytest.mark.parametrize("retry", [[], ["--retry-failed"]], ids=["plain", "retry-failed"])
def test_out_that_is_the_input_file_is_refused(
    fake: FakeOpenAI, tmp_path: Path, retry: list[str]
) -> None:
    items = write_items(tmp_path / "items.jsonl", 2)
    before = items.read_bytes()
    via_link = tmp_path / "link.jsonl"
    via_link.symlink_to(items)
    for out in (items, via_link):
        result = batch(fake, items, out, "-p", "judge", *retry)
        assert result.exit_code == 2, result.output
        assert "is the input file" in result.stderr
    assert items.read_bytes() == before and fake.requests == []


def test_eval_out_that_is_its_data_file_is_refused(fake: FakeOpenAI, tmp_path: Path) -> None:
    data = tmp_path / "eval.jsonl"
    data.write_text(json.dumps({"id": "q1", "query": "2+2?", "expected": "4"}) + "\n")
    before = data.read_bytes()
    result = invoke("eval", str(data), "--base-url", fake.base_url, "--out", str(data))
    assert result.exit_code == 2, result.output
    assert data.read_bytes() == before and fake.requests == []


def test_a_torn_line_after_councils_lines_is_cut_and_the_batch_goes_on(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    items, out = write_items(tmp_path / "items.jsonl", 3), tmp_path / "out.jsonl"
    assert batch(fake, items, out, "-p", "judge", "--max-items", "2").exit_code == 0
    with out.open("a") as handle:
        handle.write('{"id":"t2","status":"ok","answ')  # a crash mid-write
    fake.reset()
    again = batch(fake, items, out, "-p", "judge")
    assert again.exit_code == 0, again.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == ["t0", "t1", "t2"]
    assert len(fake.requests) == 1


# -- 8. input that is not text is not sent --------------------------------------------------------


def test_a_binary_batch_input_is_refused_before_anything_is_sent(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    binary = tmp_path / "tickets.xlsx"
    binary.write_bytes(b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)) * 4 + b"\n" * 50)
    result = batch(fake, binary, tmp_path / "out.jsonl", "-p", "judge")
    assert result.exit_code == 2, result.output
    assert "looks binary; nothing was sent" in result.stderr
    assert fake.requests == []
    assert not (tmp_path / "out.jsonl").exists() or (tmp_path / "out.jsonl").stat().st_size == 0
    piped = subprocess.run(
        [sys.executable, "-m", "council.cli", "batch", "-", "--base-url", fake.base_url,
         "--out", str(tmp_path / "o2"), "-p", "judge"],
        input=b"\x7fELF\x02\x01\x01\x00\x00\nline\n", capture_output=True, timeout=60,
    )  # fmt: skip
    assert piped.returncode == 2, piped.stderr
    assert b"the batch input standard input looks binary" in piped.stderr
    assert fake.requests == []


def test_an_item_over_the_question_limit_fails_with_its_line_number(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    items = tmp_path / "items.jsonl"
    big = "x" * 200_001
    items.write_text(
        "".join(
            json.dumps({"id": f"t{n}", "query": big if n == 1 else f"question t{n}"}) + "\n"
            for n in range(3)
        )
    )
    out = tmp_path / "out.jsonl"
    result = batch(fake, items, out, "-p", "judge")
    assert result.exit_code == 0, result.output
    assert f"{items}:2: the query is 200,001 bytes, over the 200,000 byte limit" in result.stderr
    assert len(fake.requests) == 2
    assert all(len(json.dumps(r.body)) < 10_000 for r in fake.requests)
    strict = batch(fake, items, tmp_path / "strict.jsonl", "-p", "judge", "--strict")
    assert strict.exit_code == 2 and ":2: the query is 200,001 bytes" in strict.stderr


def test_an_empty_context_file_gets_one_warning(fake: FakeOpenAI, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = invoke("oracle", "--base-url", fake.base_url, "-p", "judge", "-c", str(empty), "Q?")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "empty.txt" in line]
    assert warnings == [f"council: warning: --context {empty} is empty; nothing attached"]
    assert "empty.txt" not in json.dumps(fake.requests[0].body)


def test_a_named_pipe_given_to_c_is_waited_for_and_read(fake: FakeOpenAI, tmp_path: Path) -> None:
    fifo = tmp_path / "notes.fifo"
    os.mkfifo(fifo)
    process = council_process(
        "oracle", "--base-url", fake.base_url, "-p", "judge", "-c", str(fifo), "Read it?"
    )
    try:
        assert process.stderr is not None
        waiting = process.stderr.readline()  # council says it waits: no writer yet
        assert f"waiting for --context {fifo} (a pipe) to be written" in waiting, waiting
        with open(fifo, "w") as writer:
            writer.write("text from the pipe\n")
        code, err = finish(process)
    finally:
        process.kill()
    assert code == 0, err
    (request,) = fake.requests
    assert "text from the pipe" in json.dumps(request.body)


# -- 9. one resume at a time ----------------------------------------------------------------------


def interrupted_run(fake: FakeOpenAI) -> str:
    """A deliberation stopped after the judge answered and before the critic did: its id."""
    fake.script("critic", Reply(gate="never"), round=1)
    process = council_process(
        "deliberate", "--base-url", fake.base_url, "-p", "judge,critic", "--jsonl", "Resume?"
    )
    # Council's own account that the judge finished (its event), not the server's: under
    # load the server can be done with the judge before council has read the answer.
    fake.wait_for(lambda f: len(f.requests) >= 2, timeout=30)
    interrupt_after_event(
        process, lambda e: e.get("type") == "call_finished" and e.get("persona") == "judge", 30
    )
    (run,) = history_rows("SELECT id, status FROM runs")
    assert run["status"] == "interrupted"
    fake.reset()
    return str(run["id"])


def test_two_resumes_of_one_run_do_not_both_run(fake: FakeOpenAI, tmp_path: Path) -> None:
    run_id = interrupted_run(fake)
    fake.default = Reply(gate="hold")
    first = council_process("resume", run_id, "--base-url", fake.base_url)
    try:
        fake.wait_for(lambda f: len(f.requests) >= 1, timeout=30)
        code, err = finish(council_process("resume", run_id, "--base-url", fake.base_url))
        assert code == 2, err
        assert f"run {run_id} is still going in another council process" in err
        assert [r.persona for r in fake.requests] == ["critic"]  # the first one's, held
        fake.release("hold")
        assert finish(first)[0] in (0, 3)
    finally:
        first.kill()
    (resumed,) = history_rows("SELECT id FROM runs WHERE resumed_from = ?", run_id)
    assert resumed["id"] != run_id


def test_the_check_and_the_lock_are_one_step(fake: FakeOpenAI, tmp_path: Path) -> None:
    """A process that has loaded the run to resume holds it: a resume meanwhile is refused.

    Before, loading only looked at the lock, and the lock came later, when the run
    started: a second resume in between ran the whole deliberation again.
    """
    run_id = interrupted_run(fake)
    code = (
        "import sys\n"
        "from council.store.db import HistoryDB\n"
        "from council.store.resume import load_resume\n"
        "with HistoryDB.open() as history:\n"
        "    resumed = load_resume(history, sys.argv[1])\n"
        "print('loaded', flush=True)\n"
        "sys.stdin.readline()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, run_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "loaded\n"
        refused = invoke("resume", run_id, "--base-url", fake.base_url)
        assert refused.exit_code == 2, refused.output
        assert fake.requests == []
    finally:
        holder.communicate(input="\n", timeout=30)
    resumed = invoke("resume", run_id, "--base-url", fake.base_url)  # let go: it resumes
    assert resumed.exit_code == 0, resumed.output
