"""Issue 14, point 4: when the arbiter cannot judge, the next `arbiter_fallback` persona does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import invoke

BROKEN = Reply(status=500, error_message="arbiter down")


def verdict(converged: bool, synthesis: str) -> Reply:
    data = {"converged": converged, "confidence": 0.9, "synthesis": synthesis, "dissent": []}
    return Reply(text=json.dumps(data))


def preset(project: Path, body: str) -> None:
    path = project / ".council" / "presets" / "fb.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("name: fb\n" + body)


def deliberate_json(fake: FakeOpenAI, *args: str) -> tuple[int, dict[str, Any]]:
    result = invoke("deliberate", "--base-url", fake.base_url, "--json", "--retries", "0", *args)
    return result.exit_code, json.loads(result.stdout)


def verdict_personas(fake: FakeOpenAI) -> list[str | None]:
    return [r.persona for r in fake.requests if r.persona in ("arbiter", "pragmatist", "security")]


@pytest.mark.parametrize("speculative", [False, True], ids=["sequential", "speculative"])
def test_a_failed_arbiter_call_is_judged_by_the_fallback(
    fake: FakeOpenAI, project: Path, speculative: bool
) -> None:
    preset(project, "arbiter_fallback: [pragmatist, security]\n")
    fake.script("arbiter", *[BROKEN] * 4)
    fake.script("pragmatist", verdict(True, "Pragmatist's synthesis."))
    flags = ["--speculative"] if speculative else []
    code, doc = deliberate_json(fake, "--preset", "fb", *flags, "--rounds", "2", "q")
    assert code == 0, doc
    assert doc["stop_reason"] == "converged"
    assert doc["answer"]["judged_by"] == "pragmatist"
    assert doc["answer"]["text"] == "Pragmatist's synthesis."
    assert doc["arbiter_fallback"] == ["pragmatist", "security"]
    assert doc["rounds"][0]["arbiter"]["persona"] == "pragmatist"
    assert "security" not in verdict_personas(fake)


def test_an_unreadable_verdict_is_asked_twice_then_the_fallback_judges(
    fake: FakeOpenAI, project: Path
) -> None:
    preset(project, "arbiter_fallback: [pragmatist]\n")
    fake.script("arbiter", Reply(text="no JSON here"), Reply(text="still none"))
    fake.script("pragmatist", verdict(True, "Read at last."))
    result = invoke("deliberate", "--base-url", fake.base_url, "--preset", "fb", "q")
    assert result.exit_code == 0, result.output
    assert verdict_personas(fake) == ["arbiter", "arbiter", "pragmatist"]
    assert "Read at last." in result.stdout
    assert "Judged by pragmatist: the arbiter arbiter could not." in result.stdout


def test_only_when_every_judge_fails_is_the_result_partial(fake: FakeOpenAI, project: Path) -> None:
    preset(project, "arbiter_fallback: [pragmatist]\n")
    fake.script("arbiter", BROKEN)
    fake.script("pragmatist", BROKEN)
    code, doc = deliberate_json(fake, "--preset", "fb", "q")
    assert code == 3
    assert doc["stop_reason"] == "arbiter_failed"
    assert verdict_personas(fake) == ["arbiter", "pragmatist"]


def test_the_oracle_synthesis_falls_back_too(fake: FakeOpenAI, project: Path) -> None:
    preset(project, "arbiter_fallback: [pragmatist]\n")
    fake.script("arbiter", BROKEN)
    fake.script("pragmatist", Reply(text="A fallback synthesis."))
    args = ["oracle", "--base-url", fake.base_url, "--retries", "0", "--preset", "fb"]
    result = invoke(*args, "-p", "judge,critic", "--synthesize", "q")
    assert result.exit_code == 0, result.output
    assert "## Synthesis (pragmatist, for the arbiter arbiter)" in result.stdout
    fake.reset()
    fake.script("arbiter", BROKEN)
    fake.script("pragmatist", Reply(text="A fallback synthesis."))
    doc = json.loads(invoke(*args, "-p", "judge", "--synthesize", "--json", "q").stdout)
    assert doc["synthesis"]["persona"] == "pragmatist" and doc["exit_code"] == 0


def test_arbiter_fallback_is_checked_like_personas(fake: FakeOpenAI, project: Path) -> None:
    preset(project, "arbiter_fallback: [pragmatits]\n")
    result = invoke("deliberate", "--base-url", fake.base_url, "--preset", "fb", "q")
    assert result.exit_code == 2
    assert "arbiter_fallback" in result.stderr and "did you mean 'pragmatist'" in result.stderr
    preset(project, "arbiter_fallback: pragmatist\n")
    result = invoke("deliberate", "--base-url", fake.base_url, "--preset", "fb", "q")
    assert result.exit_code == 2 and "arbiter_fallback" in result.stderr
