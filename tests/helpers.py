"""Shared helpers for the CLI tests: invoking council in-process and in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from council.cli import app


def history_db_path() -> Path:
    """The history file of the test's COUNCIL_HOME."""
    return Path(os.environ["COUNCIL_HOME"]) / "history.db"


def history_rows(sql: str, *parameters: Any) -> list[sqlite3.Row]:
    """Rows of a query on the test's history, read straight from the file."""
    connection = sqlite3.connect(history_db_path())
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(sql, parameters).fetchall()
    finally:
        connection.close()


def history_rows_once(
    sql: str, ready: Callable[[list[sqlite3.Row]], bool], timeout: float = 20
) -> list[sqlite3.Row]:
    """The rows of `sql` once `ready` accepts them. Council writes its history on a thread
    of its own and says nothing a test could wait on when a row lands, so this reads the
    file again (every 20 ms) until `ready` or the deadline."""
    deadline = time.monotonic() + timeout
    rows: list[sqlite3.Row] = []
    while time.monotonic() < deadline:
        if history_db_path().exists():
            try:
                rows = history_rows(sql)
            except sqlite3.Error:  # the file is there, its tables not yet
                rows = []
            if ready(rows):
                return rows
        time.sleep(0.02)
    raise AssertionError(f"the history never had what was awaited within {timeout}s: {rows}")


def keep_learned(base_url: str, model: str, **values: Any) -> None:
    """What an earlier run learned about `base_url` and `model` (capacity=2, say), kept in
    the test's history: the next run's endpoint pool starts from it, as a new process does."""
    from council.store.db import HistoryDB
    from council.store.limits import KeptLimit, save_limits

    fields: dict[str, Any] = {"capacity": None, "context_window": None, "window_source": None}
    with HistoryDB.open() as db:
        save_limits(db, [KeptLimit(base_url, model, **{**fields, "learned_at": 1.0, **values})])


def kept_learned(base_url: str) -> list[Any]:
    """What runs kept in the test's history about `base_url`, a KeptLimit per model."""
    from council.store.db import HistoryDB
    from council.store.limits import load_limits

    if not history_db_path().exists():
        return []
    with HistoryDB.open() as db:
        return load_limits(db, base_url)


def invoke(*args: str, input: str | None = None) -> Any:
    """Run `council ARGS` in-process; stdout is not a TTY, so output is Markdown."""
    runner = CliRunner()
    return runner.invoke(app, list(args), input=input, catch_exceptions=False)


def resolved_endpoint(base_url: str, max_concurrency: int | None = None) -> Any:
    """The EndpointSettings `--base-url URL [--max-concurrency N]` resolve to, as in the CLI."""
    from council.config.settings import load_settings

    flags: dict[str, Any] = {"base_url": base_url}
    if max_concurrency is not None:
        flags["max_concurrency"] = max_concurrency
    names = {"base_url": "--base-url", "max_concurrency": "--max-concurrency"}
    loaded = load_settings(flags, {k: names[k] for k in flags}, None, require_key=False)
    return loaded.settings.endpoint


def oracle(fake: Any, *args: str, input: str | None = None) -> Any:
    """`council oracle` against the fake server."""
    return invoke("oracle", "--base-url", fake.base_url, *args, input=input)


def oracle_json(fake: Any, *args: str) -> tuple[int, dict[str, Any]]:
    result = oracle(fake, "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def council_process(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """Start `python -m council.cli ARGS` as a real process (for signals and imports)."""
    return subprocess.Popen(
        [sys.executable, "-m", "council.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **kwargs.pop("env", {})},
        **kwargs,
    )


def interrupt_when(
    process: subprocess.Popen[str], fake: Any, ready: Callable[[Any], bool]
) -> tuple[str, str]:
    """Send Ctrl-C (SIGINT) to `process` once the fake server's state satisfies `ready`.

    Returns its stdout and stderr; the process is killed if anything goes wrong.
    """
    try:
        fake.wait_for(ready, timeout=20)
        process.send_signal(signal.SIGINT)
        return process.communicate(timeout=10)
    finally:
        process.kill()


def interrupt_after_event(
    process: subprocess.Popen[str], seen: Callable[[dict[str, Any]], bool], timeout: float = 20
) -> tuple[str, str]:
    """Ctrl-C a `--jsonl` council process once it has emitted an event `seen` accepts.

    The event stream is council's own account of what it has finished, so this
    waits on the client's state, not the server's. Returns stdout and stderr.
    """
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and seen(event):
                found.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not found.wait(timeout):
            raise AssertionError(f"no such event within {timeout}s; got {lines[-3:]}")
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
        reader.join(10)
        assert process.stderr is not None
        return "".join(lines), process.stderr.read()
    finally:
        process.kill()
