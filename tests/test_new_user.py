"""What a new user meets: the README's team preset without a profile, and finding what went wrong.

A teammate who clones a repository with the README's shared preset has no `openrouter`
profile of their own: that is their setup, not a broken preset. A failed or stopped
run can be inspected (`council show`) and continued (`council resume`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI
from tests.helpers import invoke

README = Path(__file__).resolve().parents[1] / "README.md"
QUESTION = "Is this migration safe?"


def readme_team_preset(project: Path) -> Path:
    """The README's team preset, exactly as written, committed in `project` with its prompt."""
    example = r"```yaml\n(# \.council/presets/review\.yaml\n.*?)```"
    found = re.search(example, README.read_text(), re.S)
    assert found, "the README's team preset example moved"
    presets = project / ".council" / "presets"
    (presets / "prompts").mkdir(parents=True)
    (presets / "prompts" / "dba.md").write_text("You review database changes.\n")
    path = presets / "review.yaml"
    path.write_text(found.group(1))
    return path


def config_path() -> Path:
    return Path(os.environ["COUNCIL_HOME"]) / "config.yaml"


def one_error_line(result: object) -> str:
    stderr = result.stderr  # type: ignore[attr-defined]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("council: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


# -- 3. a shared preset naming a profile the user does not have ---------------------------


def test_the_readme_team_preset_validates_with_a_warning_for_a_user_with_no_profiles(
    project: Path,
) -> None:
    path = readme_team_preset(project)
    result = invoke("presets", "validate")
    assert result.exit_code == 0, result.output
    assert f"ok  {path}" in result.stdout
    (warning,) = [line for line in result.stderr.splitlines() if "openrouter" in line]
    assert warning.startswith(f"council: warning: {path}:")
    assert "preset 'review' uses endpoint profile 'openrouter'" in warning
    assert str(config_path()) in warning and "--base-url URL" in warning

    strict = invoke("presets", "validate", "--strict")
    assert strict.exit_code == 2
    assert f"council: error: {path}:" in strict.stderr and "1 of 5 preset files" in strict.stderr


def test_presets_show_shows_the_preset_with_a_warning_line(project: Path) -> None:
    readme_team_preset(project)
    result = invoke("presets", "show", "review")
    assert result.exit_code == 0, result.output
    assert re.search(r"^endpoint: +openrouter ", result.stdout, re.M)
    (warning,) = result.stderr.strip().splitlines()
    assert warning.startswith("council: warning: ") and "'openrouter'" in warning
    shown = json.loads(invoke("presets", "show", "review", "--json").stdout)
    assert shown["values"]["endpoint"] == "openrouter" and len(shown["warnings"]) == 1


def test_a_run_without_an_overriding_flag_says_in_one_line_how_to_add_the_profile(
    project: Path, fake: FakeOpenAI
) -> None:
    path = readme_team_preset(project)
    result = invoke("deliberate", "--preset", "review", "--rounds", "1", QUESTION)
    assert result.exit_code == 2
    line = one_error_line(result)
    assert f"preset review ({path}:" in line and "uses endpoint profile 'openrouter'" in line
    assert f"not in your config ({config_path()})" in line
    assert "add it under endpoints:" in line and "--endpoint NAME / --base-url URL" in line
    assert fake.requests == []


@pytest.mark.parametrize("command", ["oracle", "deliberate"])
def test_base_url_wins_before_the_preset_profile_is_looked_up(
    project: Path, fake: FakeOpenAI, command: str
) -> None:
    readme_team_preset(project)
    result = invoke(command, "--preset", "review", "--base-url", fake.base_url, QUESTION)
    assert result.exit_code == 0, result.output
    assert "openrouter" not in result.stderr
    asked = {r.persona for r in fake.requests}
    assert {"critic", "security", "dba"} <= asked
    # Everything else still comes from the preset.
    assert {r.body["model"] for r in fake.requests if r.body} == {"openai/gpt-4o-mini"}


def test_an_endpoint_flag_naming_the_users_own_profile_wins_too(
    project: Path, fake: FakeOpenAI
) -> None:
    readme_team_preset(project)
    config_path().write_text(f"endpoints:\n  - name: mine\n    base_url: {fake.base_url}\n")
    result = invoke("oracle", "--preset", "review", "--endpoint", "mine", "--dry-run", QUESTION)
    assert result.exit_code == 0, result.output
    assert fake.base_url.split("//")[1].split("/")[0] in result.stdout
    assert invoke("oracle", "--preset", "review", "--endpoint", "mine", QUESTION).exit_code == 0
    assert fake.requests


def test_a_project_config_naming_a_missing_profile_fails_only_the_runs_it_would_route(
    project: Path, fake: FakeOpenAI
) -> None:
    (project / ".council").mkdir()
    (project / ".council" / "config.yaml").write_text("endpoint: openrouter\nrounds: 1\n")
    line = one_error_line(invoke("oracle", QUESTION))
    assert "project config" in line and "uses endpoint profile 'openrouter'" in line
    assert invoke("oracle", "--base-url", fake.base_url, QUESTION).exit_code == 0
    assert invoke("personas", "list").exit_code == 0


def test_a_persona_on_a_missing_profile_is_a_warning_that_no_flag_hides(project: Path) -> None:
    presets = project / ".council" / "presets"
    presets.mkdir(parents=True)
    (presets / "team.yaml").write_text("name: team\npersonas: [judge, critic@ollama]\n")
    result = invoke("presets", "validate")
    assert result.exit_code == 0
    (warning,) = [line for line in result.stderr.splitlines() if "ollama" in line]
    assert "persona 'critic' of preset 'team' uses endpoint profile 'ollama'" in warning
    # Only the run's own endpoint is overridden by a flag: this member's is not.
    assert "--base-url" not in warning


def test_the_readme_quick_start_works_for_a_user_with_no_profiles(
    project: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`export OPENAI_API_KEY=…; council oracle --personas judge,critic,skeptic "…"` (the
    fake server stands in for api.openai.com: OPENAI_BASE_URL)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-new-user-0123456789")
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    assert not config_path().exists()
    result = invoke("oracle", "--personas", "judge,critic,skeptic", "Should we rewrite it?")
    assert result.exit_code == 0, result.output
    assert {r.persona for r in fake.requests} == {"judge", "critic", "skeptic"}
