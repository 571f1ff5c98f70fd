"""The provider batches of `council batch --via batch-api`, kept so a command can find its own.

    with HistoryDB.open() as db:
        save_job(db, BatchJob(batch_id="batch_1", command_key=key, part=0, ...))
        pending = [j for j in jobs_for(db, key) if not j.collected]
        set_status(db, "batch_1", "completed", output_file_id="file-2")

A command is known by its key (`command_key`: the output path, the input and every
request line, hashed by the app), so running the same command again after an
interruption finds the batches it already paid for, and `--cancel` finds the ones to
cancel. Rows are never reused: a batch once collected stays as a record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from council.store.db import HistoryDB
from council.store.limits import normalize_url

__all__ = ["COLLECTED", "BatchJob", "jobs_for", "save_job", "set_status"]

# The status of a batch whose results are in the output file.
COLLECTED = "collected"

_COLUMNS = (
    "batch_id, command_key, part, base_url, input_file_id, requests, status, "
    "output_file_id, error_file_id, run_id, created_at, updated_at"
)


@dataclass(frozen=True)
class BatchJob:
    """One provider batch, as the history keeps it."""

    batch_id: str
    command_key: str
    part: int
    base_url: str
    input_file_id: str | None
    requests: int
    status: str
    output_file_id: str | None = None
    error_file_id: str | None = None
    run_id: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def collected(self) -> bool:
        return self.status == COLLECTED


def save_job(db: HistoryDB, job: BatchJob) -> None:
    now = time.time()
    db.write(
        f"INSERT INTO batch_jobs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            job.batch_id,
            job.command_key,
            job.part,
            normalize_url(job.base_url),
            job.input_file_id,
            job.requests,
            job.status,
            job.output_file_id,
            job.error_file_id,
            job.run_id,
            job.created_at or now,
            now,
        ),
    )


def jobs_for(db: HistoryDB, command_key: str, base_url: str | None = None) -> list[BatchJob]:
    """The batches of a command (at `base_url`, any spelling, when given), in part order."""
    sql = f"SELECT {_COLUMNS} FROM batch_jobs WHERE command_key = ?"
    parameters: tuple[str, ...] = (command_key,)
    if base_url is not None:
        sql += " AND base_url = ?"
        parameters += (normalize_url(base_url),)
    rows = db.db.execute(sql + " ORDER BY created_at, part", parameters).fetchall()
    return [BatchJob(*tuple(row)) for row in rows]


def set_status(
    db: HistoryDB,
    batch_id: str,
    status: str,
    *,
    output_file_id: str | None = None,
    error_file_id: str | None = None,
) -> None:
    """A batch's new status (and its files, once it has them)."""
    db.write(
        "UPDATE batch_jobs SET status = ?, output_file_id = COALESCE(?, output_file_id), "
        "error_file_id = COALESCE(?, error_file_id), updated_at = ? WHERE batch_id = ?",
        (status, output_file_id, error_file_id, time.time(), batch_id),
    )
