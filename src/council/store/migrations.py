"""The history's schema, as numbered migrations applied in order when the file is opened.

Each migration runs once, in its own transaction, and its name is recorded in
`_council_migrations`, so a newer council opens an older file. A shipped migration
is never edited: a change to the schema is a new migration at the end.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

__all__ = ["MIGRATIONS", "Migration", "migration"]

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


@migration
def m003_call_finish_and_reasoning(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        ALTER TABLE calls ADD COLUMN finish_reason TEXT; -- stop, length, content_filter; NULL: none
        ALTER TABLE calls ADD COLUMN reasoning TEXT;     -- a reasoning model's thinking; NULL: none
        """,
    )


@migration
def m004_call_queued_and_limits(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        ALTER TABLE calls ADD COLUMN queued REAL;       -- seconds waiting for a slot; NULL: unknown
        ALTER TABLE calls ADD COLUMN resends INTEGER;   -- re-sent after the server turned it away
        ALTER TABLE runs ADD COLUMN limit_changes TEXT; -- JSON list of {host, old, new, reason}
        """,
    )


@migration
def m005_call_fitted(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        ALTER TABLE calls ADD COLUMN fitted TEXT;  -- JSON {"window", "cut_words"}; NULL: as built
        """,
    )


@migration
def m006_endpoint_limits(db: sqlite3.Connection) -> None:
    # What a run learned about an endpoint, so the next run starts from it (issue 14).
    _execute_script(
        db,
        """
        CREATE TABLE endpoint_limits (
            base_url TEXT NOT NULL,            -- normalised: scheme://host:port/path
            model TEXT NOT NULL,
            capacity INTEGER,                  -- calls at a time it took; NULL: not learned
            context_window INTEGER,            -- tokens; NULL: not learned
            window_source TEXT,                -- profile, server, error, history
            learned_at REAL,                   -- unix time
            origin TEXT,                       -- "profile NAME", --base-url, env
            PRIMARY KEY (base_url, model)
        );
        """,
    )


@migration
def m008_batch_jobs(db: sqlite3.Connection) -> None:
    # The provider batches a `council batch --via batch-api` created (issue 16), so the
    # same command after an interruption polls them again instead of paying twice.
    _execute_script(
        db,
        """
        CREATE TABLE batch_jobs (
            batch_id TEXT PRIMARY KEY,         -- the provider's id
            command_key TEXT NOT NULL,         -- sha256 of: --out, the input, every request
            part INTEGER NOT NULL,             -- which split of the input (0-based)
            base_url TEXT NOT NULL,            -- normalised
            input_file_id TEXT,
            requests INTEGER NOT NULL,
            status TEXT NOT NULL,              -- the provider's; "collected" once mapped back
            output_file_id TEXT,
            error_file_id TEXT,
            run_id TEXT,                       -- the history run that created it, if any
            created_at REAL NOT NULL,          -- unix time
            updated_at REAL NOT NULL
        );
        CREATE INDEX batch_jobs_by_command ON batch_jobs(command_key);
        """,
    )


@migration
def m009_costs(db: sqlite3.Connection) -> None:
    # What calls and runs cost (issue 17); NULL: unknown (no price), never 0 for unknown.
    # A call the budget did not let start is recorded with status 'not_started'.
    _execute_script(
        db,
        """
        ALTER TABLE calls ADD COLUMN cost_usd REAL;           -- USD; NULL: unknown
        ALTER TABLE calls ADD COLUMN cost_estimated INTEGER;  -- 1: partly estimated from text
        ALTER TABLE runs ADD COLUMN cost_usd REAL;            -- the sum of its known call costs
        """,
    )


@migration
def m010_prompt_cut_by_server(db: sqlite3.Connection) -> None:
    # A call whose server counted a large prompt at a fraction of council's estimate: it
    # probably cut the prompt without a word (issue 23). NULL: recorded before this.
    _execute_script(
        db,
        """
        ALTER TABLE calls ADD COLUMN prompt_cut_by_server INTEGER;  -- 1: cut, 0: not
        """,
    )


@migration
def m011_endpoint_took_and_slots(db: sqlite3.Connection) -> None:
    # What an endpoint took at once, and the slots it states (issue 21): a later run
    # starts all its calls at once where that is known to work, and asks /props once.
    _execute_script(
        db,
        """
        ALTER TABLE endpoint_limits ADD COLUMN took INTEGER;   -- calls at once, none turned away
        ALTER TABLE endpoint_limits ADD COLUMN slots INTEGER;  -- stated; 0: asked, none stated
        """,
    )


@migration
def m012_continued_from(db: sqlite3.Connection) -> None:
    # The run a follow-up (`--continue`) continued (issue 27): its question and answer
    # were the conversation so far. NULL: a new question.
    _execute_script(
        db,
        """
        ALTER TABLE runs ADD COLUMN continued_from TEXT;
        """,
    )
