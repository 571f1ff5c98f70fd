"""Bad input from the user: bytes that are not UTF-8, numbers not finite, sizes, devices."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI
from tests.helpers import invoke, oracle

QUESTION = "Should we rewrite billing in Rust?"
REPLACEMENT = "\ufffd"


def recorded_queries() -> list[str]:
    path = Path(os.environ["COUNCIL_HOME"]) / "history.db"
    connection = sqlite3.connect(path)
    try:
        return [row[0] for row in connection.execute("SELECT query FROM runs")]
    finally:
        connection.close()


def sent_question(fake: FakeOpenAI) -> str:
    return fake.requests[0].body["messages"][-1]["content"]


# -- text that is not UTF-8: replaced, with a warning, and the run recorded ----------------


def test_a_question_argument_that_is_not_utf8_is_replaced_and_warned_about(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    # As a real process: the shell hands over bytes, Python makes them lone surrogates.
    args = [sys.executable, "-m", "council.cli", "oracle", "--base-url", fake.base_url]
    question = b"caf\xe9 or tea?"
    completed = subprocess.run(
        [*map(os.fsencode, args), b"-p", b"judge", question],
        capture_output=True,
        timeout=30,
        env={**os.environ},
    )
    stderr = completed.stderr.decode()
    assert completed.returncode == 0, stderr
    assert "judge says:" in completed.stdout.decode()
    warnings = [line for line in stderr.splitlines() if "not valid UTF-8" in line]
    assert len(warnings) == 1 and warnings[0].startswith("council: warning: the question")
    assert "Traceback" not in stderr and "unexpected" not in stderr
    assert sent_question(fake) == f"caf{REPLACEMENT} or tea?"
    assert recorded_queries() == [f"caf{REPLACEMENT} or tea?"]


def test_a_question_on_stdin_that_is_not_utf8_is_replaced_and_warned_about(
    fake: FakeOpenAI,
) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "council.cli", "oracle", "--base-url", fake.base_url, "-"],
        input=b"na\xefve question\xff\n",
        capture_output=True,
        timeout=30,
        env={**os.environ},
    )
    stderr = completed.stderr.decode()
    assert completed.returncode == 0, stderr
    assert "the question on stdin is not valid UTF-8" in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert sent_question(fake) == f"na{REPLACEMENT}ve question{REPLACEMENT}"
    assert recorded_queries() == [f"na{REPLACEMENT}ve question{REPLACEMENT}"]


def test_a_context_file_that_is_not_utf8_is_replaced_and_warned_about(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    notes = tmp_path / "latin1.txt"
    notes.write_bytes(b"Caf\xe9 prices rose 3%.\n")
    result = oracle(fake, "-p", "judge", "-c", str(notes), QUESTION)
    assert result.exit_code == 0, result.output
    assert f"--context {notes} is not valid UTF-8" in result.stderr
    assert f"Caf{REPLACEMENT} prices rose 3%." in sent_question(fake)


# -- numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("oracle", "--timeout", "nan"), "--timeout nan (not a finite number): expected"),
        (("oracle", "--timeout", "inf"), "--timeout inf (not a finite number): expected"),
        (("oracle", "--timeout", "-inf"), "--timeout -inf (not a finite number): expected"),
        (("deliberate", "--threshold", "nan"), "--threshold nan (not a finite number)"),
        (("deliberate", "--threshold", "inf"), "--threshold inf (not a finite number)"),
        (("deliberate", "--rounds", "1000"), "--rounds 1000: expected a whole number from 1 to 20"),
        (("deliberate", "--rounds", "21"), "--rounds 21: expected a whole number from 1 to 20"),
    ],
    ids=[
        "timeout-nan",
        "timeout-inf",
        "timeout-minus-inf",
        "threshold-nan",
        "threshold-inf",
        "rounds-1000",
        "rounds-21",
    ],
)
def test_numeric_flags_out_of_range_are_one_line_usage_errors(
    fake: FakeOpenAI, args: tuple[str, ...], message: str
) -> None:
    result = invoke(*args, "--base-url", fake.base_url, "-p", "judge", QUESTION)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert fake.requests == []


def test_twenty_rounds_are_still_allowed(fake: FakeOpenAI) -> None:
    result = invoke("deliberate", "--base-url", fake.base_url, "--rounds", "20", "--dry-run", "q")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("file", "body", "message"),
    [
        ("config", "timeout: .inf\n", "timeout: expected a number of seconds above 0, got inf"),
        ("config", "timeout: .nan\n", "timeout: expected a number of seconds above 0, got nan"),
        ("preset", "threshold: .nan\n", "threshold: expected a number from 0 to 1, got nan"),
        ("preset", "timeout: .inf\n", "timeout: expected a number of seconds above 0, got inf"),
    ],
    ids=["config-timeout-inf", "config-timeout-nan", "preset-threshold-nan", "preset-timeout-inf"],
)
def test_non_finite_numbers_in_files_are_refused(
    fake: FakeOpenAI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    file: str,
    body: str,
    message: str,
) -> None:
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    council = tmp_path / ".council"
    (council / "presets").mkdir(parents=True)
    args = ["oracle", "--base-url", fake.base_url, "-p", "judge", "--dry-run", "q"]
    if file == "config":
        (council / "config.yaml").write_text(body)
    else:
        (council / "presets" / "p.yaml").write_text("name: p\n" + body)
        args[1:1] = ["--preset", "p"]
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_an_age_must_be_a_finite_positive_number() -> None:
    for args in (
        ("history", "--since", "nand"),
        ("history", "--since", "infw"),
        ("history", "prune", "--older-than", "-1d"),
    ):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        assert "is not an age" in result.stderr


# -- sizes and devices -----------------------------------------------------------------------


def test_a_question_over_the_cap_is_refused_before_anything_is_sent(fake: FakeOpenAI) -> None:
    from council.app.inputs import MAX_QUESTION_BYTES

    long = "x" * (MAX_QUESTION_BYTES + 1)
    for args, stdin in ((("-p", "judge", long), None), (("-p", "judge", "-"), long)):
        result = oracle(fake, *args, input=stdin)
        assert result.exit_code == 2, result.output
        assert f"over the {MAX_QUESTION_BYTES:,} byte limit" in result.stderr
    assert fake.requests == []
    at_cap = oracle(fake, "-p", "judge", "-", input="y" * MAX_QUESTION_BYTES)
    assert at_cap.exit_code == 0, at_cap.output


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_an_endless_stdin_is_read_no_further_than_the_cap(fake: FakeOpenAI) -> None:
    with open("/dev/zero", "rb") as zeros:
        completed = subprocess.run(
            [sys.executable, "-m", "council.cli", "oracle", "--base-url", fake.base_url, "-"],
            stdin=zeros,
            capture_output=True,
            timeout=30,
            env={**os.environ},
        )
    assert completed.returncode == 2
    assert b"the question on stdin is over the 200,000 byte limit" in completed.stderr


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_context_from_a_device_is_refused_at_once(fake: FakeOpenAI) -> None:
    result = oracle(fake, "-p", "judge", "-c", "/dev/zero", QUESTION)
    assert result.exit_code == 2, result.output
    assert "--context /dev/zero: is a character device" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert fake.requests == []


@pytest.mark.skipif(not Path("/dev/fd").exists(), reason="needs /dev/fd")
def test_context_from_a_pipe_is_read_up_to_its_cap(fake: FakeOpenAI) -> None:
    # What `-c <(git diff)` hands council: a pipe the user named on purpose.
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b"diff --git a/x b/x\n")
        os.close(write_end)
        result = oracle(fake, "-p", "judge", "-c", f"/dev/fd/{read_end}", QUESTION)
    finally:
        os.close(read_end)
    assert result.exit_code == 0, result.output
    assert "diff --git a/x b/x" in fake.requests[0].body["messages"][-1]["content"]


def test_the_dry_run_plan_shows_the_replaced_question(fake: FakeOpenAI) -> None:
    result = invoke(
        "oracle", "--base-url", fake.base_url, "-p", "judge", "--dry-run", "--json", "caf\udce9?"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["query"] == f"caf{REPLACEMENT}?"
