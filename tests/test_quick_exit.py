"""council as a real process ends at once after its answer (issue 15, point 9), losing nothing.

The process skips taking the interpreter apart (cli/__init__.py); these check what
must still be true when it is gone: every byte of output written, the history's
record complete, the exit code the command's, and errors said in one line.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import council_process, history_rows, invoke

LONG = " ".join(f"word{i}" for i in range(40_000))  # well past any pipe's buffer


def test_all_output_and_the_whole_record_survive_the_quick_exit(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(text=LONG))
    fake.script("critic", Reply(text="Short and sharp."))
    proc = council_process("oracle", "--base-url", fake.base_url, "-p", "judge,critic", "Q?")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert LONG in out and "Short and sharp." in out
    assert out.endswith("\n")
    assert "Traceback" not in err and "Exception ignored" not in err
    (run,) = history_rows("SELECT * FROM runs")
    assert (run["status"], run["exit_code"]) == ("ok", 0)
    # The Markdown kept refers to the answer's one copy, in its call's row (issue 23).
    assert run["markdown"] is not None and invoke("show", run["id"]).stdout == out
    assert json.loads(run["document"])["answers"]
    calls = history_rows("SELECT persona, text FROM calls ORDER BY persona")
    assert [(c["persona"], c["text"]) for c in calls] == [
        ("critic", "Short and sharp."),
        ("judge", LONG),
    ]


def test_json_output_is_whole(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(text=LONG))
    proc = council_process("oracle", "--base-url", fake.base_url, "-p", "judge", "--json", "Q?")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    document = json.loads(out)
    assert [a["text"] for a in document["answers"]] == [LONG]


def test_a_failed_run_keeps_its_exit_code_and_its_record(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(status=500), Reply(status=500), Reply(status=500))
    proc = council_process(
        "oracle", "--base-url", fake.base_url, "-p", "judge", "--retries", "0", "Q?"
    )
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert err.startswith("council: error:") and "Traceback" not in err
    (run,) = history_rows("SELECT status, exit_code FROM runs")
    assert (run["status"], run["exit_code"]) == ("failed", 1)


def test_a_reader_gone_early_ends_it_quietly_with_the_record_whole(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(text=LONG))
    proc = council_process("oracle", "--base-url", fake.base_url, "-p", "judge", "Q?")
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # `| head -c 0`: nobody reads the answer
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err
    (run,) = history_rows("SELECT id, status FROM runs")
    assert run["status"] == "ok" and LONG in invoke("show", run["id"]).stdout


def test_usage_errors_still_exit_2(fake: FakeOpenAI) -> None:
    proc = council_process("oracle", "--base-url", fake.base_url, "--json", "--jsonl", "Q?")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert out == "" and "--json and --jsonl are exclusive" in err


# Imports council.cli as a program that uses it would, registers an exit handler of its
# own (as a library imported by a command would, later), then runs `council ARGS`.
EXIT_HANDLER_SCRIPT = """
import atexit, gc, sys
enabled = gc.isenabled()
from council.cli import main
assert gc.isenabled() == enabled, "importing council.cli changed the garbage collector"
atexit.register(lambda: print("handler ran", flush=True))
sys.argv[1:] = sys.argv[2:]
main()
"""


def test_the_quick_exit_runs_every_exit_handler_and_keeps_the_code() -> None:
    for args, code in ((["--version"], 0), (["oracle", "--frob"], 2)):
        done = subprocess.run(
            [sys.executable, "-c", EXIT_HANDLER_SCRIPT, "council", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == code, done.stderr
        assert done.stdout.endswith("handler ran\n"), done.stdout
        assert "Traceback" not in done.stderr
