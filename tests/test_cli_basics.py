"""CLI behaviour that needs no model: help, version, personas, config errors, dry runs."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from council import __version__
from tests.helpers import invoke, oracle

QUESTION = "Is a monorepo right for a team of five?"


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"council {__version__}"


def test_help_lists_commands_with_an_example():
    result = invoke("--help")
    assert result.exit_code == 0
    assert "oracle" in result.stdout and "personas" in result.stdout
    oracle_help = invoke("oracle", "--help")
    assert "council oracle" in oracle_help.stdout and "--max-concurrency" in oracle_help.stdout


def test_help_does_not_import_openai():
    code = (
        "import sys\n"
        "from council.cli import app\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'openai' not in sys.modules, 'council --help imported openai'\n"
        "print('clean')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("clean")


@pytest.mark.parametrize("command", ["oracle", "deliberate"])
def test_dry_run_sends_nothing_and_does_not_import_openai(fake, command):
    code = (
        "import sys\n"
        "from council.cli import app\n"
        "try:\n"
        f"    app([{command!r}, '--base-url', {fake.base_url!r}, '--dry-run', "
        "'-p', 'judge,critic', 'Ship it?'])\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "assert 'openai' not in sys.modules, 'dry run imported openai'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Dry run: nothing was sent" in done.stdout
    assert "## judge" in done.stdout and "## critic" in done.stdout
    assert "Ship it?" in done.stdout
    assert fake.requests == []


def test_dry_run_json_shows_the_exact_messages_and_no_key(fake, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-do-not-print")
    result = oracle(fake, "--dry-run", "--json", "-p", "judge", "--synthesize", QUESTION)
    assert result.exit_code == 0
    plan = json.loads(result.stdout)
    assert plan["personas"] == ["judge"] and plan["arbiter"] == "arbiter"
    assert plan["calls"][0]["messages"][-1]["content"] == QUESTION
    assert plan["endpoint"]["api_key_set"] is True
    assert plan["estimated_input_tokens"] > 0
    assert "sk-secret-do-not-print" not in result.output
    assert fake.requests == []


def test_dry_run_needs_no_key_for_a_remote_endpoint():
    result = invoke("oracle", "--base-url", "https://api.example.com/v1", "--dry-run", QUESTION)
    assert result.exit_code == 0
    assert "$OPENAI_API_KEY (not set)" in result.stdout


def test_missing_key_is_a_one_line_error_naming_the_variable():
    result = invoke("oracle", "--base-url", "https://api.example.com/v1", QUESTION)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "$OPENAI_API_KEY is not set" in result.stderr
    assert "export OPENAI_API_KEY=" in result.stderr
    custom = invoke("oracle", "--api-key-env", "OPENROUTER_API_KEY", QUESTION)
    assert custom.exit_code == 2 and "$OPENROUTER_API_KEY is not set" in custom.stderr


def test_loopback_needs_no_key(fake):
    result = oracle(fake, "-p", "judge", QUESTION)
    assert result.exit_code == 0
    assert len(fake.requests) == 1


def test_base_url_from_environment(fake, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("COUNCIL_BASE_URL", fake.base_url)  # COUNCIL_ wins over OPENAI_
    result = invoke("oracle", "-p", "judge", QUESTION)
    assert result.exit_code == 0, result.output
    assert len(fake.requests) == 1


def test_unreachable_endpoint_exits_1():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = invoke(
        "oracle",
        "--base-url",
        f"http://127.0.0.1:{port}/v1",
        "--retries",
        "0",
        "-p",
        "judge",
        QUESTION,
    )
    assert result.exit_code == 1
    assert f"cannot reach http://127.0.0.1:{port}/v1" in result.stderr
    assert "is the server running?" in result.stderr


def test_bad_flags_are_usage_errors():
    assert invoke("oracle", "--timeout", "0", QUESTION).exit_code == 2
    assert invoke("oracle", "--max-concurrency", "0", QUESTION).exit_code == 2
    assert invoke("oracle", "--base-url", "ftp://x", QUESTION).exit_code == 2
    both = invoke("oracle", "--json", "--jsonl", QUESTION)
    assert both.exit_code == 2 and "exclusive" in both.stderr
    empty = invoke("oracle", "--dry-run", "   ")
    assert empty.exit_code == 2 and "empty" in empty.stderr
    missing = invoke("oracle", "--dry-run")
    assert missing.exit_code == 2 and "no question given" in missing.stderr


def test_personas_list_shows_the_built_ins():
    result = invoke("personas", "list")
    assert result.exit_code == 0
    for name in (
        "judge",
        "critic",
        "skeptic",
        "optimist",
        "pragmatist",
        "security",
        "user-advocate",
        "arbiter",
    ):
        assert any(line.startswith(name + " ") for line in result.stdout.splitlines()), name
    assert "  (built-in)" in result.stdout and "site-packages" not in result.stdout


def test_personas_show_prints_the_prompt():
    result = invoke("personas", "show", "skeptic")
    assert result.exit_code == 0
    assert result.stdout.startswith("name: skeptic\n")
    assert "system: |" in result.stdout


def test_user_persona_shadows_a_built_in(tmp_path):
    import os
    from pathlib import Path

    personas = Path(os.environ["COUNCIL_HOME"]) / "personas"
    personas.mkdir(parents=True)
    (personas / "judge.yaml").write_text("name: judge\ndescription: My judge.\nsystem: Be brief.\n")
    listing = invoke("personas", "list")
    assert "My judge." in listing.stdout
    assert "shadowed by" in listing.stdout
    assert invoke("personas", "show", "judge").stdout.count("Be brief.") == 1


def test_bad_persona_file_names_file_and_line():
    import os
    from pathlib import Path

    personas = Path(os.environ["COUNCIL_HOME"]) / "personas"
    personas.mkdir(parents=True)
    (personas / "broken.yaml").write_text(
        "name: broken\ndescription: x\nsystem: y\ntemprature: 0.5\n"
    )
    result = invoke("personas", "list")
    assert result.exit_code == 2
    assert "broken.yaml:4:1: temprature: unknown key (did you mean 'temperature'?)" in result.stderr
    assert "Traceback" not in result.output


def test_unknown_persona_show():
    result = invoke("personas", "show", "nobody")
    assert result.exit_code == 2 and "unknown persona 'nobody'" in result.stderr


def test_user_dir_without_council_home_is_the_platform_config_dir(tmp_path, monkeypatch):
    from pathlib import Path

    from council.config.paths import user_config_dir

    monkeypatch.delenv("COUNCIL_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert user_config_dir() == Path(tmp_path / "xdg" / "council")
    personas = tmp_path / "xdg" / "council" / "personas"
    personas.mkdir(parents=True)
    (personas / "mine.yaml").write_text("name: mine\ndescription: Mine.\nsystem: Hi.\n")
    assert "mine " in invoke("personas", "list").stdout
