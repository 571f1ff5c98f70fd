"""Stored keys: `council keys set/list/path`, a 0600 file, profiles naming them, never printed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import history_db_path, invoke
from tests.terminal import Terminal

STORED = "sk-stored-0123456789abcdefghijklmnop"
FROM_ENV = "sk-envvar-0123456789abcdefghijklmnop"


def home() -> Path:
    return Path(os.environ["COUNCIL_HOME"])


def keys_file() -> Path:
    return home() / "keys.json"


def store(name: str, value: str) -> subprocess.CompletedProcess[str]:
    """`council keys set NAME` with the key piped in, as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "council.cli", "keys", "set", name],
        input=value + "\n",
        capture_output=True,
        text=True,
        timeout=30,
    )


def user_config(text: str) -> None:
    (home() / "config.yaml").write_text(text)


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_keys_set_asks_at_a_hidden_prompt_and_stores_a_0600_file() -> None:
    with Terminal(["keys", "set", "openrouter"], rows=24, cols=80) as term:
        # The space comes once echo is off: what is typed before it is flushed away.
        term.wait_for(lambda screen: "Key for openrouter: " in screen)
        term.type(STORED + "\r")
        assert term.finish() == 0
        shown = term.raw
    assert STORED not in shown  # the prompt did not echo it
    assert "stored key openrouter in" in shown
    assert stat.S_IMODE(keys_file().stat().st_mode) == 0o600
    assert json.loads(keys_file().read_text()) == {"openrouter": STORED}


def test_keys_list_and_path_show_names_never_values() -> None:
    assert invoke("keys", "list").stdout == ""
    assert store("openrouter", STORED).returncode == 0
    assert store("groq", "gsk-0123456789abcdef").returncode == 0
    assert store("openrouter", FROM_ENV).returncode == 0  # replaced, not added
    listed = invoke("keys", "list")
    assert listed.exit_code == 0 and listed.stdout == "groq\nopenrouter\n"
    assert STORED not in listed.output and FROM_ENV not in listed.output
    assert invoke("keys", "path").stdout.strip() == str(keys_file())
    assert stat.S_IMODE(keys_file().stat().st_mode) == 0o600
    assert json.loads(keys_file().read_text())["openrouter"] == FROM_ENV
    assert [p.name for p in home().iterdir() if p.name.startswith(".keys-")] == []


def test_bad_names_and_empty_keys_are_one_line_errors() -> None:
    for name, value, says in (
        ("bad name", "sk-x", "is not a key name"),
        ("ok", "", "the key is empty"),
        ("ok", "two words", "spaces or control characters"),
    ):
        done = store(name, value)
        assert done.returncode == 2 and says in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert not keys_file().exists()
    keys_file().write_text("[1, 2]")
    result = invoke("keys", "list")
    assert result.exit_code == 2 and "cannot read the stored keys" in result.stderr


