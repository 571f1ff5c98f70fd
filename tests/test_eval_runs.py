"""Issue 27 points 8 and 9: `council eval`'s progress, and the examples shipped with the package."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import invoke

ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _items(path: Path, count: int) -> Path:
    rows = [
        {"id": f"q{n}", "query": f"What is {n} + 1?", "expected": str(n + 1)} for n in range(count)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _eval_args(fake: FakeOpenAI, data: Path, *args: str) -> list[str]:
    return ["eval", str(data), "--base-url", fake.base_url, "--strategies", "judge", *args]


# -- point 8: progress -------------------------------------------------------------------------


def test_piped_eval_progress_is_a_plain_line_every_tenth_not_one_a_run(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    data = _items(tmp_path / "d.jsonl", 30)
    result = invoke(*_eval_args(fake, data, "--max-concurrency", "2"))
    assert result.exit_code == 0, result.output
    lines = [x for x in result.stderr.splitlines() if x.startswith("council: eval ")]
    assert 1 <= len(lines) <= 10, lines  # every 10 % (or 5 s) at most, never a line a run
    assert lines[-1].startswith("council: eval 30/30 runs (0 failed)"), lines
    assert "tokens in" in lines[-1] and "\r" not in result.stderr
    assert len(fake.requests_for("judge")) == 30


def test_a_terminal_gets_a_live_bar_with_an_eta(fake: FakeOpenAI, tmp_path: Path) -> None:
    data = _items(tmp_path / "d.jsonl", 6)
    fake.default = Reply(ttft=0.3)  # a run takes a while: the bar is seen between runs
    leader, follower = pty.openpty()
    args = _eval_args(fake, data, "--max-concurrency", "1")
    process = subprocess.Popen(
        [sys.executable, "-m", "council.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=follower,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "160", "TERM": "xterm"},
    )
    os.close(follower)
    shown = b""
    try:
        while not re.search(
            rb"runs \(0 failed\)[^\n]*ETA", ESCAPES.sub("", shown.decode(errors="replace")).encode()
        ):
            ready, _, _ = select.select([leader], [], [], 20)
            assert ready, shown[-300:]
            shown += os.read(leader, 65536)
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
        os.close(leader)
    text = ESCAPES.sub("", shown.decode(errors="replace"))
    assert re.search(r"\d/6 runs \(0 failed\) · [\d.]+/s · ETA \d+s", text), text[-500:]
    assert "council: eval " not in text  # the bar, not the plain lines


# -- point 9: the examples ship with the package ------------------------------------------------


def test_example_basics_runs_from_an_installed_wheel_without_the_checkout(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    root = Path(__file__).resolve().parents[1]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist"), str(root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("council_llm-*.whl")
    target = tmp_path / "site"
    installed = subprocess.run(
        [
            *pip,
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    args = ["--example", "basics", "--limit", "3", "--strategies", "judge", "--json"]
    env = {**os.environ, "PYTHONPATH": str(target)}  # the installed copy, not src/
    ran = subprocess.run(
        [sys.executable, "-m", "council.cli", "eval", *args, "--base-url", fake.base_url],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    document = json.loads(ran.stdout)
    shipped = target / "council" / "_builtin" / "examples" / "eval-basics.jsonl"
    assert shipped.is_file()
    assert document["data"] == str(shipped)  # read from the package, not the checkout
    assert len(fake.requests_for("judge")) == 3
    # The three items run at once: whichever reaches the fake first, the first is among them.
    asked = [r.body["messages"][-1]["content"] for r in fake.requests_for("judge")]
    first = json.loads(shipped.read_text(encoding="utf-8").splitlines()[0])
    assert any(first["query"] in text for text in asked)


def test_example_errors_say_what_to_do(fake: FakeOpenAI) -> None:
    unknown = invoke("eval", "--example", "nope", "--base-url", fake.base_url)
    assert unknown.exit_code == 2 and "shipped: basics" in unknown.stderr
    neither = invoke("eval", "--base-url", fake.base_url)
    assert neither.exit_code == 2 and "--example basics" in neither.stderr
    both = invoke("eval", "x.jsonl", "--example", "basics", "--base-url", fake.base_url)
    assert both.exit_code == 2 and "not both" in both.stderr
    assert not fake.requests
