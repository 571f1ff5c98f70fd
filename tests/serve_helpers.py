"""A real `council serve` process for tests and benchmarks: started, read, stopped."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

LISTENING = re.compile(r"listening on (http://\S+/v1)")


@dataclass
class Served:
    """A running `council serve`: its process, base URL and what it says on stderr."""

    process: subprocess.Popen[str]
    base_url: str
    lines: queue.Queue[str]
    said: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def wait_for_line(self, needle: str, timeout: float = 20) -> str:
        """The first stderr line (from now on, or already read) that holds `needle`."""
        for line in self.said:
            if needle in line:
                return line
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"council serve never said {needle!r}: {self.said}") from None
            self.said.append(line)
            if needle in line:
                return line

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, and the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def stderr(self) -> str:
        """Everything it said (all of it once it has exited: its stderr read to the end)."""
        if self.process.poll() is not None and self.reader is not None:
            self.reader.join(timeout=10)
        while True:
            try:
                self.said.append(self.lines.get_nowait())
            except queue.Empty:
                return "".join(self.said)


def start_serve(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> Served:
    """`council serve --port 0 ARGS` started; returns once it listens (its first line)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "council.cli", "serve", "--port", "0", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    served = Served(process, "", lines, reader=reader)
    try:
        line = served.wait_for_line("listening on", timeout=timeout)
    except AssertionError:
        process.kill()
        process.wait(timeout=10)
        raise AssertionError(f"council serve did not start: {served.stderr()}") from None
    match = LISTENING.search(line)
    assert match is not None, line
    served.base_url = match[1]
    return served


@contextlib.contextmanager
def council_serve(*args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    served = start_serve(*args, env=env)
    try:
        yield served
    finally:
        if served.process.poll() is None:
            served.process.kill()
        served.process.wait(timeout=10)
