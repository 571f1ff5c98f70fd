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
from typing import Any

import pytest

from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import council_process, interrupt_after_event, interrupt_when, invoke

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


# -- 7. finding what went wrong, and going on ---------------------------------------------

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")


def verdict(converged: bool, synthesis: str = "Synthesis.") -> Reply:
    data = {"converged": converged, "confidence": 0.9, "synthesis": synthesis, "dissent": []}
    return Reply(text=json.dumps(data))


def newest_run() -> dict[str, Any]:
    result = invoke("history", "--json", "-n", "1")
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.stdout)
    return run


def finished(persona: str, round_number: int) -> Any:
    return lambda e: (
        e.get("type") == "call_finished"
        and e.get("persona") == persona
        and e.get("round") == round_number
    )


def test_show_of_a_failed_run_prints_its_errors_and_its_exit_code(fake: FakeOpenAI) -> None:
    fake.default = Reply(status=400, error_message="model \x1b]52;c;cGF3bmVk\x07is busy\nnow")
    failed = invoke("oracle", "--base-url", fake.base_url, "-p", "judge,critic", QUESTION)
    assert failed.exit_code == 1
    run = newest_run()

    shown = invoke("show", run["id"])
    assert shown.exit_code == 0  # showing it went fine; the run's own code is in the text
    assert shown.stdout == ""  # exactly what the run printed: nothing
    lines = shown.stderr.splitlines()
    assert lines[0].startswith(f"run {run['id']} (oracle, {run['started_at']}): failed")
    assert lines[0].endswith("exit code 1")
    for persona in ("judge", "critic"):
        (line,) = [x for x in lines if x.startswith(f"  {persona}, round 1: bad_request: ")]
        assert "is busy now" in line  # the server's message, on one line
    assert "\x1b" not in shown.stderr and "\x07" not in shown.stderr
    assert "go on with" not in shown.stderr  # an oracle run cannot be resumed

    document = json.loads(invoke("show", run["id"], "--json").stdout)
    assert document["exit_code"] == 1 and document["status"] == "failed"
    assert {e["persona"] for e in document["errors"]} == {"judge", "critic"}


def test_show_of_a_run_kept_without_texts_still_names_its_errors(fake: FakeOpenAI) -> None:
    fake.script("critic", Reply(status=400))
    args = ("oracle", "--no-store-text", "--base-url", fake.base_url, "-p", "judge,critic")
    assert invoke(*args, QUESTION).exit_code == 3
    run = newest_run()
    shown = invoke("show", run["id"])
    assert shown.exit_code == 0
    assert "partial, exit code 3" in shown.stderr
    assert "  critic, round 1: bad_request: (message not recorded)" in shown.stderr
    shown_json = json.loads(invoke("show", run["id"], "--json").stdout)
    assert ISO_UTC.match(shown_json["run"]["started_at"])
    assert shown_json["errors"] == [
        {
            "persona": "critic",
            "round": 1,
            "role": "persona",
            "error_kind": "bad_request",
            "message": None,
        }
    ]


def test_show_of_a_successful_run_adds_nothing(fake: FakeOpenAI) -> None:
    assert invoke("oracle", "--base-url", fake.base_url, "-p", "judge", QUESTION).exit_code == 0
    shown = invoke("show", newest_run()["id"])
    assert shown.exit_code == 0 and shown.stderr == "" and "judge says" in shown.stdout


def interrupted_deliberation(fake: FakeOpenAI) -> tuple[str, str]:
    """A deliberation stopped by Ctrl-C in round 2 (a real process); its stderr and run id."""
    fake.script("arbiter", verdict(False, "Round one."), round=1)
    fake.script("critic", Reply(hang=True), round=2)
    process = council_process(
        "deliberate", "--base-url", fake.base_url, "-p", "judge,critic", "--jsonl", QUESTION
    )
    _, stderr = interrupt_after_event(process, finished("judge", 2))
    assert process.returncode == 130
    return stderr, newest_run()["id"]


def test_ctrl_c_of_a_deliberation_prints_the_run_id_and_how_to_go_on(fake: FakeOpenAI) -> None:
    stderr, run_id = interrupted_deliberation(fake)
    assert f"council deliberate --resume {run_id}" in stderr
    assert f"council resume {run_id}" in stderr
    shown = invoke("show", run_id)
    assert "interrupted, exit code 130" in shown.stderr
    assert f"go on with: council resume {run_id}" in shown.stderr


def test_ctrl_c_of_an_oracle_says_where_to_see_what_finished(fake: FakeOpenAI) -> None:
    fake.script("critic", Reply(hang=True))
    process = council_process("oracle", "--base-url", fake.base_url, "-p", "judge,critic", "q")
    _, stderr = interrupt_when(
        process,
        fake,
        lambda f: (
            any(r.persona == "critic" for r in f.requests)
            and any(r.persona == "judge" and r.status == 200 for r in f.requests)
        ),
    )
    assert process.returncode == 130
    run_id = newest_run()["id"]
    assert f"see it with: council show {run_id}" in stderr and "--resume" not in stderr


def test_council_resume_goes_on_and_a_second_resume_says_it_was_resumed_before(
    fake: FakeOpenAI,
) -> None:
    _, run_id = interrupted_deliberation(fake)
    fake.reset()
    fake.script("arbiter", verdict(True, "Agreed at last."), round=2)
    resumed = invoke("resume", run_id, "--base-url", fake.base_url, "--json")
    assert resumed.exit_code == 0, resumed.output
    assert sorted((r.persona, r.round) for r in fake.requests) == [
        ("arbiter", "2"),
        ("critic", "2"),
    ]
    assert json.loads(resumed.stdout)["answer"]["text"] == "Agreed at last."
    assert "already resumed" not in resumed.stderr
    first_resume = newest_run()

    # Again: said before anything is sent (a dry run sends nothing and says it too).
    fake.reset()
    dry = invoke("resume", run_id, "--base-url", fake.base_url, "--dry-run")
    assert dry.exit_code == 0 and fake.requests == []
    (line,) = [x for x in dry.stderr.splitlines() if "already resumed" in x]
    assert line == (
        f"council: run {run_id} was already resumed as run {first_resume['id']} at "
        f"{first_resume['started_at']} (ok); resuming it again asks its remaining calls again"
    )
    again = invoke("deliberate", "--resume", run_id, "--base-url", fake.base_url)
    assert again.exit_code == 0 and line in again.stderr


def test_council_resume_of_an_oracle_run_says_how_to_see_it(fake: FakeOpenAI) -> None:
    assert invoke("oracle", "--base-url", fake.base_url, "-p", "judge", "q").exit_code == 0
    run_id = newest_run()["id"]
    result = invoke("resume", run_id)
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "only deliberations resume" in line and f"council show {run_id}" in line
