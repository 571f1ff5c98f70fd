"""A batch past one machine: the provider's Batch API (`council batch --via batch-api`).

    summary = await run_via_batch_api(items, plan, endpoint, output_file)

The items' request lines (`batch.files.request_lines`: one per persona per item, the
body a direct call sends) are split into batches below the provider's limits (50,000
requests or 200 MB a file; an item's requests stay in one batch), uploaded, created,
polled with a progress line on stderr, and their output and error files are mapped
back by `custom_id` into item lines (`batch.files`). The batch ids go into the history
(`store.batch_jobs`) under a key made of the output path, the input and every request
line: the same command after an interruption polls the batches it created instead of
paying for them twice, and `--cancel` cancels them (and keeps what they finished).

Only `run_via_batch_api` loads the SDK (inside it): importing this module does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from council.app.batch.files import (
    MAX_MESSAGE,
    IndexedResults,
    PlanSource,
    ResultWriter,
    collect_outputs,
    encode_request,
    exit_code_for,
    item_result_line,
    prepare_requests,
    request_lines,
    split_custom_id,
)
from council.app.batch.items import BatchItem
from council.app.batch.output import OutputFile
from council.config.endpoint_settings import EndpointSettings
from council.errors import AuthError, EndpointError, ErrorKind, UsageError
from council.render.safe_text import strip_controls
from council.store.batch_jobs import COLLECTED, BatchJob, jobs_for, save_job, set_status
from council.store.db import HistoryDB

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_REQUESTS",
    "POLL_CAP",
    "POLL_INTERVAL",
    "BatchApiSummary",
    "collect_outputs",
    "poll_waits",
    "prepare_requests",
    "run_via_batch_api",
]

# The provider's limits for one batch (OpenAI's): requests in its file, and the file's size.
MAX_BATCH_REQUESTS = 50_000
MAX_BATCH_BYTES = 200 * 1024 * 1024
# The first wait between two polls, doubled after each poll up to POLL_CAP: a job of
# seconds is seen done within about a second, a job of hours costs a poll every 30 s.
POLL_INTERVAL = 1.0
POLL_CAP = 30.0

# -- the provider's Batch API ------------------------------------------------------------------


@dataclass
class BatchApiSummary:
    """What `--via batch-api` did, for the summary on stderr and the exit code."""

    batch_ids: list[str] = field(default_factory=list)
    created: int = 0  # batches created by this run
    resumed: int = 0  # batches an earlier run created, polled again
    cancelled: int = 0
    requests: int = 0  # request lines of the items to do
    items_ok: int = 0
    items_failed: int = 0
    items_skipped: int = 0  # already in --out
    items_pending: int = 0  # in a batch that ended before running them: asked next time

    @property
    def exit_code(self) -> int:
        """0 when every item asked has its answer; items left pending count as failed."""
        return exit_code_for(self.items_ok, self.items_failed + self.items_pending)


@dataclass
class _Chunk:
    path: Path
    requests: int = 0
    size: int = 0


@dataclass
class _Work:
    """The items to ask, their personas, the request files, and the command's key."""

    items: dict[str, tuple[BatchItem, tuple[str, ...]]] = field(default_factory=dict)
    chunks: list[_Chunk] = field(default_factory=list)
    key: str = ""
    skipped: int = 0
    requests: int = 0
    with_query: bool = True  # item lines carry their question (not with --no-query)
    on_line: Callable[[dict[str, Any]], None] | None = None  # told each line written


