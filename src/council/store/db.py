"""The local history: one SQLite file with a row per run and per model call.

    db = HistoryDB.open()                      # creates history.db (mode 0600), migrates it
    recorder = Recorder(db, command="oracle", plan=plan.to_dict(), store_text=True)
    bus.subscribe(recorder.handle)             # calls are written as they finish
    ...
    recorder.finish(document=..., markdown=..., answer=...)

The file lives in the user data dir (`$COUNCIL_HOME/history.db` when set). WAL mode
and a busy timeout let several council processes write at once. The schema grows
by numbered migrations, recorded in `_council_migrations`; each runs once, in its
own transaction, when the file is opened, so a newer council opens an older file.
A shipped migration is never edited.

Never stored: an API key or any header. With `store_text` off, the metrics are
kept but not the question, the context, the answers or the rendered output.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from council.config.endpoint_settings import user_data_dir
from council.engine.events import (
    CallCancelled,
    CallFailed,
    CallFinished,
    CallRetrying,
    CallStarted,
    Event,
    RoundDiscarded,
    RunFinished,
    RunStarted,
)
from council.errors import ConfigError, UsageError

__all__ = [
    "MIGRATIONS",
    "HistoryDB",
    "Recorder",
    "history_disabled_by_env",
    "parse_age",
]

DB_FILE_NAME = "history.db"
BUSY_TIMEOUT_MS = 10_000

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(function: Migration) -> Migration:
    """Register a migration; its name (m001_..., m002_...) is recorded once applied."""
    MIGRATIONS.append((function.__name__, function))
    return function


def _execute_script(db: sqlite3.Connection, script: str) -> None:
    """Run each statement of `script` inside the caller's transaction.

    (`executescript` would commit first, so a failed migration could not roll back.)
    """
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""
    if statement.strip():
        raise sqlite3.ProgrammingError(f"incomplete SQL statement: {statement.strip()[:60]}")


@migration
def m001_runs_and_calls(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            started_at REAL NOT NULL,          -- unix time
            command TEXT NOT NULL,             -- oracle, deliberate
            query TEXT,                        -- NULL when texts are not stored
            preset TEXT,
            plan TEXT NOT NULL,                -- JSON: the plan as --dry-run --json shows it
            status TEXT NOT NULL,              -- running, ok, partial, failed, interrupted, crashed
            exit_code INTEGER,
            wall REAL,
            answer TEXT
        );
        CREATE TABLE calls (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            call_id TEXT NOT NULL,
            round INTEGER NOT NULL,
            persona TEXT NOT NULL,
            role TEXT NOT NULL,                -- persona, arbiter
            model TEXT,
            endpoint_host TEXT,
            speculative INTEGER NOT NULL DEFAULT 0,
            kept INTEGER NOT NULL DEFAULT 1,   -- 0: cancelled, or its round was discarded
            status TEXT NOT NULL,              -- answered, failed, cancelled
            error_kind TEXT,
            started REAL,                      -- seconds from the run's start
            ended REAL,
            ttft REAL,
            latency REAL,
            tokens_in INTEGER,                 -- NULL: the endpoint did not say
            tokens_out INTEGER,
            retries INTEGER NOT NULL DEFAULT 0,
            text TEXT,
            PRIMARY KEY (run_id, call_id)
        );
        """,
    )


@migration
def m002_outputs_metrics_and_indexes(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        ALTER TABLE runs ADD COLUMN document TEXT;       -- the run's --json document
        ALTER TABLE runs ADD COLUMN markdown TEXT;       -- its output when piped
        ALTER TABLE runs ADD COLUMN store_text INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE runs ADD COLUMN rounds INTEGER;      -- deliberations: rounds kept
        ALTER TABLE runs ADD COLUMN converged INTEGER;
        ALTER TABLE runs ADD COLUMN saved REAL;          -- seconds speculation saved
        ALTER TABLE runs ADD COLUMN wasted_tokens INTEGER;
        ALTER TABLE runs ADD COLUMN resumed_from TEXT;
        ALTER TABLE calls ADD COLUMN rate_limited INTEGER NOT NULL DEFAULT 0;  -- 429s seen
        ALTER TABLE calls ADD COLUMN reused_from TEXT;   -- a resumed run's answer from this run
        CREATE INDEX runs_by_start ON runs(started_at);
        CREATE INDEX calls_by_persona ON calls(persona);
        """,
    )


def history_disabled_by_env() -> bool:
    return os.environ.get("COUNCIL_HISTORY", "").strip().lower() in ("off", "0", "false", "no")


_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str, flag: str) -> float:
    """Seconds in '90s', '15m', '12h', '7d' or '2w'; UsageError otherwise."""
    value = text.strip().lower()
    try:
        number, unit = float(value[:-1]), _AGE_UNITS[value[-1]]
    except (ValueError, KeyError, IndexError):
        raise UsageError(
            f"{flag} {text!r} is not an age",
            f"give a number and a unit, e.g. {flag} 7d (s m h d w)",
        ) from None
    return number * unit


def _secure_file(path: Path) -> None:
    """Create the database file readable by its owner only, before SQLite opens it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)


