"""README's "Use council from other tools", tested as written: the openai SDK snippet run,
the `llm` configuration loaded by llm itself, a chat UI's connection (its key and model list)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx
import pytest
import yaml

from tests.fake_openai import FakeOpenAI
from tests.serve_helpers import council_serve

README = Path(__file__).resolve().parent.parent / "README.md"
DOCUMENTED_URL = "http://127.0.0.1:8000/v1"
ARBITER_TEXT = "arbiter says: w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12"


def section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Use council from other tools")
    return text[start : text.index("\n## ", start + 1)]


def block_after(title: str, language: str) -> str:
    """The first fenced block of `language` after `title` in the section."""
    text = section()
    rest = text[text.index(title) :]
    match = re.search(rf"```{language}\n(.*?)```", rest, re.S)
    assert match is not None, f"no {language} block after {title!r}"
    return match[1]


def test_the_openai_sdk_snippet_runs_as_written(fake: FakeOpenAI) -> None:
    snippet = block_after("**The openai SDK**", "python")
    assert DOCUMENTED_URL in snippet
    with council_serve("--base-url", fake.base_url) as served:
        code = snippet.replace(DOCUMENTED_URL, served.base_url)
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 0, done.stderr
    answer, numbers = done.stdout.strip().split("\n")
    assert answer == ARBITER_TEXT
    total, run_id = numbers.split()
    assert int(total) > 0 and len(run_id) >= 8


def llm_entries() -> list[dict[str, str]]:
    entries = yaml.safe_load(block_after("**`llm`**", "yaml"))
    assert isinstance(entries, list) and entries
    return entries


def run_llm(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLM_USER_PATH": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "llm", *args], capture_output=True, text=True, env=env, timeout=90
    )


def test_the_llm_entries_name_what_council_serve_serves_and_llm_asks_them(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    pytest.importorskip("llm")
    entries = llm_entries()
    for entry in entries:
        assert set(entry) == {"model_id", "model_name", "api_base"}
        assert entry["api_base"] == DOCUMENTED_URL
    with council_serve("--base-url", fake.base_url) as served:
        ids = [m["id"] for m in httpx.get(f"{served.base_url}/models").json()["data"]]
        assert {e["model_name"] for e in entries} <= set(ids)
        home = tmp_path / "llm"
        home.mkdir()
        for entry in entries:
            entry["api_base"] = served.base_url
        (home / "extra-openai-models.yaml").write_text(yaml.safe_dump(entries))
        done = run_llm(home, "-m", "council", "Should we ship on Friday?")
        assert done.returncode == 0, done.stderr
        assert ARBITER_TEXT in done.stdout
        # A preset's entry too: a deliberation, its verdict the answer.
        done = run_llm(home, "-m", "council-review", "Should we ship on Friday?")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == ARBITER_TEXT


def test_the_llm_entries_with_a_key_as_the_readme_says(fake: FakeOpenAI, tmp_path: Path) -> None:
    pytest.importorskip("llm")
    text = section()
    assert "`api_key_name: council`" in text and "`llm keys set council`" in text
    key = "serve-key-for-llm-0123456789"
    entries = llm_entries()
    args = ("--api-key-env", "COUNCIL_SERVE_KEY", "--base-url", fake.base_url)
    with council_serve(*args, env={"COUNCIL_SERVE_KEY": key}) as served:
        home = tmp_path / "llm"
        home.mkdir()
        for entry in entries:
            entry["api_base"] = served.base_url
            entry["api_key_name"] = "council"
        (home / "extra-openai-models.yaml").write_text(yaml.safe_dump(entries))
        stored = run_llm(home, "keys", "set", "council", "--value", key)
        assert stored.returncode == 0, stored.stderr
        done = run_llm(home, "-m", "council", "Should we ship on Friday?")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == ARBITER_TEXT
        refused = run_llm(home, "-m", "council", "--key", "wrong", "Ship?")
        assert refused.returncode != 0


def test_the_chat_ui_setup_serves_off_loopback_with_the_key(fake: FakeOpenAI) -> None:
    commands = block_after("**Open WebUI", "bash").strip().splitlines()
    export, serve = (line.split("#")[0].strip() for line in commands)
    # The key is made as the README makes it.
    assert export.startswith("export COUNCIL_SERVE_KEY=")
    maker = re.search(r"python3 -c '(.*?)'", export)
    assert maker is not None
    key = subprocess.run(
        [sys.executable, "-c", maker[1]], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert len(key) >= 32
    words = shlex.split(serve)
    assert words[:2] == ["council", "serve"]
    with council_serve(
        *words[2:], "--base-url", fake.base_url, env={"COUNCIL_SERVE_KEY": key}
    ) as served:
        url = served.base_url.replace("0.0.0.0", "127.0.0.1")
        # What a chat UI asks first: the model list, with its key.
        assert httpx.get(f"{url}/models").status_code == 401
        listed = httpx.get(f"{url}/models", headers={"Authorization": f"Bearer {key}"})
        assert listed.status_code == 200
        assert "council" in [m["id"] for m in listed.json()["data"]]
        answer = httpx.post(
            f"{url}/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "council", "messages": [{"role": "user", "content": "Ship?"}]},
            timeout=30,
        )
        assert answer.status_code == 200
        assert key not in json.dumps(answer.json())
