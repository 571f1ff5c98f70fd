"""The user's config (endpoint profiles), the project's config, and the commands that show them."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import invoke

TEST_KEY = "sk-test-abcdefghijklmnopqrstuvwxyz012345"
PROFILE_T = "endpoints:\n  - name: t\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def user_config(text: str) -> Path:
    return write(Path(os.environ["COUNCIL_HOME"]) / "config.yaml", text)


def profile(fake: FakeOpenAI, name: str = "team", extra: str = "") -> str:
    return f"  - name: {name}\n    base_url: {fake.base_url}\n    api_key_env: TEAM_KEY\n{extra}"


def one_line_error(result: object, code: int = 2) -> str:
    assert result.exit_code == code, result.output  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("council: error: ")
    return lines[0]


def test_config_path_is_in_council_home() -> None:
    result = invoke("config", "path")
    assert result.exit_code == 0
    assert result.stdout.strip() == str(Path(os.environ["COUNCIL_HOME"]) / "config.yaml")


def test_an_endpoint_profile_sends_its_key_headers_and_model(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, project: Path
) -> None:
    monkeypatch.setenv("TEAM_KEY", TEST_KEY)
    user_config(
        "endpoints:\n"
        + profile(fake, extra="    model: profile-model\n    headers: {X-Title: council}\n")
    )
    result = invoke("oracle", "--endpoint", "team", "-p", "judge", "q")
    assert result.exit_code == 0, result.output
    (request,) = fake.requests
    assert request.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert request.headers["x-title"] == "council"
    assert request.body and request.body["model"] == "profile-model"
    # A flag still beats the profile's default model.
    fake.reset()
    assert invoke("oracle", "-e", "team", "-p", "judge", "-m", "other", "q").exit_code == 0
    assert fake.requests[0].body and fake.requests[0].body["model"] == "other"


def test_default_endpoint_is_used_below_env_and_presets(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, project: Path
) -> None:
    monkeypatch.setenv("TEAM_KEY", TEST_KEY)
    user_config("endpoints:\n" + profile(fake) + "default_endpoint: team\n")
    dry = json.loads(invoke("oracle", "--dry-run", "--json", "q").stdout)
    assert dry["endpoint"]["base_url"] == fake.base_url
    assert dry["sources"]["endpoint"].startswith("user config")
    # Ambient env beats the user's default...
    monkeypatch.setenv("COUNCIL_BASE_URL", "http://127.0.0.1:7/v1")
    dry = json.loads(invoke("oracle", "--dry-run", "--json", "q").stdout)
    assert dry["endpoint"]["base_url"] == "http://127.0.0.1:7/v1"
    # ...and a preset the user chose beats ambient env.
    write(project / ".council" / "presets" / "p.yaml", "name: p\nendpoint: team\n")
    dry = json.loads(invoke("oracle", "--preset", "p", "--dry-run", "--json", "q").stdout)
    assert dry["endpoint"]["base_url"] == fake.base_url
    assert dry["sources"]["endpoint"].startswith("preset p")


def test_unknown_endpoint_suggests_a_profile(fake: FakeOpenAI, project: Path) -> None:
    user_config("endpoints:\n" + profile(fake))
    line = one_line_error(invoke("oracle", "--endpoint", "teem", "q"))
    assert "no endpoint profile 'teem'" in line and "did you mean 'team'?" in line


def test_endpoint_and_base_url_together_are_a_usage_error(project: Path) -> None:
    line = one_line_error(invoke("oracle", "-e", "x", "--base-url", "http://127.0.0.1:1/v1", "q"))
    assert "--endpoint and --base-url are exclusive" in line


def test_a_key_in_the_user_config_is_refused_without_echoing_it(project: Path) -> None:
    path = user_config(
        f"endpoints:\n  - name: t\n    base_url: https://x.example/v1\n    api_key: {TEST_KEY}\n"
    )
    line = one_line_error(invoke("config", "show"))
    assert f"{path}:4:5: api_key: looks like a secret" in line
    assert TEST_KEY not in line


def test_an_authorization_header_in_a_profile_is_refused(project: Path) -> None:
    user_config(
        "endpoints:\n  - name: t\n    base_url: https://x.example/v1\n"
        "    headers: {Authorization: Bearer abc}\n"
    )
    assert "Authorization: looks like a secret" in one_line_error(invoke("endpoints", "list"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "endpoints:\n  - name: t\n    base_url: ftp://x\n",
            ":3:15: base_url: expected an http(s) URL",
        ),
        (
            "endpoints:\n  - name: t\n    base_url: https://x/v1\n    api_key_env: my-key\n",
            "api_key_env: expected the NAME",
        ),
        (
            "endpoints:\n  - name: t\n    base_url: https://x/v1\n  - name: t\n    base_url: https://y/v1\n",
            "profile 't' is defined twice",
        ),
        ("default_endpoint: nowhere\n", "default_endpoint: no profile 'nowhere'"),
        ("rounds: 0\n", ":1:9: rounds: expected a whole number from 1 to 20"),
        ("endpionts: []\n", "endpionts: unknown key (did you mean 'endpoints'?)"),
    ],
)
def test_user_config_errors_name_file_line_and_key(project: Path, text: str, message: str) -> None:
    path = user_config(text)
    line = one_line_error(invoke("config", "show"))
    assert str(path) in line and message in line


def test_config_show_gives_every_source_and_never_the_key(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, project: Path
) -> None:
    monkeypatch.setenv("TEAM_KEY", TEST_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    user_config("endpoints:\n" + profile(fake) + "default_endpoint: team\nrounds: 4\n")
    write(project / ".council" / "config.yaml", "threshold: 0.6\n")
    result = invoke("config", "show")
    assert result.exit_code == 0, result.output
    assert TEST_KEY not in result.output
    assert "$TEAM_KEY (set; the value is never shown)" in result.stdout
    data = json.loads(invoke("config", "show", "--json").stdout)
    assert TEST_KEY not in json.dumps(data)
    settings = data["settings"]
    assert settings["rounds"]["value"] == 4 and settings["rounds"]["source"].startswith("user")
    assert settings["threshold"]["source"].startswith("project config")
    assert settings["base_url"]["value"] == fake.base_url
    assert settings["model"]["source"] == "default"
    assert data["files"]["project_config"] == str(project / ".council" / "config.yaml")


def test_a_project_config_may_not_define_endpoints_or_send_keys_away(project: Path) -> None:
    config = write(project / ".council" / "config.yaml", "endpoints: []\n")
    assert "belongs in each user's own config" in one_line_error(invoke("config", "show"))
    config.write_text("base_url: https://collector.example.com/v1\n")
    line = one_line_error(invoke("oracle", "--dry-run", "q"))
    assert f"{config}:1:11: base_url:" in line and "is not on this machine" in line


def test_endpoints_list_shows_profiles_and_whether_keys_are_set(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, project: Path
) -> None:
    assert "no endpoint profiles yet" in invoke("endpoints", "list").stdout
    user_config(
        "endpoints:\n" + profile(fake) + profile(fake, "other") + "default_endpoint: team\n"
    )
    listed = invoke("endpoints", "list").stdout
    assert "team" in listed and "$TEAM_KEY NOT SET" in listed and "(default)" in listed
    monkeypatch.setenv("TEAM_KEY", TEST_KEY)
    rows = json.loads(invoke("endpoints", "list", "--json").stdout)
    assert [r["name"] for r in rows] == ["team", "other", "local"] and rows[0][
        "api_key_set"
    ] is True
    assert rows[2]["builtin"] is True
    assert TEST_KEY not in json.dumps(rows)


def test_endpoints_check_lists_models_and_makes_one_tiny_call(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, project: Path
) -> None:
    monkeypatch.setenv("TEAM_KEY", TEST_KEY)
    user_config("endpoints:\n" + profile(fake, extra="    model: fake-model\n"))
    fake.script("endpoint-check", Reply(text="ready"))
    result = invoke("endpoints", "check", "team")
    assert result.exit_code == 0, result.output
    assert "models: fake-model" in result.stdout
    assert "ok: fake-model answered 'ready'" in result.stdout
    (request,) = fake.requests
    assert request.body and request.body["max_tokens"] == 16


def test_endpoints_check_explains_a_rejected_key(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, project: Path
) -> None:
    monkeypatch.setenv("TEAM_KEY", "wrong")
    user_config("endpoints:\n" + profile(fake))
    fake.default = Reply(status=401, error_message="Incorrect API key provided")
    line = one_line_error(invoke("endpoints", "check", "team"))
    assert "Incorrect API key" in line and "$TEAM_KEY" in line


def test_endpoints_check_says_when_nothing_listens(
    monkeypatch: pytest.MonkeyPatch, project: Path
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    user_config(f"endpoints:\n  - name: down\n    base_url: http://127.0.0.1:{port}/v1\n")
    line = one_line_error(invoke("endpoints", "check", "down"), code=1)
    assert "is the server running?" in line
