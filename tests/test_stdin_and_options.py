"""Piped input, `--system`, `-o KEY VALUE`, `council models`, and habits from `llm` that mean
something else here.

Standard input is what a real process has (a pipe, a file, /dev/null, a closed fd 0,
a terminal), so those tests start council as one and give every process a timeout:
a read that waits where it must not fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import history_rows, invoke, oracle

QUESTION = "Review this diff"
DIFF = "".join(f"+line {n}\n" for n in range(1, 1235))  # 1,234 lines
TIMEOUT = 30


def council_run(*args: str, stdin: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """`python -m council.cli ARGS` with this stdin, to its end (or the test's failure)."""
    return subprocess.run(
        [sys.executable, "-m", "council.cli", *args],
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ},
        **kwargs,
    )


def ask(fake: FakeOpenAI, *args: str) -> list[str]:
    return ["oracle", "--base-url", fake.base_url, "-p", "judge", *args]


def user_message(request: Any) -> str:
    return request.body["messages"][-1]["content"]


def system_message(request: Any) -> str:
    return request.body["messages"][0]["content"]


# -- piped standard input: attached as context with a question, with a note ------------------


def test_piped_input_with_a_question_is_attached_as_context_with_a_note(
    fake: FakeOpenAI,
) -> None:
    done = council_run(*ask(fake, QUESTION), input=DIFF, stdin=None)
    assert done.returncode == 0, done.stderr
    (request,) = fake.requests
    sent = user_message(request)
    assert sent.startswith(QUESTION)
    assert '<file path="stdin">' in sent and "+line 1\n" in sent and "+line 1234" in sent
    notes = [line for line in done.stderr.splitlines() if "standard input" in line]
    assert notes == [
        "council: attached 1,234 lines (12 KB) from standard input as context; "
        "--no-stdin to ignore it"
    ]


