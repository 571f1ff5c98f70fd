"""Issue 23, point 6: an endpoint outage pauses a batch instead of failing its items.

A real fake server is stopped in the middle of a batch (its streams cut, its port
closed) and a new one started on the same port once council says the endpoint is
down: no item fails. An outage longer than --outage-limit fails the items, saying why.
The test waits on what council prints and what the servers record, never on time.
"""

from __future__ import annotations

import json
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from council.engine.results import BatchProgress
from council.render.batch_progress import progress_line
from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import council_process

ITEMS = 12


def write_items(path: Path, count: int) -> Path:
    lines = (json.dumps({"id": f"t{n}", "query": f"question t{n}"}) for n in range(1, count + 1))
    path.write_text("".join(line + "\n" for line in lines))
    return path


class StderrWatch:
    """Reads a process's stderr as it comes; `seen(text)` is an event set when a line has it."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        assert process.stderr is not None
        self._thread = threading.Thread(target=self._read, args=(process.stderr,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            with self._lock:
                self.lines.append(line)
                for text, event in self._events.items():
                    if text in line:
                        event.set()

    def seen(self, text: str) -> threading.Event:
        with self._lock:
            event = self._events.setdefault(text, threading.Event())
            if any(text in line for line in self.lines):
                event.set()
            return event

    def text(self) -> str:
        self._thread.join(timeout=10)
        return "".join(self.lines)


def start_batch(base_url: str, items: Path, out: Path, *args: str) -> subprocess.Popen[str]:
    return council_process(
        "batch", str(items), "--base-url", base_url, "--out", str(out), "-p", "judge,critic",
        "--max-concurrency", "2", *args,
    )  # fmt: skip


def test_a_server_restarted_on_its_port_mid_batch_fails_no_item(tmp_path: Path) -> None:
    items, out = write_items(tmp_path / "items.jsonl", ITEMS), tmp_path / "out.jsonl"
    first = FakeOpenAI(default=Reply(gate="never")).start()  # holds every answer: cut by stop
    port = first.port
    process = start_batch(first.base_url, items, out)
    second: FakeOpenAI | None = None
    try:
        watch = StderrWatch(process)
        first.wait_for(lambda f: len(f.requests) >= 2, timeout=30)  # the batch is under way
        first.stop()  # streams cut, port closed: every call now fails to connect
        assert watch.seen("endpoint down since").wait(timeout=60), watch.lines
        second = FakeOpenAI(port=port).start()  # the server back, on the same port
        assert process.wait(timeout=120) == 0, watch.text()
    finally:
        process.kill()
        first.stop()
        if second is not None:
            second.stop()
    stderr = watch.text()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(f"t{n}" for n in range(1, ITEMS + 1))
    assert {line["status"] for line in lines} == {"ok"}
    assert "the endpoint answers again" in stderr
    assert "0 failed" in stderr and "waited through 1 endpoint outage" in stderr
    assert second is not None
    # Every item was answered by the server that came back, the cut ones asked again.
    asked = {r.body["messages"][-1]["content"] for r in second.requests if r.body}
    assert len(asked) == ITEMS


def test_an_outage_longer_than_the_limit_fails_the_items(tmp_path: Path) -> None:
    items, out = write_items(tmp_path / "items.jsonl", 3), tmp_path / "out.jsonl"
    server = FakeOpenAI(default=Reply(gate="never")).start()
    process = start_batch(server.base_url, items, out, "--outage-limit", "0.5", "--retries", "0")
    try:
        watch = StderrWatch(process)
        server.wait_for(lambda f: len(f.requests) >= 2, timeout=30)
        server.stop()  # and never back
        code = process.wait(timeout=120)
    finally:
        process.kill()
        server.stop()
    stderr = watch.text()
    assert code == 1, stderr
    assert "endpoint down since" in stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 3 and {line["status"] for line in lines} == {"failed"}
    kinds = {e["error_kind"] for line in lines for e in line["errors"]}
    assert kinds <= {"connection", "truncated"}, kinds


def test_the_progress_line_says_since_when_the_endpoint_is_down() -> None:
    progress = BatchProgress(total=100, done=40, waiting=3)
    assert "endpoint down" not in progress_line(progress)
    progress.down_since = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    line = progress_line(progress)
    assert line.startswith("40/100 items · endpoint down since 03:04:05 UTC (")
    assert line.endswith(", 3 items waiting")