def test_a_profile_sends_its_stored_key_and_the_environment_still_wins(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert store("team", STORED).returncode == 0
    user_config(
        "endpoints:\n"
        f"  - name: team\n    base_url: {fake.base_url}\n"
        "    api_key_env: TEAM_KEY\n    api_key: team\n"
    )
    assert invoke("oracle", "--endpoint", "team", "-p", "judge", "q").exit_code == 0
    assert fake.requests[-1].headers["authorization"] == f"Bearer {STORED}"
    dry = invoke("oracle", "--endpoint", "team", "-p", "judge", "--dry-run", "q")
    assert "- key: stored key team; $TEAM_KEY not set" in dry.stdout
    assert "$TEAM_KEY NOT SET, stored key team\n" in invoke("endpoints", "list").stdout
    monkeypatch.setenv("TEAM_KEY", FROM_ENV)
    assert invoke("oracle", "--endpoint", "team", "-p", "judge", "q").exit_code == 0
    assert fake.requests[-1].headers["authorization"] == f"Bearer {FROM_ENV}"
    dry = invoke("oracle", "--endpoint", "team", "-p", "judge", "--dry-run", "q")
    assert "- key: $TEAM_KEY (set); it wins over stored key team" in dry.stdout
    # Nothing shows a key: listings, the config, dry runs, the history.
    shown = "".join(
        invoke(*args).output
        for args in (
            ("endpoints", "list"),
            ("endpoints", "list", "--json"),
            ("config", "show", "--endpoint", "team"),
            ("oracle", "--endpoint", "team", "-p", "judge", "--dry-run", "--json", "q"),
            ("history", "export"),
        )
    )
    assert "team" in shown and STORED not in shown and FROM_ENV not in shown
    data = b"".join(p.read_bytes() for p in history_db_path().parent.glob("history.db*"))
    assert STORED.encode() not in data and FROM_ENV.encode() not in data


def test_a_key_named_but_not_stored_says_how_to_store_it() -> None:
    user_config(
        "endpoints:\n  - name: far\n    base_url: https://api.example.invalid/v1\n"
        "    api_key: far-key\n"
    )
    result = invoke("oracle", "--endpoint", "far", "-p", "judge", "q")
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "no key is stored as 'far-key'" in line and "council keys set far-key" in line


def test_a_server_quoting_the_stored_key_sees_it_masked(fake: FakeOpenAI) -> None:
    assert store("team", STORED).returncode == 0
    user_config(f"endpoints:\n  - name: team\n    base_url: {fake.base_url}\n    api_key: team\n")
    fake.default = Reply(status=401, error_message=f"Incorrect API key provided: {STORED}")
    result = invoke("oracle", "--endpoint", "team", "-p", "judge", "q")
    assert result.exit_code == 2
    assert STORED not in result.output and "sk-…mnop" in result.stderr
    assert "check that the stored key 'team' holds a valid key" in result.stderr
    data = b"".join(p.read_bytes() for p in history_db_path().parent.glob("history.db*"))
    assert STORED.encode() not in data


def test_only_your_own_config_names_a_stored_key(fake: FakeOpenAI, project: Path) -> None:
    # A key itself in the config is still refused, as is a shared file naming one.
    user_config(f"endpoints:\n  - name: t\n    base_url: {fake.base_url}\n    api_key: {STORED}\n")
    result = invoke("endpoints", "list")
    assert result.exit_code == 2 and "api_key: looks like" in result.stderr
    assert STORED not in result.output
    user_config("")
    preset = project / ".council" / "presets" / "p.yaml"
    preset.parent.mkdir(parents=True)
    preset.write_text("name: p\npersonas: [judge]\napi_key: team\n")
    result = invoke("presets", "validate", str(preset))
    assert result.exit_code != 0 and "looks like a secret" in result.output


def test_resuming_a_run_sends_the_stored_key_it_sent(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers import council_process, interrupt_after_event

    assert store("team", STORED).returncode == 0
    user_config(f"endpoints:\n  - name: team\n    base_url: {fake.base_url}\n    api_key: team\n")
    verdict = json.dumps({"converged": False, "confidence": 0.5, "synthesis": "s", "dissent": []})
    fake.script("arbiter", Reply(text=verdict), round=1)
    fake.script("judge", Reply(text="Position: kept\nj2"), round=2)
    fake.script("critic", Reply(hang=True), round=2)
    process = council_process(
        "deliberate", "--endpoint", "team", "-p", "judge,critic", "--rounds", "2", "--jsonl", "q"
    )

    def judge_done(event: dict[str, object]) -> bool:
        return event.get("type") == "call_finished" and event.get("round") == 2

    interrupt_after_event(process, judge_done)
    assert process.returncode == 130
    (run,) = json.loads(invoke("history", "--json").stdout)
    fake.reset()
    monkeypatch.setenv("OPENAI_API_KEY", FROM_ENV)  # not what the run sent: not sent now
    fake.script("arbiter", Reply(text=verdict.replace("false", "true")), round=2)
    resumed = invoke("resume", run["id"])
    assert resumed.exit_code == 0, resumed.output
    assert fake.requests and {r.headers["authorization"] for r in fake.requests} == {
        f"Bearer {STORED}"
    }