def test_a_regular_file_as_stdin_is_attached_too(fake: FakeOpenAI, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("one line of notes\n")
    with notes.open("rb") as handle:
        done = council_run(*ask(fake, QUESTION), stdin=handle)
    assert done.returncode == 0, done.stderr
    assert "one line of notes" in user_message(fake.requests[0])
    assert "attached 1 line (18 bytes) from standard input" in done.stderr


@pytest.mark.parametrize("kind", ["devnull", "closed", "empty pipe"])
def test_no_input_attaches_nothing_and_says_nothing(fake: FakeOpenAI, kind: str) -> None:
    """What CI and scripts have: /dev/null, a closed fd 0, or a pipe closed at once."""
    options: dict[str, Any] = {"stdin": subprocess.DEVNULL}
    if kind == "closed":
        options["preexec_fn"] = lambda: os.close(0)  # after the DEVNULL is put on fd 0
    elif kind == "empty pipe":
        options = {"stdin": None, "input": ""}
    done = council_run(*ask(fake, QUESTION), **options)
    assert done.returncode == 0, done.stderr
    assert user_message(fake.requests[0]) == QUESTION
    assert "standard input" not in done.stderr


def run_on_a_terminal(*args: str) -> subprocess.CompletedProcess[str]:
    """council with a pseudo-terminal as stdin (nobody types): it must end on its own."""
    leader, follower = pty.openpty()
    try:
        return council_run(*args, stdin=follower)
    finally:
        os.close(follower)
        os.close(leader)


def test_a_terminal_is_never_waited_on(fake: FakeOpenAI) -> None:
    done = run_on_a_terminal(*ask(fake, QUESTION))
    assert done.returncode == 0, done.stderr
    assert user_message(fake.requests[0]) == QUESTION
    # With no question, a terminal is not read for one either: the usual error, at once.
    bare = run_on_a_terminal("oracle", "--base-url", fake.base_url)
    assert bare.returncode == 2
    assert bare.stderr.startswith("council: error: no question given")
    # `-c -` asks for standard input: a terminal is refused, not waited on.
    asked = run_on_a_terminal(*ask(fake, "-c", "-", QUESTION))
    assert asked.returncode == 2
    assert "-c - attaches standard input, but it is a terminal" in asked.stderr


def test_no_stdin_leaves_a_pipe_that_never_ends_unread(fake: FakeOpenAI) -> None:
    """A pipe whose writer never closes it would hang a read: --no-stdin never reads it."""
    reader, writer = os.pipe()
    try:
        os.write(writer, b"not for council\n")
        done = council_run(*ask(fake, "--no-stdin", QUESTION), stdin=reader)
    finally:
        os.close(reader)
        os.close(writer)
    assert done.returncode == 0, done.stderr
    assert user_message(fake.requests[0]) == QUESTION
    assert "standard input" not in done.stderr


def test_an_open_pipe_that_stays_silent_gets_a_note_then_is_read(fake: FakeOpenAI) -> None:
    """A writer that keeps the pipe open: council says what it waits on, and goes on at EOF."""
    reader, writer = os.pipe()
    process = subprocess.Popen(
        [sys.executable, "-m", "council.cli", *ask(fake, QUESTION)],
        stdin=reader,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    os.close(reader)
    try:
        assert process.stderr is not None
        ready, _, _ = select.select([process.stderr], [], [], TIMEOUT)
        assert ready, "no note while waiting on the pipe"
        assert process.stderr.readline() == (
            "council: waiting for standard input (an open pipe); --no-stdin not to read it\n"
        )
        os.write(writer, b"late text\n")
        os.close(writer)
        writer = -1
        _, err = process.communicate(timeout=TIMEOUT)
    finally:
        if writer >= 0:
            os.close(writer)
        process.kill()
    assert process.returncode == 0, err
    assert "late text" in user_message(fake.requests[0])
    assert "attached 1 line" in err


def test_without_a_question_the_pipe_is_the_question(fake: FakeOpenAI) -> None:
    done = council_run(*ask(fake), input="Ship it on Friday?\n", stdin=None)
    assert done.returncode == 0, done.stderr
    assert user_message(fake.requests[0]) == "Ship it on Friday?"
    assert "attached" not in done.stderr


def test_dash_c_dash_attaches_stdin_where_it_is_named(fake: FakeOpenAI, tmp_path: Path) -> None:
    design = tmp_path / "design.md"
    design.write_text("The design.\n")
    args = ask(fake, "-c", str(design), "-c", "-", QUESTION)
    done = council_run(*args, input="The diff.\n", stdin=None)
    assert done.returncode == 0, done.stderr
    sent = user_message(fake.requests[0])
    assert sent.index(f'<file path="{design}">') < sent.index('<file path="stdin">')
    assert "The diff." in sent
    assert "attached" not in done.stderr  # asked for by name: no note


def test_dash_c_dash_on_empty_input_attaches_nothing_and_says_so(fake: FakeOpenAI) -> None:
    done = council_run(*ask(fake, "-c", "-", QUESTION), stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert user_message(fake.requests[0]) == QUESTION
    assert "council: warning: -c -: standard input is empty; nothing attached" in done.stderr


@pytest.mark.parametrize("args", [["-"], ["-c", "-", QUESTION]], ids=["question", "context"])
def test_asking_for_a_closed_stdin_is_a_one_line_error(fake: FakeOpenAI, args: list[str]) -> None:
    done = council_run(*ask(fake, *args), stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(0))
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("council: error: ") and "closed" in line
    assert fake.requests == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-c", "-", "-"], "both the question (-) and -c - read standard input"),
        (["-c", "-", "-c", "-", QUESTION], "-c - is given twice"),
        (["--no-stdin", "-c", "-", QUESTION], "-c - reads standard input, and --no-stdin"),
    ],
    ids=["question-and-context", "twice", "no-stdin"],
)
def test_stdin_read_twice_or_against_no_stdin_is_refused(
    fake: FakeOpenAI, args: list[str], message: str
) -> None:
    result = oracle(fake, *args, input="text")
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.splitlines()) == 1
    assert fake.requests == []


def test_piped_input_over_the_cap_is_a_one_line_error(fake: FakeOpenAI) -> None:
    done = council_run(*ask(fake, QUESTION), input="x" * 200_001, stdin=None)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "council: error: standard input is over the 200,000 byte limit for context; "
        "pipe in the relevant part (e.g. with head, sed or grep), or --no-stdin to ignore it"
    ]
    assert fake.requests == []


def test_binary_piped_input_is_refused(fake: FakeOpenAI) -> None:
    done = council_run(*ask(fake, QUESTION), input="a\x00b", stdin=None)
    assert done.returncode == 2
    assert "standard input: looks binary" in done.stderr
    assert fake.requests == []


def test_deliberate_attaches_piped_input_to_every_round(fake: FakeOpenAI) -> None:
    args = ["deliberate", "--base-url", fake.base_url, "-p", "judge", "--rounds", "1"]
    done = council_run(*args, QUESTION, input="the diff\n", stdin=None)
    assert done.returncode in (0, 3), done.stderr
    judge = fake.requests_for("judge")[0]
    verdict = fake.requests_for("arbiter")[0]
    assert '<file path="stdin">\nthe diff\n</file>' in user_message(judge)
    assert "the diff" in user_message(verdict)


