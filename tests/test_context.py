"""Context windows (issue 14): learned from errors or a server's word, fitted before sending."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from council.endpoint.describe import window_in_models, window_in_props
from council.endpoint.errors import context_numbers, is_context_error
from tests.fake_openai import FakeOpenAI, RecordedRequest, Reply, _prompt_tokens
from tests.helpers import history_rows, invoke, kept_learned

PERSONAS = ("judge", "critic", "skeptic")
MARKER = "words cut to fit a"


def long_answer(name: str, number: int, words: int = 400) -> Reply:
    position = "Position: kept\n" if number > 1 else ""
    return Reply(text=position + " ".join(f"{name}{number}-{i}" for i in range(words)))


def verdict(converged: bool) -> Reply:
    data = {"converged": converged, "confidence": 0.9, "synthesis": "S.", "dissent": []}
    return Reply(text=json.dumps(data))


def script(fake: FakeOpenAI, rounds: int) -> None:
    for number in range(1, rounds + 1):
        for name in PERSONAS:
            fake.script(name, long_answer(name, number), round=number)
        fake.script("arbiter", verdict(number == rounds), round=number)


def deliberate_json(fake: FakeOpenAI, *args: str) -> tuple[int, dict[str, Any]]:
    result = invoke("deliberate", "--base-url", fake.base_url, "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def prompt(request: RecordedRequest) -> str:
    assert request.body is not None
    return request.body["messages"][-1]["content"]


def fits(request: RecordedRequest, window: int) -> bool:
    assert request.body is not None
    return _prompt_tokens(request.body) + (request.body.get("max_tokens") or 0) <= window


# -- what servers say ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "numbers"),
    [
        (
            "This model's maximum context length is 4096 tokens. However, your messages "
            "resulted in 5000 tokens. Please reduce the length of the messages.",
            (4096, 5000),
        ),
        (
            "This model's maximum context length is 2048 tokens. However, you requested "
            "2300 tokens (2000 in the messages, 300 in the completion).",
            (2048, 2000),
        ),
        ("request (3000 tokens) exceeds the available context size (2048 tokens)", (2048, 3000)),
        ("the request exceeds the available context size, try increasing it", (None, None)),
    ],
)
def test_context_errors_are_recognised_with_their_numbers(
    message: str, numbers: tuple[int | None, int | None]
) -> None:
    assert is_context_error(message)
    assert context_numbers(message) == numbers


def test_windows_servers_state_about_themselves() -> None:
    assert window_in_props({"default_generation_settings": {"n_ctx": 4096}}) == 4096
    assert window_in_props({"n_ctx": 2048}) == 2048
    assert window_in_props({"n_ctx": "lots"}) is None
    vllm = {"data": [{"id": "m", "max_model_len": 8192}]}
    openrouter = {"data": [{"id": "x"}, {"id": "m", "context_length": 128000}]}
    assert window_in_models(vllm, "m") == 8192
    assert window_in_models(openrouter, "m") == 128000
    assert window_in_models(openrouter, "other") is None


# -- learned from a context error, then fitted -----------------------------------------------


@pytest.mark.parametrize("style", ["openai", "llamacpp", "vllm"])
def test_a_context_error_teaches_the_window_and_the_call_is_fitted(
    fake: FakeOpenAI, style: str
) -> None:
    fake.context_window, fake.context_error_style = 1200, style
    script(fake, 2)

    code, doc = deliberate_json(fake, "--rounds", "2", "--personas", ",".join(PERSONAS), "q")

    assert code == 0, doc  # a fitted call that answered is an answer
    # Round 1's verdict quotes every answer: refused once, it teaches the window.
    first, again = fake.requests_for("arbiter")[:2]
    assert (first.round, first.status, again.round, again.status) == ("1", 400, "1", 200)
    assert MARKER in prompt(again) and fits(again, 1200)
    assert doc["rounds"][0]["arbiter"]["fitted"]["window"] == 1200
    round_two = [r for r in fake.requests if r.round == "2" and r.persona in PERSONAS]
    answered = [r for r in round_two if r.status == 200]
    assert len(answered) == 3 and len(round_two) == 3  # fitted before sending: no more 400s
    for request in answered:
        assert "words cut to fit a 1,200-token context]" in prompt(request)
        assert fits(request, 1200)
        assert "<question>\nq\n</question>" in prompt(request)  # never cut
    fitted = [a["fitted"] for a in doc["rounds"][1]["answers"]]
    assert all(f["window"] == 1200 and f["cut_words"] > 0 for f in fitted)
    assert all(a["fitted"] is None for a in doc["rounds"][0]["answers"])
    learned = kept_learned(fake.base_url)  # what the run's pool learned, kept
    assert [(v.context_window, v.window_source) for v in learned] == [(1200, "error")]
    assert learned[0].learned_at is not None  # kept for the next run, with when
    # The verdict on round 2 is fitted before it is sent: the window is known by then.
    last_verdict = fake.requests_for("arbiter")[-1]
    assert last_verdict.status == 200 and MARKER in prompt(last_verdict)


def test_a_window_the_server_states_is_fitted_to_before_anything_is_refused(
    fake: FakeOpenAI,
) -> None:
    fake.context_window, fake.describe_context = 1200, True
    script(fake, 2)

    code, _ = deliberate_json(fake, "--rounds", "2", "--personas", ",".join(PERSONAS), "q")

    assert code == 0
    assert all(r.status == 200 for r in fake.requests)  # no 400: fitted from the start
    round_two = [r for r in fake.requests if r.round == "2" and r.persona in PERSONAS]
    assert all(MARKER in prompt(r) and fits(r, 1200) for r in round_two)


def test_a_prompt_that_fits_goes_out_as_built(fake: FakeOpenAI) -> None:
    fake.context_window, fake.describe_context = 100_000, True
    script(fake, 2)
    code, doc = deliberate_json(fake, "--rounds", "2", "--personas", ",".join(PERSONAS), "q")
    assert code == 0
    assert not any(MARKER in prompt(r) for r in fake.requests)
    assert all(a["fitted"] is None for r in doc["rounds"] for a in r["answers"])


# -- a question that cannot fit ----------------------------------------------------------------


def test_a_question_too_long_for_the_window_is_one_line_and_exit_2(fake: FakeOpenAI) -> None:
    fake.context_window, fake.describe_context = 1000, True
    question = " ".join(f"word{i}" for i in range(2000))

    result = invoke("deliberate", "--base-url", fake.base_url, "--rounds", "2", question)

    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "context window is 1,000 tokens" in lines[0] and "tokens" in lines[0]
    assert fake.requests == []  # nothing was sent


def test_fitted_calls_are_said_in_the_output_and_kept_in_history(fake: FakeOpenAI) -> None:
    fake.context_window, fake.context_error_style = 1200, "llamacpp"
    script(fake, 2)

    result = invoke("deliberate", "--base-url", fake.base_url, "--rounds", "2", "q")

    assert result.exit_code == 0
    assert "cut to fit a 1,200-token context" in result.stderr
    rows = history_rows("SELECT call_id, fitted FROM calls WHERE fitted IS NOT NULL")
    assert {row["call_id"] for row in rows} >= {"r1-verdict", "r2-judge", "r2-verdict"}
    assert all(json.loads(row["fitted"])["window"] == 1200 for row in rows)
    unfitted = history_rows("SELECT fitted FROM calls WHERE call_id = 'r1-judge'")
    assert unfitted[0]["fitted"] is None


def test_an_oracle_answer_says_its_prompt_was_fitted(fake: FakeOpenAI) -> None:
    fake.context_window, fake.describe_context = 1200, True
    for name in PERSONAS:
        fake.script(name, long_answer(name, 1))
    fake.script("synthesizer", Reply(text="Synthesis."))
    result = invoke(
        "oracle", "--base-url", fake.base_url, "--personas", ",".join(PERSONAS), "--synthesize", "q"
    )
    assert result.exit_code == 0, result.stdout
    assert "prompt fitted to a 1,200-token context" in result.stdout


# -- a window from the endpoint's profile ------------------------------------------------------


def profile_config(fake: FakeOpenAI, window: str) -> None:
    home = Path(os.environ["COUNCIL_HOME"])
    (home / "config.yaml").write_text(
        "endpoints:\n  - name: small\n"
        f"    base_url: {fake.base_url}\n    context_window: {window}\n"
        "default_endpoint: small\n",
        encoding="utf-8",
    )


@pytest.mark.parametrize("window", ["1200", "{fake-model: 1200, other: 99999}"])
def test_a_profile_window_is_fitted_to_without_asking_the_server(
    fake: FakeOpenAI, window: str
) -> None:
    profile_config(fake, window)
    fake.context_window = 1200  # says nothing about itself, refuses what does not fit
    script(fake, 2)

    result = invoke("deliberate", "-m", "fake-model", "--rounds", "2", "--json", "q")

    assert result.exit_code == 0, result.stdout
    assert all(r.status == 200 for r in fake.requests)
    round_two = [r for r in fake.requests if r.round == "2" and r.persona in PERSONAS]
    assert all(MARKER in prompt(r) and fits(r, 1200) for r in round_two)


def test_a_question_too_long_for_the_profile_window_sends_nothing(fake: FakeOpenAI) -> None:
    profile_config(fake, "600")
    result = invoke("oracle", "-m", "fake-model", " ".join(["word"] * 3000))
    assert result.exit_code == 2
    assert "context window is 600 tokens" in result.stderr.splitlines()[0]
    assert fake.requests == []


def test_a_bad_profile_window_is_named_with_its_place(fake: FakeOpenAI) -> None:
    profile_config(fake, "lots")
    result = invoke("config", "show")
    assert result.exit_code == 2
    assert "context_window: expected a number of tokens" in result.stderr


# -- errors say what helps ---------------------------------------------------------------------


def test_a_context_error_that_nothing_can_fix_says_what_helps(fake: FakeOpenAI) -> None:
    # Round 1 quotes nothing: no cut can help, and the server's message is quoted.
    fake.context_window, fake.context_error_style = 50, "llamacpp"

    result = invoke("oracle", "--base-url", fake.base_url, "--personas", "judge", "a question")

    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "exceeds the available context size (50 tokens)" in lines[0]
    assert "--context" in lines[0] and "context_window:" in lines[0]
    assert "--timeout" not in lines[0]
    assert len(fake.requests) == 1  # a 400 is not retried
