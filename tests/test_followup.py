"""Follow-ups (issue 27 point 4): `--continue` / `--continue-from ID` ask the same council a
new question with the earlier question and answer as the conversation so far."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import history_rows, invoke


def _user_message(request: Any) -> str:
    messages = request.body["messages"]
    return "\n".join(m["content"] for m in messages if m["role"] == "user")


def _personas(fake: FakeOpenAI, since: int) -> list[str]:
    return sorted(r.persona for r in fake.requests[since:] if r.persona)


def _run_ids() -> list[str]:
    return [r["id"] for r in history_rows("SELECT id FROM runs ORDER BY started_at, id")]


def test_continue_asks_the_same_council_with_the_conversation_so_far(fake: FakeOpenAI) -> None:
    fake.script("arbiter", Reply(text="Use a monorepo: one team of five shares it well."))
    first = invoke("oracle", "--base-url", fake.base_url, "-p", "judge,critic", "-s", "Monorepo?")
    assert first.exit_code == 0, first.output
    before = len(fake.requests)
    fake.script("arbiter", Reply(text="At twenty, split by service."))
    # No --base-url, no -p, no -s: all of it is the continued run's.
    second = invoke("oracle", "--continue", "And for a team of twenty?")
    assert second.exit_code == 0, second.output
    assert "At twenty, split by service." in second.stdout
    asked = fake.requests[before:]
    assert _personas(fake, before) == ["arbiter", "critic", "judge"]
    for request in asked:
        text = _user_message(request)
        assert "Monorepo?" in text and "one team of five shares it well" in text
        assert text.index("Monorepo?") < text.index("And for a team of twenty?")
    first_id, second_id = _run_ids()
    (row,) = history_rows("SELECT continued_from FROM runs WHERE id = ?", second_id)
    assert row["continued_from"] == first_id
    shown = invoke("show", second_id)
    assert shown.exit_code == 0
    assert f"follow-up of run {first_id}" in shown.stderr


def test_a_chain_of_follow_ups_carries_every_turn_once(fake: FakeOpenAI) -> None:
    base = ("--base-url", fake.base_url, "-p", "judge")
    assert invoke("oracle", *base, "First question?").exit_code == 0
    assert invoke("oracle", "--continue", "Second question?").exit_code == 0
    before = len(fake.requests)
    assert invoke("oracle", "--continue", "Third question?").exit_code == 0
    (request,) = fake.requests[before:]
    text = _user_message(request)
    for question in ("First question?", "Second question?", "Third question?"):
        assert text.count(question) == 1, text
    # Without a synthesis, the council's answer is every member's, under its name.
    assert text.count("judge: judge says:") == 2
    assert text.count('<message role="user">') == 2


def test_continue_from_an_id_and_deliberate(fake: FakeOpenAI) -> None:
    assert (
        invoke("oracle", "--base-url", fake.base_url, "-p", "judge,critic", "One?").exit_code == 0
    )
    (first_id,) = _run_ids()
    assert invoke("oracle", "--base-url", fake.base_url, "-p", "skeptic", "Other?").exit_code == 0
    verdict = {"converged": True, "confidence": 0.9, "synthesis": "Agreed.", "dissent": []}
    fake.script("arbiter", Reply(text=json.dumps(verdict)))
    before = len(fake.requests)
    result = invoke("deliberate", "--continue-from", first_id, "--json", "Two?")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["command"] == "deliberate"
    assert _personas(fake, before) == ["arbiter", "critic", "judge"]  # not the skeptic
    assert all("One?" in _user_message(r) for r in fake.requests[before:])
    assert all("Other?" not in _user_message(r) for r in fake.requests[before:])
    (row,) = history_rows("SELECT continued_from FROM runs WHERE command = 'deliberate'")
    assert row["continued_from"] == first_id


def test_flags_override_the_continued_council(fake: FakeOpenAI) -> None:
    assert (
        invoke("oracle", "--base-url", fake.base_url, "-p", "judge,critic", "One?").exit_code == 0
    )
    before = len(fake.requests)
    result = invoke("oracle", "--continue", "-p", "skeptic", "Two?")
    assert result.exit_code == 0, result.output
    assert _personas(fake, before) == ["skeptic"]
    assert "One?" in _user_message(fake.requests[before])


@pytest.mark.parametrize(
    ("setup", "args", "said"),
    [
        ((), ("--continue",), "no earlier council oracle or deliberate run"),
        ((), ("--continue-from", "feedbeef"), "no run 'feedbeef'"),
        (("--no-store-text",), ("--continue",), "recorded without its texts"),
    ],
)
def test_what_cannot_be_continued_says_so_in_one_line(
    fake: FakeOpenAI, setup: tuple[str, ...], args: tuple[str, ...], said: str
) -> None:
    if setup:
        assert invoke("oracle", "--base-url", fake.base_url, *setup, "One?").exit_code == 0
    before = len(fake.requests)
    result = invoke("oracle", *args, "Two?")
    assert result.exit_code == 2, result.output
    (line, *hint) = result.stderr.strip().splitlines()
    assert said in line and len(hint) <= 1
    assert len(fake.requests) == before  # nothing was asked


def test_a_run_with_no_answer_cannot_be_continued(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(status=400, error_message="too long"))
    assert invoke("oracle", "--base-url", fake.base_url, "-p", "judge", "One?").exit_code != 0
    result = invoke("oracle", "--continue", "Two?")
    assert result.exit_code == 2
    assert "has no answer to continue from" in result.stderr


def test_continue_and_resume_are_exclusive(fake: FakeOpenAI) -> None:
    result = invoke("deliberate", "--continue", "--resume", "abc", "q")
    assert result.exit_code == 2
    assert "give one of them" in result.stderr