def test_resume_never_reads_stdin(fake: FakeOpenAI) -> None:
    """A pipe left open would hang a read; --resume reuses the recorded question instead."""
    fake.script("judge", Reply(status=400, error_message="broke"))
    first = invoke("deliberate", "--base-url", fake.base_url, "-p", "judge", "-r", "1", QUESTION)
    assert first.exit_code == 1, first.stderr  # every persona failed: resumable
    (run,) = history_rows("SELECT id FROM runs")
    reader, writer = os.pipe()
    try:
        os.write(writer, b"a diff that must not be read\n")
        done = council_run("deliberate", "--resume", run["id"], stdin=reader)
    finally:
        os.close(reader)
        os.close(writer)
    assert done.returncode in (0, 3), done.stderr
    assert "council: note: standard input is not read with --resume" in done.stderr
    resumed = fake.requests_for("judge")[-1]
    assert user_message(resumed) == QUESTION


# -- --system and -o KEY VALUE ----------------------------------------------------------------


def test_options_and_system_go_into_every_persona_request(fake: FakeOpenAI) -> None:
    result = oracle(
        fake, "-p", "judge,critic", "--system", "Answer in one sentence.",
        "-o", "temperature", "0.2", "-o", "seed", "7", "-o", "stop", '["END"]',
        "-o", "logit_bias", '{"50256": -100}', "-o", "custom_flag", "true",
        "-o", "user", "ci-bot", QUESTION,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert len(fake.requests) == 2
    for request in fake.requests:
        body = request.body
        assert body["temperature"] == 0.2 and body["seed"] == 7
        assert body["stop"] == ["END"] and body["logit_bias"] == {"50256": -100}
        assert body["custom_flag"] is True and body["user"] == "ci-bot"
        assert system_message(request).endswith("\n\nAnswer in one sentence.")


def test_system_is_for_the_personas_not_the_arbiter(fake: FakeOpenAI) -> None:
    result = oracle(fake, "-p", "judge", "--synthesize", "--system", "Be terse.", QUESTION)
    assert result.exit_code == 0, result.stderr
    assert system_message(fake.requests_for("judge")[0]).endswith("Be terse.")
    assert "Be terse." not in system_message(fake.requests_for("arbiter")[0])


def test_option_temperature_and_max_tokens_win_over_the_persona(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    personas = Path(os.environ["COUNCIL_HOME"]) / "personas"
    personas.mkdir()
    (personas / "warm.yaml").write_text(
        "name: warm\ndescription: d\nsystem: You are warm.\ntemperature: 1.5\nmax_tokens: 900\n"
    )
    result = oracle(fake, "-p", "warm", "-o", "temperature", "0", "-o", "max_tokens", "50", "q")
    assert result.exit_code == 0, result.stderr
    body = fake.requests[0].body
    assert (body["temperature"], body["max_tokens"]) == (0, 50)


def test_options_reach_every_call_of_a_deliberation(fake: FakeOpenAI) -> None:
    result = invoke(
        "deliberate", "--base-url", fake.base_url, "-p", "judge,critic", "--rounds", "2",
        "-o", "seed", "42", QUESTION,
    )  # fmt: skip
    assert result.exit_code in (0, 3), result.stderr
    assert len(fake.requests) >= 3
    assert all(r.body["seed"] == 42 for r in fake.requests)


def test_options_show_in_the_dry_run_and_the_recorded_plan(fake: FakeOpenAI) -> None:
    options = ["-o", "top_p", "0.9", "-o", "seed", "7", "--system", "Be terse."]
    markdown = oracle(fake, "--dry-run", "-p", "judge", *options, QUESTION)
    assert markdown.exit_code == 0, markdown.stderr
    assert "## judge (model gpt-4o-mini, temperature 0.3, top_p 0.9, seed 7)" in markdown.stdout
    assert "Be terse." in markdown.stdout
    assert "over 1 call\n" in markdown.stdout  # one call, said so
    document = json.loads(oracle(fake, "--dry-run", "--json", "-p", "judge", *options, "q").stdout)
    assert document["options"] == {"top_p": 0.9, "seed": 7}
    assert document["calls"][0]["options"] == {"top_p": 0.9, "seed": 7}
    assert fake.requests == []
    ran = oracle(fake, "-p", "judge", *options, QUESTION)
    assert ran.exit_code == 0, ran.stderr
    (row,) = history_rows("SELECT plan FROM runs")
    plan = json.loads(row["plan"])
    assert plan["options"] == {"top_p": 0.9, "seed": 7}
    assert plan["calls"][0]["messages"][0]["content"].endswith("Be terse.")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "temperature", "hot"], "-o temperature hot: temperature takes a number"),
        (["-o", "seed", "1.5"], "-o seed 1.5: seed takes a whole number"),
        (["-o", "max_tokens", "0"], "-o max_tokens 0: must be at least 1"),
        (["-o", "model", "gpt-4o"], "-o model: council sets model itself; use --model"),
        (["-o", "stream", "false"], "-o stream: council sets stream itself"),
        (["-o", "bad key", "1"], "-o 'bad key': not an option name"),
        (["--system", "  "], "--system is empty"),
    ],
)
def test_bad_options_are_one_line_errors(fake: FakeOpenAI, args: list[str], message: str) -> None:
    result = oracle(fake, *args, QUESTION)
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"council: error: {message}")
    assert fake.requests == []


