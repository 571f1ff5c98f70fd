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
