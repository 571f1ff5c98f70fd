"""The local history database: one SQLite file with a row per run and per model call.

    with HistoryDB.open() as db:              # creates history.db (mode 0600), migrates it
        db.runs(limit=20), db.find_run("6742a1"), db.calls(run_id)

The file lives in the user data dir (`$COUNCIL_HOME/history.db` when set). WAL mode
and a busy timeout let several council processes write at once. The schema is
`council.store.migrations`, applied on open. A file SQLite cannot use (not a
database, or corrupted anywhere) is one ConfigError, the same whether it shows at
open or in a query inside `with HistoryDB.open() as db:`. A run's plan and
document are returned as recorded, the question rebuilt (`council.store.question`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from council.config.paths import private_directory, user_data_dir
from council.errors import ConfigError, UsageError
from council.store import texts
from council.store.migrations import MIGRATIONS, Migration
from council.store.question import full_document, full_plan

__all__ = ["HistoryDB", "private_directory"]

DB_FILE_NAME = "history.db"
BUSY_TIMEOUT_MS = 10_000


def _secure_file(path: Path) -> None:
    """Create the database file readable by its owner only, before SQLite opens it."""
    private_directory(path.parent)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)


def unusable(path: Path, exc: BaseException) -> ConfigError:
    """The one message for a history file SQLite cannot use, whenever that shows."""
    return ConfigError(
        f"cannot use the history database {path}: {exc}",
        "move the file away to start a new history, or pass --no-history",
    )


def _full_run(row: sqlite3.Row, db: sqlite3.Connection) -> dict[str, Any]:
    """A run's row, its plan, document and Markdown as recorded (the question and the
    answers put back where they were)."""
    run = {key: row[key] for key in row.keys()}  # noqa: SIM118 - a Row has no items()
    _answers_back(run, db)
    for column, rebuild in (("plan", full_plan), ("document", full_document)):
        text = run.get(column)
        if not isinstance(text, str):
            continue
        try:
            stored = json.loads(text)
        except ValueError:
            continue
        if isinstance(stored, dict):
            full = rebuild(stored, run.get("query"))
            if full is not stored:  # stored once: rebuilt exactly as it was written
                run[column] = json.dumps(full, ensure_ascii=False)
    return run


def _answers_back(run: dict[str, Any], db: sqlite3.Connection) -> None:
    """The answers a run's document and Markdown refer to, put back (`store/texts.py`)."""
    document, markdown = run.get("document"), run.get("markdown")
    if not (texts.refers(document) or texts.refers(markdown)):
        return
    rows = db.execute(
        "SELECT call_id, text FROM calls WHERE run_id = ? AND text IS NOT NULL", (run["id"],)
    )
    by_id = {call_id: text for call_id, text in rows}
    if isinstance(document, str) and texts.refers(document):
        with contextlib.suppress(ValueError):
            full = texts.full_document(json.loads(document), by_id)
            run["document"] = json.dumps(full, ensure_ascii=False)
    if isinstance(markdown, str):
        run["markdown"] = texts.full_markdown(markdown, by_id)


def _switch_to_wal(connection: sqlite3.Connection) -> None:
    """Put the file in WAL mode, waiting out other processes doing the same.

    Switching needs an exclusive lock, and SQLite answers "database is locked" at once
    instead of calling the busy handler when two processes open a new file together
    (two councils started by one script): so wait and try again, up to the busy timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)  # another process holds the lock for a moment; nothing to wait on
        pause = min(0.1, pause * 2)


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
            # check_same_thread off: a run's writes go from a thread of their own
            # (store.writer), one thread at a time.
            connection = sqlite3.connect(
                path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            connection.row_factory = sqlite3.Row
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _switch_to_wal(connection)
            connection.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints
            connection.execute("PRAGMA foreign_keys = ON")
            history = cls(connection, path)
            history._migrate(MIGRATIONS if migrations is None else migrations)
        except (sqlite3.Error, OSError) as exc:
            raise unusable(path, exc) from exc
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
        applied = {row[0] for row in db.execute("SELECT name FROM _council_migrations")}
        for name, function in migrations:
            if name in applied:
                continue  # no write lock taken: another process's long write delays nothing
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

    def __enter__(self) -> HistoryDB:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        self.close()
        if isinstance(exc, sqlite3.Error):  # "database disk image is malformed", mid-query
            raise unusable(self.path, exc) from exc

    # -- writing -------------------------------------------------------------------------

    def write(self, sql: str, parameters: tuple[Any, ...] | dict[str, Any] = ()) -> None:
        self.db.execute(sql, parameters)  # autocommit: each statement is its own transaction

    # -- reading -------------------------------------------------------------------------

    def runs(
        self,
        *,
        limit: int | None = None,
        preset: str | None = None,
        since: float | None = None,
        search: str | None = None,
        offset: int = 0,
    ) -> list[sqlite3.Row]:
        """Runs newest first; `search`: whose question holds this text, in any case."""
        where, parameters = ["1 = 1"], []
        if preset is not None:
            where.append("preset = ?")
            parameters.append(preset)
        if search is not None:  # instr, not LIKE: a % or _ in the text means itself
            where.append("instr(lower(query), lower(?)) > 0")
            parameters.append(search)
        if since is not None:
            where.append("started_at >= ?")
            parameters.append(since)
        sql = f"SELECT * FROM runs WHERE {' AND '.join(where)} ORDER BY started_at DESC, id DESC"
        if limit is not None or offset:
            sql += f" LIMIT {-1 if limit is None else int(limit)} OFFSET {int(offset)}"
        return self.db.execute(sql, parameters).fetchall()

    def find_run(self, run_id: str) -> dict[str, Any]:
        """A run by its id or a unique prefix of it, as recorded; UsageError otherwise."""
        rows = self.db.execute(
            "SELECT * FROM runs WHERE id LIKE ? ORDER BY started_at DESC LIMIT 2",
            (run_id.replace("%", "").replace("_", "") + "%",),
        ).fetchall()
        if not rows or not run_id:
            raise UsageError(f"no run {run_id!r} in {self.path}", "see 'council history'")
        if len(rows) > 1 and rows[0]["id"] != run_id:
            raise UsageError(f"run id {run_id!r} is ambiguous", "give more of its characters")
        return _full_run(rows[0], self.db)

    def resumes_of(self, run_id: str) -> list[sqlite3.Row]:
        """The runs that resumed `run_id` (`runs.resumed_from`), oldest first."""
        return self.db.execute(
            "SELECT id, started_at, status, exit_code FROM runs WHERE resumed_from = ? "
            "ORDER BY started_at, id",
            (run_id,),
        ).fetchall()

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
            full = _full_run(run, self.db)
            data = {k: v for k, v in full.items() if k not in ("document", "markdown")}
            data["plan"] = json.loads(full["plan"])
            data["calls"] = [dict(call) for call in self.calls(run["id"])]
            yield data