def test_an_option_without_its_value_is_a_usage_error(fake: FakeOpenAI) -> None:
    result = oracle(fake, QUESTION, "-o", "temperature")
    assert result.exit_code == 2
    assert "requires 2 arguments" in result.output
    assert fake.requests == []


@pytest.mark.parametrize("flag", [["--system", "Be terse."], ["-o", "seed", "1"]])
def test_resume_refuses_system_and_options(flag: list[str]) -> None:
    result = invoke("deliberate", "--resume", "abc123", *flag)
    assert result.exit_code == 2
    name = flag[0] if flag[0] != "-o" else "--option"
    assert f"it takes no {name}; drop it" in result.stderr


# -- council models ---------------------------------------------------------------------------


def test_models_lists_what_the_endpoint_lists(fake: FakeOpenAI) -> None:
    listed = invoke("models", "--base-url", fake.base_url)
    assert listed.exit_code == 0, listed.stderr
    assert listed.stdout == "fake-model\n"
    document = json.loads(invoke("models", "--base-url", fake.base_url, "--json").stdout)
    assert document["models"] == ["fake-model"]
    assert document["endpoint"]["base_url"] == fake.base_url
    assert fake.requests == []  # listing makes no chat call


def test_models_of_an_endpoint_that_is_not_there_is_one_line() -> None:
    result = invoke("models", "--base-url", "http://127.0.0.1:9/v1")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("council: error: cannot connect to 127.0.0.1:9")


def test_models_takes_the_endpoint_flags_like_a_run() -> None:
    both = invoke("models", "--endpoint", "x", "--base-url", "http://127.0.0.1:9/v1")
    assert both.exit_code == 2 and "--endpoint and --base-url are exclusive" in both.stderr
    missing = invoke("models", "--endpoint", "nosuch")
    assert missing.exit_code == 2 and "no endpoint profile 'nosuch'" in missing.stderr


# -- habits from llm that mean something else here --------------------------------------------


def test_dash_s_with_a_system_prompt_says_what_s_means_here(fake: FakeOpenAI) -> None:
    for flag in ("-s", "--synthesize", "-qs"):
        result = oracle(fake, flag, "You are terse", "Ship it?")
        assert result.exit_code == 2
        (line,) = result.stderr.splitlines()
        assert line.startswith("council: error: -s means --synthesize here")
        assert '--system "..."' in line
    assert fake.requests == []


def test_an_extra_argument_without_dash_s_keeps_the_usual_error(fake: FakeOpenAI) -> None:
    result = oracle(fake, "Ship", "it?")
    assert result.exit_code == 2
    assert "--synthesize" not in result.output


@pytest.mark.parametrize(
    "args", [["-c", "what about Go?"], ["-c", "what about Go?", "Ship it?"]], ids=["alone", "both"]
)
def test_dash_c_with_a_question_says_to_put_the_question_last(
    fake: FakeOpenAI, args: list[str]
) -> None:
    result = oracle(fake, *args)
    assert result.exit_code == 2
    assert result.stderr == (
        "council: error: -c attaches a file; 'what about Go?' is not one; "
        "put the question last, after the options\n"
    )


def test_dash_c_with_a_missing_file_name_still_says_no_such_file(fake: FakeOpenAI) -> None:
    result = oracle(fake, "-c", "notes.md", QUESTION)
    assert result.exit_code == 2 and "--context notes.md: no such file" in result.stderr


# -- words ------------------------------------------------------------------------------------


def test_deliberate_without_a_question_suggests_deliberate() -> None:
    result = invoke("deliberate")
    assert result.exit_code == 2
    assert 'e.g. council deliberate "' in result.stderr and "council oracle" not in result.stderr


def test_resume_with_a_question_reads_as_english() -> None:
    result = invoke("deliberate", "--resume", "abc123", "Why?")
    assert result.stderr == (
        "council: error: --resume continues the recorded council; it takes no question; "
        "drop it, or start a new council instead\n"
    )
    several = invoke("deliberate", "--resume", "abc123", "-p", "judge", "Why?")
    assert "it takes no question or --personas; drop them" in several.stderr


def test_one_persona_is_counted_in_the_singular(fake: FakeOpenAI) -> None:
    result = oracle(fake, "-p", "judge", QUESTION)
    assert result.exit_code == 0, result.stderr
    assert "1 of 1 persona answered" in result.stdout
    assert "personas answered" not in result.stdout
