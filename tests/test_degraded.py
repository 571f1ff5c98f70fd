"""Issue 23, point 9: a degraded result says so.

When members failed, the arbiter's prompt names who is missing and why, the answer
panel and the Markdown say "2 of 4 answered; missing: ...", `--json` has
`answer.missing`, and a synthesis of one answer is not presented as a council's.
"""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

from rich.console import Console

from council.app.run import run_quietly
from council.config.personas import Persona
from council.engine.plan import build_oracle_plan
from council.render.rich_report import oracle_renderable
from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import invoke, oracle, oracle_json, resolved_endpoint

FOUR = "judge,critic,skeptic,optimist"
MISSING = "2 of 4 answered; missing: critic (429), skeptic (bad request)"


def fail_two(fake: FakeOpenAI) -> None:
    # A 429 whose Retry-After is "not now" fails the call; a 400 is no retry either.
    fake.script("critic", Reply(status=429, retry_after=1000))
    fake.script("skeptic", Reply(status=400, error_message="context too long"))


def arbiter_prompt(fake: FakeOpenAI) -> str:
    request = fake.requests_for("arbiter")[-1]
    assert request.body is not None
    return request.body["messages"][-1]["content"]


def test_the_synthesis_prompt_names_who_is_missing_and_why(fake: FakeOpenAI) -> None:
    fail_two(fake)
    code, doc = oracle_json(fake, "-p", FOUR, "--synthesize", "q")
    assert code == 3
    assert "Only 2 of 4 members answered; missing: critic (429), skeptic (bad request)." in (
        arbiter_prompt(fake)
    )
    assert doc["answer"]["missing"] == [
        {"persona": "critic", "reason": "429"},
        {"persona": "skeptic", "reason": "bad request"},
    ]
    assert doc["answer"]["answered"] == 2 and doc["answer"]["members"] == 4


def test_the_answer_panel_and_the_markdown_say_it(fake: FakeOpenAI) -> None:
    fail_two(fake)
    markdown = oracle(fake, "-p", FOUR, "--synthesize", "q")  # not a terminal: Markdown
    assert f"**{MISSING}**" in markdown.stdout
    fail_two(fake)
    console = Console(file=io.StringIO(), width=200, force_terminal=True)
    console.print(oracle_renderable(asyncio.run(run_quietly(four_with_arbiter(fake)))))
    panel = console.file.getvalue()
    assert MISSING in panel and "synthesis · arbiter" in panel


def four_with_arbiter(fake: FakeOpenAI) -> Any:
    """The oracle plan `-p judge,critic,skeptic,optimist -s` asks, built in this process."""
    personas = [Persona(name=n, description=n, system=f"You are {n}.") for n in FOUR.split(",")]
    arbiter = Persona(name="arbiter", description="arbiter", system="You sum up.")
    endpoint = resolved_endpoint(fake.base_url)
    return build_oracle_plan(query="q", personas=personas, endpoint=endpoint, arbiter=arbiter)


def test_a_complete_council_says_nothing_missing(fake: FakeOpenAI) -> None:
    code, doc = oracle_json(fake, "-p", "judge,critic", "--synthesize", "q")
    assert code == 0 and doc["answer"]["missing"] == []
    assert "missing" not in arbiter_prompt(fake)


def test_a_synthesis_of_one_answer_is_not_a_councils(fake: FakeOpenAI) -> None:
    fake.script("critic", Reply(status=400, error_message="context too long"))
    result = oracle(fake, "-p", "judge,critic", "--synthesize", "q")
    assert result.exit_code == 3
    assert "Only one member of 2 answered (critic (bad request) did not)" in arbiter_prompt(fake)
    assert "## Synthesis of judge's answer alone (arbiter)" in result.stdout
    assert "**1 of 2 answered; missing: critic (bad request)**" in result.stdout


def test_a_verdict_on_a_degraded_round_says_so(fake: FakeOpenAI) -> None:
    refused = Reply(status=429, retry_after=1000)
    fake.script("critic", refused, refused, round=1)
    result = invoke("deliberate", "--base-url", fake.base_url, "--rounds", "1", "--json", "q")
    doc = json.loads(result.stdout)
    assert doc["answer"]["missing"] == [{"persona": "critic", "reason": "429"}]
    assert "Only 2 of 3 members answered; missing: critic (429)." in arbiter_prompt(fake)
    markdown = invoke("deliberate", "--base-url", fake.base_url, "--rounds", "1", "q")
    assert markdown.exit_code == 3
    assert "2 of 3 answered; missing: critic (429)." in markdown.stdout
