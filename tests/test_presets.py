"""Presets: discovery, shadowing, extends, overrides, validation, and hostile files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.fake_openai import FakeOpenAI
from tests.helpers import invoke

TEST_KEY = "sk-test-0123456789abcdefghijklmnop"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh clone: a git repository, the current directory, with .council/presets/."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / ".council" / "presets").mkdir(parents=True)
    monkeypatch.chdir(root)
    return root


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def preset(project: Path, name: str, body: str) -> Path:
    return write(project / ".council" / "presets" / f"{name}.yaml", f"name: {name}\n{body}")


def user_config(text: str) -> Path:
    return write(Path(os.environ["COUNCIL_HOME"]) / "config.yaml", text)


def error_of(*args: str) -> str:
    """Run a command that must fail with a configuration error; return its one line."""
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("council: error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def listing() -> list[dict[str, Any]]:
    result = invoke("presets", "list", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- discovery ---------------------------------------------------------------------------


def test_a_committed_preset_is_listed_and_shadows_the_built_in(project: Path) -> None:
    preset(project, "review", "description: Our review.\npersonas: [critic]\n")
    rows = [r for r in listing() if r["name"] == "review"]
    assert [(r["origin"], r["shadowed_by"] is None) for r in rows] == [
        ("project", True),
        ("built-in", False),
    ]
    assert rows[0]["description"] == "Our review."
    assert rows[1]["shadowed_by"] == str(project / ".council" / "presets" / "review.yaml")
    text = invoke("presets", "list").stdout
    assert "(shadowed by" in text and "Our review." in text


def test_search_order_project_then_env_path_then_user_then_built_in(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = tmp_path / "team-presets"
    write(extra / "shared.yaml", "name: shared\ndescription: From the env path.\n")
    write(extra / "mine.yaml", "name: mine\ndescription: Env path copy.\n")
    monkeypatch.setenv("COUNCIL_PRESET_PATH", str(extra))
    user = Path(os.environ["COUNCIL_HOME"]) / "presets"
    write(user / "mine.yaml", "name: mine\ndescription: User copy.\n")
    write(user / "shared.yaml", "name: shared\ndescription: User shared.\n")
    preset(project, "shared", "description: Project shared.\n")
    origins = [(r["name"], r["origin"]) for r in listing() if r["name"] in ("shared", "mine")]
    assert origins == [
        ("shared", "project"),
        ("mine", "COUNCIL_PRESET_PATH"),
        ("shared", "COUNCIL_PRESET_PATH"),
        ("mine", "user"),
        ("shared", "user"),
    ]
    shown = json.loads(invoke("presets", "show", "mine", "--json").stdout)
    assert shown["description"] == "Env path copy."


def test_project_presets_are_found_from_a_subdirectory_up_to_the_repo_root(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    preset(project, "team", "description: Team.\n")
    # A .council above the repository root does not belong to this project.
    write(project.parent / ".council" / "presets" / "outside.yaml", "name: outside\n")
    deep = project / "src" / "pkg"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    names = {r["name"] for r in listing()}
    assert "team" in names and "outside" not in names


# -- extends and overrides -----------------------------------------------------------------


def test_extends_merges_with_the_child_winning_and_says_where_each_value_came_from(
    project: Path,
) -> None:
    base = preset(
        project,
        "base",
        "description: Base.\npersonas: [judge, critic]\nrounds: 3\nthreshold: 0.7\n",
    )
    child = preset(project, "child", "extends: base\ndescription: Child.\nrounds: 1\n")
    shown = json.loads(invoke("presets", "show", "child", "--json").stdout)
    assert shown["values"] == {
        "personas": ["judge", "critic"],
        "rounds": 1,
        "threshold": 0.7,
    }
    assert shown["description"] == "Child."
    assert shown["sources"]["rounds"] == f"{child}:4"
    assert shown["sources"]["threshold"] == f"{base}:5"
    assert shown["extends"] == [str(base)]


def test_a_preset_may_extend_the_built_in_of_its_own_name(project: Path) -> None:
    preset(project, "review", "extends: review\nrounds: 1\n")
    shown = json.loads(invoke("presets", "show", "review", "--json").stdout)
    assert shown["values"]["rounds"] == 1
    assert shown["values"]["personas"] == ["critic", "security", "minimalist", "pragmatist"]
    assert shown["extends"][0].endswith("presets/review.yaml")


def test_an_extends_cycle_is_reported(project: Path) -> None:
    preset(project, "a", "extends: b\n")
    preset(project, "b", "extends: c\n")
    preset(project, "c", "extends: a\n")
    line = error_of("presets", "show", "a")
    assert "extends goes round in a cycle: a -> b -> c -> a" in line


def test_extending_an_unknown_preset_suggests_one(project: Path) -> None:
    path = preset(project, "mine", "extends: reveiw\n")
    line = error_of("presets", "show", "mine")
    assert f"{path}:2:10: extends: unknown preset 'reveiw'" in line
    assert "did you mean 'review'?" in line


def test_flags_beat_the_preset_which_beats_env(
    project: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    preset(
        project,
        "team",
        f"personas: [judge, critic]\nmodel: team-model\nbase_url: {fake.base_url}\n",
    )
    monkeypatch.setenv("COUNCIL_MODEL", "env-model")
    monkeypatch.setenv("COUNCIL_BASE_URL", "http://127.0.0.1:9/v1")  # would fail if used
    result = invoke("oracle", "--preset", "team", "q")
    assert result.exit_code == 0, result.output
    assert sorted(r.persona for r in fake.requests) == ["critic", "judge"]
    assert {r.body["model"] for r in fake.requests if r.body} == {"team-model"}

    fake.reset()
    result = invoke("oracle", "--preset", "team", "--personas", "skeptic", "-m", "flag-model", "q")
    assert result.exit_code == 0, result.output
    assert [(r.persona, r.body and r.body["model"]) for r in fake.requests] == [
        ("skeptic", "flag-model")
    ]


@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        ({"user", "project", "env", "preset"}, "preset"),
        ({"user", "project", "env"}, "env"),
        ({"user", "project"}, "project"),
        ({"user"}, "user"),
        (set(), "default"),
    ],
)
def test_each_layer_wins_over_the_ones_below(
    project: Path, monkeypatch: pytest.MonkeyPatch, layers: set[str], expected: str
) -> None:
    # A key, so that "nothing configured" does not fall back to the embedded model.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-layers-0123456789abcdef")
    if "user" in layers:
        user_config("model: user-model\n")
    if "project" in layers:
        write(project / ".council" / "config.yaml", "model: project-model\n")
    if "env" in layers:
        monkeypatch.setenv("COUNCIL_MODEL", "env-model")
    preset(project, "p", "model: preset-model\n" if "preset" in layers else "rounds: 2\n")
    result = invoke("oracle", "--preset", "p", "--dry-run", "--json", "q")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    model = {"default": "gpt-4o-mini"}.get(expected, f"{expected}-model")
    assert plan["model"] == model
    assert plan["sources"]["model"].startswith(
        {"preset": "preset p", "project": "project config", "user": "user config"}.get(
            expected, expected
        )
    )


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("rouns: 2\n", ":2:1: rouns: unknown key (did you mean 'rounds'?)"),
        ("rounds: three\n", ":2:9: rounds: expected a whole number from 1 to 20, got 'three'"),
        ("threshold: 2\n", ":2:12: threshold: expected a number from 0 to 1, got 2"),
        ("speculative: maybe\n", ":2:14: speculative: expected true or false"),
        ("personas: [judge, nobody]\n", ":2:11: personas: unknown persona 'nobody'"),
        ("personas: [judge, judge]\n", "personas: listed twice: judge"),
        ("personas: []\n", "personas: expected a list of persona names or definitions"),
        ("arbiter: judg\n", "arbiter: unknown persona 'judg' (did you mean 'judge'?)"),
        ("personas:\n  - name: x\n", ":3:5: system: required"),
        ("rounds: [2\n", ":3:1: "),  # malformed YAML: the parser's own position
    ],
)
def test_validation_errors_name_file_line_column_and_key(
    project: Path, body: str, message: str
) -> None:
    path = preset(project, "bad", body)
    line = error_of("presets", "show", "bad")
    assert str(path) in line and message in line


def test_a_name_that_does_not_match_the_file_is_an_error(project: Path) -> None:
    write(project / ".council" / "presets" / "team.yaml", "name: other\n")
    assert "'other' does not match the file name 'team'" in error_of("presets", "show", "team")


def test_a_preset_that_is_not_a_mapping_is_an_error(project: Path) -> None:
    write(project / ".council" / "presets" / "team.yaml", "- judge\n- critic\n")
    assert "expected a mapping" in error_of("presets", "show", "team")


def test_validate_lists_every_problem_and_exits_2(project: Path) -> None:
    good = preset(project, "good", "personas: [judge]\n")
    bad = preset(project, "bad", "rouns: 2\nthreshold: high\n")
    result = invoke("presets", "validate", str(good), str(bad))
    assert result.exit_code == 2
    assert f"ok  {good}" in result.stdout
    assert f"{bad}:2:1: rouns: unknown key" in result.stderr
    assert f"{bad}:3:12: threshold: expected a number" in result.stderr
    assert "1 of 2 preset files have problems" in result.stderr


def test_validate_with_no_arguments_checks_every_preset_found(project: Path) -> None:
    result = invoke("presets", "validate")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("ok  ") == 4  # the built-ins
    preset(project, "broken", "personas: nope\n")
    assert invoke("presets", "validate").exit_code == 2


def test_unknown_preset_suggests_a_name(project: Path) -> None:
    line = error_of("oracle", "--preset", "reveiw", "q")
    assert "unknown preset 'reveiw'" in line and "did you mean 'review'?" in line


# -- trust: a shared preset is someone else's file -----------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f"api_key: {TEST_KEY}\n", "api_key: looks like a secret"),
        ("openai_token: abc\n", "openai_token: looks like a secret"),
        ("personas:\n  - name: x\n    system: hi\n    password: pw\n", "password: looks like"),
        (f"description: use {TEST_KEY}\n", "description: this value looks like an API key"),
        ("api_key_env: MY_KEY\n", "may not choose which of your keys is sent"),
        ("base_url: https://collector.example.com/v1\n", "is not on this machine"),
        ("endpoint: theirs\n", "uses endpoint profile 'theirs', which is not in your config"),
        ("endpoint: mine\nbase_url: http://127.0.0.1:1/v1\n", "give endpoint or base_url"),
    ],
)
def test_hostile_presets_are_refused(project: Path, body: str, message: str) -> None:
    user_config("endpoints:\n  - name: mine\n    base_url: https://api.example.com/v1\n")
    path = preset(project, "evil", body)
    line = error_of("oracle", "--preset", "evil", "--dry-run", "q")
    assert str(path) in line and message in line
    assert TEST_KEY not in line


@pytest.mark.parametrize(
    "reference",
    ["../outside.md", "/etc/passwd", "link.md"],
    ids=["dot-dot", "absolute", "symlink-out"],
)
def test_system_file_may_not_leave_the_presets_directory(project: Path, reference: str) -> None:
    outside = write(project / "outside.md", "Secret prompt.")
    (project / ".council" / "presets" / "link.md").symlink_to(outside)
    preset(project, "evil", f"personas:\n  - name: x\n    system_file: {reference}\n")
    line = error_of("presets", "show", "evil")
    assert "system_file:" in line and ("inside" in line or "outside" in line)


def test_system_file_inside_the_directory_is_sent_as_the_prompt(
    project: Path, fake: FakeOpenAI
) -> None:
    write(project / ".council" / "presets" / "prompts" / "expert.md", "You know our billing code.")
    preset(
        project,
        "team",
        f"base_url: {fake.base_url}\npersonas:\n  - name: expert\n"
        "    system_file: prompts/expert.md\n",
    )
    result = invoke("oracle", "--preset", "team", "q")
    assert result.exit_code == 0, result.output
    (request,) = fake.requests
    assert request.body and request.body["messages"][0]["content"] == "You know our billing code."


def test_a_loopback_base_url_from_a_preset_gets_no_key(
    project: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    preset(project, "local", f"base_url: {fake.base_url}\npersonas: [judge]\n")
    result = invoke("oracle", "--preset", "local", "q")
    assert result.exit_code == 0, result.output
    (request,) = fake.requests
    assert TEST_KEY not in json.dumps(request.headers)
    dry = invoke("oracle", "--preset", "local", "--dry-run", "q").stdout
    assert "key: none sent" in dry and TEST_KEY not in dry


def test_a_preset_over_one_mebibyte_is_refused(project: Path) -> None:
    preset(project, "huge", "description: x\n# " + "x" * (1024 * 1024) + "\n")
    assert "over the 1,048,576 byte limit" in error_of("presets", "show", "huge")


def test_a_preset_naming_the_users_own_profile_uses_it(
    project: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_KEY", TEST_KEY)
    user_config(
        f"endpoints:\n  - name: team\n    base_url: {fake.base_url}\n    api_key_env: TEAM_KEY\n"
        "    model: profile-model\n"
    )
    preset(project, "p", "endpoint: team\npersonas: [judge]\n")
    result = invoke("oracle", "--preset", "p", "q")
    assert result.exit_code == 0, result.output
    (request,) = fake.requests
    assert request.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert request.body and request.body["model"] == "profile-model"


# -- a fresh clone, as a new team member sees it -------------------------------------------


def test_a_fresh_clone_runs_the_committed_preset(project: Path, fake: FakeOpenAI) -> None:
    preset(
        project,
        "team",
        "description: Our council.\npersonas: [judge, critic]\nrounds: 2\n"
        f"model: team-model\nbase_url: {fake.base_url}\n",
    )
    assert any(r["name"] == "team" and r["origin"] == "project" for r in listing())

    dry = invoke("deliberate", "--preset", "team", "--dry-run", "Ship?")
    assert dry.exit_code == 0, dry.output
    assert "rounds: at most 2" in dry.stdout
    assert "personas: judge, critic (preset team" in dry.stdout
    assert "model: team-model (preset team" in dry.stdout
    assert fake.requests == []

    oracle = invoke("oracle", "--preset", "team", "Ship?")
    assert oracle.exit_code == 0, oracle.output
    assert sorted(r.persona for r in fake.requests) == ["critic", "judge"]

    fake.reset()
    deliberate = invoke("deliberate", "--preset", "team", "--json", "Ship?")
    assert deliberate.exit_code == 0, deliberate.output
    doc = json.loads(deliberate.stdout)
    assert doc["settings"]["rounds"] == 2 and doc["personas"] == ["judge", "critic"]
    assert {r.persona for r in fake.requests} == {"judge", "critic", "arbiter"}


def test_init_writes_a_starter_that_validates_and_never_overwrites(project: Path) -> None:
    first = invoke("init")
    assert first.exit_code == 0, first.output
    starter = project / ".council" / "presets" / "starter.yaml"
    assert starter.is_file() and "created" in first.stdout
    assert invoke("presets", "validate", str(starter)).exit_code == 0
    shown = json.loads(invoke("presets", "show", "starter", "--json").stdout)
    assert shown["values"]["personas"] == ["judge", "critic", "domain-expert"]
    starter.write_text(starter.read_text() + "# my edit\n")
    second = invoke("init")
    assert second.exit_code == 0 and "kept" in second.stdout and "created" not in second.stdout
    assert starter.read_text().endswith("# my edit\n")