class HistoryDB:
    """The history database: migrations on open, and the queries behind the commands."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self.db = connection
        self.path = path

    @classmethod
    def default_path(cls) -> Path:
        return user_data_dir() / DB_FILE_NAME

    @classmethod
    def open(
        cls, path: Path | None = None, migrations: list[tuple[str, Migration]] | None = None
    ) -> HistoryDB:
        """Open (creating and migrating) the history; ConfigError if the file is unusable."""
        path = path or cls.default_path()
        try:
            _secure_file(path)
            connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            connection.row_factory = sqlite3.Row
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints
            connection.execute("PRAGMA foreign_keys = ON")
            history = cls(connection, path)
            history._migrate(MIGRATIONS if migrations is None else migrations)
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(
                f"cannot use the history database {path}: {exc}",
                "move the file away to start a new history, or pass --no-history",
            ) from exc
        for suffix in ("-wal", "-shm"):  # SQLite creates these with the umask's mode
            companion = path.with_name(path.name + suffix)
            if companion.exists():
                os.chmod(companion, 0o600)
        return history

    def _migrate(self, migrations: list[tuple[str, Migration]]) -> None:
        db = self.db
        db.execute(
            "CREATE TABLE IF NOT EXISTS _council_migrations "
            "(name TEXT PRIMARY KEY, applied_at REAL)"
        )
        for name, function in migrations:
            db.execute("BEGIN IMMEDIATE")  # one writer migrates; the others wait, then skip
            try:
                done = db.execute(
                    "SELECT 1 FROM _council_migrations WHERE name = ?", (name,)
                ).fetchone()
                if not done:
                    function(db)
                    db.execute("INSERT INTO _council_migrations VALUES (?, ?)", (name, time.time()))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def applied_migrations(self) -> list[str]:
        rows = self.db.execute("SELECT name FROM _council_migrations ORDER BY name").fetchall()
        return [row["name"] for row in rows]

    def close(self) -> None:
        self.db.close()

    # -- writing -------------------------------------------------------------------------

    def write(self, sql: str, parameters: tuple[Any, ...] | dict[str, Any] = ()) -> None:
        self.db.execute(sql, parameters)  # autocommit: each statement is its own transaction

    # -- reading -------------------------------------------------------------------------

    def runs(
        self, *, limit: int | None = None, preset: str | None = None, since: float | None = None
    ) -> list[sqlite3.Row]:
        where, parameters = ["1 = 1"], []
        if preset is not None:
            where.append("preset = ?")
            parameters.append(preset)
        if since is not None:
            where.append("started_at >= ?")
            parameters.append(since)
        sql = f"SELECT * FROM runs WHERE {' AND '.join(where)} ORDER BY started_at DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self.db.execute(sql, parameters).fetchall()

    def find_run(self, run_id: str) -> sqlite3.Row:
        """A run by its id or a unique prefix of it; UsageError otherwise."""
        rows = self.db.execute(
            "SELECT * FROM runs WHERE id LIKE ? ORDER BY started_at DESC LIMIT 2",
            (run_id.replace("%", "").replace("_", "") + "%",),
        ).fetchall()
        if not rows or not run_id:
            raise UsageError(f"no run {run_id!r} in {self.path}", "see 'council history'")
        if len(rows) > 1 and rows[0]["id"] != run_id:
            raise UsageError(f"run id {run_id!r} is ambiguous", "give more of its characters")
        return rows[0]

    def calls(self, run_id: str) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT * FROM calls WHERE run_id = ? ORDER BY round, role != 'persona', started",
            (run_id,),
        ).fetchall()

    def delete(self, run_id: str) -> None:
        self.db.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def prune(self, older_than: float) -> int:
        cursor = self.db.execute("DELETE FROM runs WHERE started_at < ?", (older_than,))
        return cursor.rowcount

    def export(self) -> Iterator[dict[str, Any]]:
        """Every run, oldest first, with its calls: one JSON-ready dict per run."""
        for run in self.db.execute("SELECT * FROM runs ORDER BY started_at, id").fetchall():
            names = run.keys()  # a sqlite3.Row iterates over values, not names
            data = {k: run[k] for k in names if k not in ("document", "markdown")}
            data["plan"] = json.loads(run["plan"])
            data["calls"] = [dict(call) for call in self.calls(run["id"])]
            yield data


@dataclass
class _Call:
    speculative: bool = False
    started: float | None = None
    rate_limited: int = 0
    model: str | None = None


class Recorder:
    """Writes a run's events into the history as they happen.

    A finished call is committed the moment it ends, so a run that is interrupted
    or crashes keeps everything that finished; `close()` marks a run that never
    reported its end as crashed. A database error stops the recording (noted in
    `problem`) but never the run.
    """

    def __init__(
        self,
        history: HistoryDB,
        *,
        command: str,
        plan: dict[str, Any],
        store_text: bool,
        preset: str | None = None,
        resumed_from: str | None = None,
    ) -> None:
        self.history = history
        self.command = command
        self.plan = plan if store_text else _without_text(plan)
        self.store_text = store_text
        self.preset = preset
        self.resumed_from = resumed_from
        self.run_id: str | None = None
        self.finished = False
        self.problem: str | None = None
        self._origin = 0.0
        self._calls: dict[str, _Call] = {}
        self._endpoint_host: str | None = None

    def handle(self, event: Event) -> None:
        if self.problem is not None:
            return
        try:
            self._handle(event)
        except sqlite3.Error as exc:
            self.problem = f"history not recorded ({exc}); the run itself is unaffected"

    def _text(self, value: str | None) -> str | None:
        return value if self.store_text else None

    def _handle(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.run_id, self._origin = event.run_id, event.at
            self._endpoint_host = event.endpoint_host
            self.history.write(
                "INSERT INTO runs (id, started_at, command, query, preset, plan, status, "
                "store_text, resumed_from) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?)",
                (
                    event.run_id,
                    time.time(),
                    self.command,
                    self._text(event.query),
                    self.preset,
                    json.dumps(self.plan, ensure_ascii=False),
                    int(self.store_text),
                    self.resumed_from,
                ),
            )
        elif isinstance(event, CallStarted):
            self._calls[event.call_id] = _Call(
                speculative=event.speculative, started=event.at - self._origin, model=event.model
            )
        elif isinstance(event, CallRetrying):
            if event.error_kind == "rate_limited":
                self._calls.setdefault(event.call_id, _Call()).rate_limited += 1
        elif isinstance(event, CallFinished):
            self._insert_call(
                event,
                "answered",
                latency=event.latency,
                ttft=event.ttft,
                tokens_in=event.tokens_in,
                tokens_out=event.tokens_out,
                retries=event.retries,
                text=self._text(event.text),
                reused_from=event.reused_from,
            )
        elif isinstance(event, CallFailed):
            if event.error_kind == "rate_limited":
                self._calls.setdefault(event.call_id, _Call()).rate_limited += 1
            self._insert_call(
                event,
                "failed",
                latency=event.latency,
                retries=event.retries,
                error_kind=event.error_kind,
            )
        elif isinstance(event, CallCancelled):
            self._insert_call(
                event,
                "cancelled",
                latency=event.latency,
                tokens_out=event.tokens_out,
                kept=0,
                error_kind=event.reason,
            )
        elif isinstance(event, RoundDiscarded):
            self.history.write(
                "UPDATE calls SET kept = 0 WHERE run_id = ? AND round = ?",
                (event.run_id, event.round),
            )
        elif isinstance(event, RunFinished):
            self.finished = True
            self.history.write(
                "UPDATE runs SET status = ?, exit_code = ?, wall = ? WHERE id = ?",
                (event.status, event.exit_code, event.wall, event.run_id),
            )

    def _insert_call(self, event: Any, status: str, **values: Any) -> None:
        call = self._calls.get(event.call_id, _Call())
        row = {
            "run_id": event.run_id,
            "call_id": event.call_id,
            "round": event.round,
            "persona": event.persona,
            "role": event.role,
            "model": call.model,
            "endpoint_host": self._endpoint_host,
            "speculative": int(call.speculative),
            "kept": 1,
            "status": status,
            "error_kind": None,
            "started": call.started,
            "ended": event.at - self._origin,
            "ttft": None,
            "latency": None,
            "tokens_in": None,
            "tokens_out": None,
            "retries": 0,
            "text": None,
            "rate_limited": call.rate_limited,
            "reused_from": None,
        }
        row.update(values)
        columns = ", ".join(row)
        marks = ", ".join(f":{name}" for name in row)
        self.history.write(f"INSERT OR REPLACE INTO calls ({columns}) VALUES ({marks})", row)

    def finish(
        self,
        *,
        answer: str | None,
        document: dict[str, Any],
        markdown: str,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        """Store what the run printed (for `council show`) and its run-level metrics."""
        if self.run_id is None or self.problem is not None:
            return
        values = {
            "answer": self._text(answer),
            "document": self._text(json.dumps(document, ensure_ascii=False)),
            "markdown": self._text(markdown),
            **(metrics or {}),
        }
        assignments = ", ".join(f"{k} = :{k}" for k in values)
        try:
            self.history.write(
                f"UPDATE runs SET {assignments} WHERE id = :id", {**values, "id": self.run_id}
            )
        except sqlite3.Error as exc:
            self.problem = f"history not recorded ({exc}); the run itself is unaffected"

    def close(self) -> None:
        """Mark a run that never reported its end (a crash) as such."""
        if self.run_id is not None and not self.finished and self.problem is None:
            with contextlib.suppress(sqlite3.Error):
                self.history.write(
                    "UPDATE runs SET status = 'crashed' WHERE id = ? AND status = 'running'",
                    (self.run_id,),
                )


def _without_text(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan with the question, context and prompts taken out (`--no-store-text`)."""
    kept = {k: v for k, v in plan.items() if k not in ("query", "calls", "attachments")}
    kept["calls"] = [
        {k: v for k, v in call.items() if k != "messages"} for call in plan.get("calls", [])
    ]
    return kept