def _split(
    items: Iterable[BatchItem],
    plan: PlanSource,
    out: OutputFile,
    folder: Path,
    *,
    identity: str,
    retry_failed: bool,
    max_requests: int,
    max_bytes: int,
) -> _Work:
    """Write the request files, each within the limits; hash every request into the key.

    The key covers the items already done too, so a resumed command (fewer items to
    do) still finds the batches it created.
    """
    work = _Work()
    digest = hashlib.sha256(identity.encode("utf-8", "surrogatepass") + b"\0")
    handle: IO[str] | None = None
    try:
        for item in items:
            requests = request_lines(item, plan)
            encoded = [encode_request(r) for r in requests]
            for line in encoded:
                digest.update(line.encode("utf-8", "surrogatepass"))
            done = item.id in out.ok_ids or (item.id in out.failed_ids and not retry_failed)
            if done:
                work.skipped += 1
                continue
            size = sum(len(line.encode("utf-8", "surrogatepass")) for line in encoded)
            if len(encoded) > max_requests or size > max_bytes:
                raise UsageError(
                    f"item {item.id!r} alone is over a batch's limits "
                    f"({len(encoded)} requests, {size:,} bytes)",
                    "shorten it, or run it without --via batch-api",
                )
            chunk = work.chunks[-1] if work.chunks else None
            if (
                chunk is None
                or chunk.requests + len(encoded) > max_requests
                or chunk.size + size > max_bytes
            ):
                if handle is not None:
                    handle.close()
                chunk = _Chunk(folder / f"requests-{len(work.chunks) + 1}.jsonl")
                work.chunks.append(chunk)
                handle = open(chunk.path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
            assert handle is not None
            handle.write("".join(encoded))
            chunk.requests += len(encoded)
            chunk.size += size
            work.requests += len(encoded)
            work.items[item.id] = (
                item,
                tuple(split_custom_id(r["custom_id"])[1] for r in requests),
            )
    finally:
        if handle is not None:
            handle.close()
    work.key = digest.hexdigest()
    return work


def _endpoint_error(error: Any, settings: EndpointSettings) -> Exception:
    if getattr(error, "kind", None) == ErrorKind.AUTH:
        return AuthError(
            f"{settings.host} refused the key for the Batch API: {error.message}",
            f"check {settings.api_key_env}",
        )
    return EndpointError(
        f"the Batch API of {settings.host} failed: {error.message}",
        "run the same command again: council keeps the batch ids and polls them again",
    )


def _progress_line(states: dict[str, Any]) -> str:
    total = sum(s.total for s in states.values())
    done = sum(s.completed + s.failed for s in states.values())
    failed = sum(s.failed for s in states.values())
    statuses: dict[str, int] = {}
    for state in states.values():
        name = strip_controls(state.status)[:40]
        statuses[name] = statuses.get(name, 0) + 1
    shown = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
    return (
        f"council: batch-api: {len(states)} batch{'es' if len(states) != 1 else ''} ({shown}); "
        f"{done:,}/{total:,} requests done, {failed:,} failed"
    )


def poll_waits(first: float, cap: float = POLL_CAP) -> Iterator[float]:
    """The waits between polls: `first`, then twice the last, up to `cap` (or `first`
    when that is longer: a long --poll-interval is kept as given)."""
    wait, most = first, max(first, cap)
    while True:
        yield wait
        wait = min(most, wait * 2)


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


async def run_via_batch_api(
    items: Iterable[BatchItem],
    plan: PlanSource,
    settings: EndpointSettings | Any,
    out: OutputFile,
    *,
    cancel: bool = False,
    progress: Callable[[str], None] | None = None,
    poll_interval: float = POLL_INTERVAL,
    max_requests: int = MAX_BATCH_REQUESTS,
    max_bytes: int = MAX_BATCH_BYTES,
    retry_failed: bool = False,
    identity: str = "",
    run_id: str | None = None,
    db_path: Path | None = None,
    with_query: bool = True,
    summary: BatchApiSummary | None = None,
    on_line: Callable[[dict[str, Any]], None] | None = None,
) -> BatchApiSummary:
    """Run the items' oracle calls through the provider's Batch API; their lines go to `out`.

    Items whose line in `out` says ok (and failed, unless `retry_failed`) are skipped.
    `identity` names the command beyond its requests (the input path, say): with `out`'s
    path and every request line it makes the key the batch ids are kept under. With
    `cancel`, the batches of the same command are cancelled and what they finished is
    kept. Interrupted (CancelledError) while polling, the batches go on at the provider
    and the same command picks them up again.

    `summary`: filled in as the run goes (the batch ids as soon as each is known), so that
    a caller interrupted half way can say which batches go on. `on_line`: told each item
    line written (the history records its calls). Polls wait `poll_interval` first, then
    longer (`poll_waits`).
    """
    from council.endpoint.batch_api import BatchClient  # the SDK: only now
    from council.endpoint.errors import CallError

    # The endpoint, or the resolved settings that hold it (`ResolvedSettings.endpoint`).
    settings = getattr(settings, "endpoint", settings)
    report = progress or _stderr
    summary = summary if summary is not None else BatchApiSummary()
    out_name = str(out.path.resolve()) if out.path is not None else "-"
    with tempfile.TemporaryDirectory(prefix="council-batch-") as folder:
        work = _split(
            items,
            plan,
            out,
            Path(folder),
            identity=f"{out_name}\0{identity}",
            retry_failed=retry_failed,
            max_requests=max(1, max_requests),
            max_bytes=max(1, max_bytes),
        )
        work.with_query, work.on_line = with_query, on_line
        summary.items_skipped, summary.requests = work.skipped, work.requests
        with HistoryDB.open(db_path) as db:
            known = [j for j in jobs_for(db, work.key, settings.base_url) if not j.collected]
            if cancel and not known:
                raise UsageError(
                    "no batch of this command is running at the provider",
                    "--cancel takes the same input, flags and --out as the batch it cancels",
                )
            if not known and not work.items:
                return summary  # everything is done already
            try:
                async with BatchClient(settings) as api:
                    jobs = list(known)
                    summary.batch_ids = [j.batch_id for j in jobs]
                    summary.resumed = len(known) if not cancel else 0
                    if cancel:
                        for job in known:
                            state = await api.retrieve(job.batch_id)
                            if not state.final:
                                await api.cancel(job.batch_id)
                                summary.cancelled += 1
                    elif not known:
                        for part, chunk in enumerate(work.chunks):
                            jobs.append(await _create(api, db, work, part, chunk, settings, run_id))
                            summary.batch_ids.append(jobs[-1].batch_id)
                            summary.created += 1
                    await _poll_and_collect(
                        api, db, jobs, work, out, summary, report, poll_interval
                    )
            except CallError as error:
                raise _endpoint_error(error, settings) from None
    return summary


async def _create(
    api: Any,
    db: HistoryDB,
    work: _Work,
    part: int,
    chunk: _Chunk,
    settings: EndpointSettings,
    run_id: str | None,
) -> BatchJob:
    """Upload a request file and create its batch, keeping its id in the history at once.

    Interrupted half way, it still finishes (a create already sent may have made the
    batch, and its id must not be lost) and then stops.
    """

    async def create() -> BatchJob:
        file_id = await api.upload(chunk.path)
        state = await api.create(file_id, {"council_key": work.key[:32]})
        job = BatchJob(
            batch_id=state.id,
            command_key=work.key,
            part=part,
            base_url=settings.base_url,
            input_file_id=file_id,
            requests=chunk.requests,
            status=state.status,
            run_id=run_id,
        )
        save_job(db, job)
        return job

    task = asyncio.ensure_future(create())
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await task
        raise


async def _poll_and_collect(
    api: Any,
    db: HistoryDB,
    jobs: list[BatchJob],
    work: _Work,
    out: OutputFile,
    summary: BatchApiSummary,
    report: Callable[[str], None],
    poll_interval: float,
) -> None:
    """Poll every batch until it ends, collecting each as it does; a line when things change."""
    states: dict[str, Any] = {}
    pending = {job.batch_id: job for job in jobs}
    writer = ResultWriter(out)
    last = ""
    waits = poll_waits(poll_interval)
    while pending:
        for batch_id in list(pending):
            state = await api.retrieve(batch_id)
            states[batch_id] = state
            if state.status != pending[batch_id].status:
                set_status(db, batch_id, state.status)
                pending[batch_id] = dataclasses.replace(pending[batch_id], status=state.status)
            if not state.final:
                continue
            with tempfile.TemporaryFile() as downloaded:  # results are not held in memory
                for file_id in (state.output_file_id, state.error_file_id):
                    if file_id:
                        await api.download(file_id, downloaded)
                        downloaded.write(b"\n")  # a file whose last line has no newline
                downloaded.seek(0)
                results = IndexedResults(downloaded)
                _write_results(results, work, writer, whole=state.status == "completed")
            set_status(
                db,
                batch_id,
                COLLECTED,
                output_file_id=state.output_file_id,
                error_file_id=state.error_file_id,
            )
            del pending[batch_id]
        line = _progress_line(states)
        if line != last:
            report(line)
            last = line
        if pending:
            await asyncio.sleep(next(waits))
    summary.items_ok += writer.ok
    summary.items_failed += writer.failed
    summary.items_pending = max(0, len(work.items) - writer.ok - writer.failed)
    for state in states.values():
        for message in state.errors[:3]:
            report(f"council: batch-api: {state.id}: {strip_controls(message)[:MAX_MESSAGE]}")


def _write_results(
    results: IndexedResults, work: _Work, writer: ResultWriter, *, whole: bool
) -> None:
    """Each item of the batch's results as a line; an item some persona of which never ran
    (the batch was cancelled or expired first) is left out, to be asked again whole."""
    via = {"via": "batch-api"}
    for item_id, found in results.rest():
        known = work.items.get(item_id)
        if known is None:
            continue  # not an item of this command's to-do list (done since, or foreign)
        item, personas = known
        if not whole and any(p not in found for p in personas):
            continue
        line = item_result_line(item, found, personas, via, work.with_query)
        writer.write(line)
        if work.on_line is not None:
            work.on_line(line)
