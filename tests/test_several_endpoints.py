"""Issue 14, point 3: one council, several endpoints: each persona's calls go to its own."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import invoke


@pytest.fixture
def second() -> Iterator[FakeOpenAI]:
    """A second fake server: another endpoint, on another port."""
    with FakeOpenAI() as server:
        yield server


def profiles(first: FakeOpenAI, second: FakeOpenAI) -> None:
    (Path(os.environ["COUNCIL_HOME"]) / "config.yaml").write_text(
        "endpoints:\n"
        f"  - name: one\n    base_url: {first.base_url}\n    model: model-one\n"
        f"  - name: two\n    base_url: {second.base_url}\n    model: model-two\n"
    )


def personas_seen(server: FakeOpenAI) -> set[str | None]:
    return {r.persona for r in server.requests}


def test_persona_at_profile_sends_each_persona_to_its_endpoint(
    fake: FakeOpenAI, second: FakeOpenAI
) -> None:
    profiles(fake, second)
    args = ["oracle", "--endpoint", "one", "-p", "judge,critic@two", "--json", "q"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert personas_seen(fake) == {"judge"}
    assert personas_seen(second) == {"critic"}
    assert [r.body["model"] for r in second.requests if r.body] == ["model-two"]
    doc = json.loads(result.stdout)
    placed = {a["persona"]: (a["model"], a["endpoint"]) for a in doc["answers"]}
    assert placed == {
        "judge": ("model-one", fake.base_url.split("/")[2]),
        "critic": ("model-two", second.base_url.split("/")[2]),
    }
    shown = invoke(*args[:-2], "q").stdout
    assert f"model-two @ {second.base_url.split('/')[2]}" in shown
    # The history says where each call went, not only where the run's own endpoint is.
    hosts = {
        call["persona"]: call["endpoint_host"]
        for call in json.loads(invoke("history", "export").stdout.splitlines()[0])["calls"]
    }
    assert hosts == {"judge": fake.base_url.split("/")[2], "critic": second.base_url.split("/")[2]}


def test_a_preset_persona_and_the_arbiter_name_their_endpoints(
    fake: FakeOpenAI, second: FakeOpenAI, project: Path
) -> None:
    profiles(fake, second)
    preset = project / ".council" / "presets" / "mixed.yaml"
    preset.parent.mkdir(parents=True)
    preset.write_text(
        "name: mixed\n"
        "endpoint: one\n"
        "personas:\n"
        "  - judge\n"
        "  - name: local-critic\n    system: Find the flaw.\n    endpoint: two\n"
        "arbiter: arbiter@two\n"
    )
    result = invoke("deliberate", "--preset", "mixed", "--rounds", "2", "--json", "q")
    assert result.exit_code == 0, result.output
    assert personas_seen(fake) == {"judge"}
    assert personas_seen(second) == {"local-critic", "arbiter"}


def test_a_shared_preset_cannot_give_a_persona_a_url(project: Path, fake: FakeOpenAI) -> None:
    preset = project / ".council" / "presets" / "bad.yaml"
    preset.parent.mkdir(parents=True)
    preset.write_text(
        "name: bad\npersonas:\n  - name: p\n    system: s\n    endpoint: https://evil.example/v1\n"
    )
    result = invoke("oracle", "--base-url", fake.base_url, "--preset", "bad", "q")
    assert result.exit_code == 2 and "endpoint" in result.stderr


def test_an_unknown_profile_is_one_line(fake: FakeOpenAI) -> None:
    result = invoke("oracle", "--base-url", fake.base_url, "-p", "judge@nowhere", "q")
    assert result.exit_code == 2
    assert "no endpoint profile 'nowhere' (persona judge)" in result.stderr


def test_each_endpoint_has_its_own_limit(fake: FakeOpenAI, second: FakeOpenAI) -> None:
    profiles(fake, second)
    fake.default = second.default = Reply(gate="go")
    # One call at a time on `one` must not hold back the call on `two`.
    args = ["oracle", "--endpoint", "one", "--max-concurrency", "1", "-p", "judge,critic@two", "q"]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(invoke, *args)
        fake.wait_for(lambda f: len(f.requests) >= 1)
        second.wait_for(lambda f: len(f.requests) >= 1)
        fake.release("go")
        second.release("go")
        assert running.result(timeout=30).exit_code == 0


def test_a_council_of_models_runs_each_persona_once_per_model(
    fake: FakeOpenAI, second: FakeOpenAI
) -> None:
    profiles(fake, second)
    args = ["oracle", "--endpoint", "one", "-m", "m1", "-m", "org/m2@two", "-p", "judge,critic"]
    result = invoke(*args, "--json", "q")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    placed = {a["persona"]: a["model"] for a in doc["answers"]}
    assert placed == {
        "judge · m1": "m1",
        "critic · m1": "m1",
        "judge · org/m2": "org/m2",
        "critic · org/m2": "org/m2",
    }
    assert personas_seen(fake) == {"judge · m1", "critic · m1"}
    assert {r.body["model"] for r in second.requests if r.body} == {"org/m2"}
    assert personas_seen(second) == {"judge · org/m2", "critic · org/m2"}


def test_a_council_of_models_without_personas_has_one_plain_member_per_model(
    fake: FakeOpenAI,
) -> None:
    result = invoke("oracle", "--base-url", fake.base_url, "-m", "a", "-m", "b", "--json", "q")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [(a["persona"], a["model"]) for a in doc["answers"]] == [("a", "a"), ("b", "b")]
    assert {r.body["model"] for r in fake.requests if r.body} == {"a", "b"}


def test_one_model_with_a_comma_is_still_one_model_name(fake: FakeOpenAI) -> None:
    result = invoke("oracle", "--base-url", fake.base_url, "-m", "a,b", "-p", "judge", "q")
    assert result.exit_code == 0, result.output
    assert [r.body["model"] for r in fake.requests if r.body] == ["a,b"]
