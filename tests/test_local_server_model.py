"""A profile without `model:` on a server on this machine asks it which model it serves."""

from __future__ import annotations

import os
from pathlib import Path

from tests.fake_openai import FakeOpenAI
from tests.helpers import invoke


def profile(fake: FakeOpenAI, extra: str = "") -> None:
    config = Path(os.environ["COUNCIL_HOME"]) / "config.yaml"
    config.write_text(f"endpoints:\n  - name: llama\n    base_url: {fake.base_url}\n{extra}")


def models_asked(fake: FakeOpenAI) -> list[str | None]:
    return [r.body["model"] if r.body else None for r in fake.requests]


def test_the_only_model_a_local_server_lists_is_used_and_said(fake: FakeOpenAI) -> None:
    fake.listed_models = ["qwen2.5-7b-instruct"]
    profile(fake)
    result = invoke("oracle", "--endpoint", "llama", "-p", "judge,critic", "q")
    assert result.exit_code == 0, result.output
    assert models_asked(fake) == ["qwen2.5-7b-instruct"] * 2
    said = [line for line in result.stderr.splitlines() if "serves one model" in line]
    assert said == [
        f"council: {fake.base_url.split('/')[2]} serves one model, qwen2.5-7b-instruct: "
        "using it (-m NAME to choose)"
    ]


def test_several_models_are_listed_in_the_error(fake: FakeOpenAI) -> None:
    fake.listed_models = ["llama3.1:8b", "mistral:7b", "qwen2.5:14b"]
    profile(fake)
    result = invoke("oracle", "--endpoint", "llama", "-p", "judge", "q")
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "serves 3 models and none was chosen: llama3.1:8b, mistral:7b, qwen2.5:14b" in line
    assert "-m llama3.1:8b" in line
    assert fake.requests == []  # nothing was asked of a model


def test_a_chosen_model_is_not_second_guessed(fake: FakeOpenAI) -> None:
    fake.listed_models = ["a", "b"]
    profile(fake, "    model: b\n")
    assert invoke("oracle", "--endpoint", "llama", "-p", "judge", "q").exit_code == 0
    profile(fake)
    assert invoke("oracle", "--endpoint", "llama", "-m", "a", "-p", "judge", "q").exit_code == 0
    assert models_asked(fake) == ["b", "a"]
    assert fake.models_requests == 0
    # A dry run sends nothing, not even the question of which models there are.
    dry = invoke("oracle", "--endpoint", "llama", "-p", "judge", "--dry-run", "q")
    assert dry.exit_code == 0 and fake.models_requests == 0
