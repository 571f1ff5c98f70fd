"""A batch past one machine: the provider's Batch API, and the files of a self-hosted runner.

    prepare_requests(items, plan, sys.stdout)                 # `council batch prepare`
    collect_outputs("outputs.jsonl", items_source="t.jsonl", out=output_file)
    summary = await run_via_batch_api(items, plan, endpoint, output_file)   # --via batch-api

A request line is `{"custom_id": "ITEM::PERSONA", "method": "POST", "url":
"/v1/chat/completions", "body": ...}`, one per persona per item, and its body is exactly
what a direct call sends (`endpoint.body.chat_body`, from the plan's calls, not
streamed). The same file is what vLLM's batch runner reads; its output lines
(`{"id", "custom_id", "response": {"status_code", "body"}, "error"}`) are read back by
`custom_id` (split on its last "::", so an item id may hold "::") into council's item
lines (`batch_output.item_line`). An item is "ok" when at least one persona answered
(`item_status`), as in a direct run.

`--via batch-api` splits the requests into batches below the provider's limits (50,000
requests or 200 MB a file; an item's requests stay in one batch), uploads and creates
them, polls them with a progress line on stderr, and maps their output and error files
back. The batch ids go into the history (`store.batch_jobs`) under a key made of the
output path, the input and every request line: the same command after an interruption
polls the batches it created instead of paying for them twice, and `--cancel` cancels
them (and keeps what they finished). Only an oracle's personas can go this way: a
synthesis needs their answers first, and every call must go to one endpoint.

Only `run_via_batch_api` loads the SDK (inside it): `prepare` and `collect` never do.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

from council.app.batch_input import BatchItem, read_items
from council.app.batch_output import OutputFile, encode_line, item_line, item_status
from council.config.endpoint_settings import EndpointSettings
from council.endpoint.body import CHAT_COMPLETIONS_URL, chat_body
from council.endpoint.stream import ShapeError, StreamReader
from council.engine.plan import OraclePlan, build_oracle_plan
from council.errors import EXIT_FAILURE, EXIT_OK, EXIT_PARTIAL, AuthError, EndpointError, UsageError
from council.render.safe_text import strip_controls
from council.store.batch_jobs import COLLECTED, BatchJob, jobs_for, save_job, set_status
from council.store.db import HistoryDB

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_REQUESTS",
    "BatchApiSummary",
    "CollectSummary",
    "collect_outputs",
    "custom_id",
    "prepare_requests",
    "request_lines",
    "run_via_batch_api",
    "split_custom_id",
]

# The provider's limits for one batch (OpenAI's): requests in its file, and the file's size.
MAX_BATCH_REQUESTS = 50_000
MAX_BATCH_BYTES = 200 * 1024 * 1024
SEPARATOR = "::"
POLL_INTERVAL = 30.0
# What a server's error message may take of an item line.
MAX_MESSAGE = 300

PlanSource = OraclePlan | Callable[[BatchItem], OraclePlan]


def custom_id(item_id: str, persona: str) -> str:
    return f"{item_id}{SEPARATOR}{persona}"


def split_custom_id(value: str) -> tuple[str, str]:
    """(item id, persona) of a custom_id; the item id may itself hold "::"."""
    item_id, separator, persona = value.rpartition(SEPARATOR)
    if not separator or not item_id or not persona:
        raise ValueError(f"custom_id {value[:80]!r} is not ITEM{SEPARATOR}PERSONA")
    return item_id, persona


# -- requests --------------------------------------------------------------------------------


def plan_for(plan: PlanSource, item: BatchItem) -> OraclePlan:
    """The item's plan: from a factory, or the run's plan asked the item's query."""
    if not isinstance(plan, OraclePlan):
        return plan(item)
    return build_oracle_plan(
        query=item.query,
        personas=list(plan.personas),
        endpoint=plan.endpoint,
        attachments=list(plan.attachments),
        arbiter=plan.arbiter,
        arbiter_fallback=plan.arbiter_fallback,
        endpoints=plan.endpoints,
    )


def _check(plan: OraclePlan) -> None:
    if not isinstance(plan, OraclePlan):
        raise UsageError(
            "a batch file holds an oracle's calls only",
            "use --mode oracle with --via batch-api, prepare and collect",
        )
    if plan.arbiter is not None:
        raise UsageError(
            "a batch file cannot hold the synthesis: it needs the personas' answers first",
            "leave out the arbiter (--synthesize) for --via batch-api and prepare",
        )
    elsewhere = sorted({c.persona for c in plan.calls if c.endpoint})
    if elsewhere:
        raise UsageError(
            f"{', '.join(elsewhere)} go to another endpoint; a batch goes to one",
            "drop those personas' `endpoint:` or run them without --via batch-api",
        )


def request_lines(item: BatchItem, plan: PlanSource) -> list[dict[str, Any]]:
    """The item's Batch API request lines, one per persona, each the body a direct call sends."""
    item_plan = plan_for(plan, item)
    _check(item_plan)
    return [
        {
            "custom_id": custom_id(item.id, call.persona),
            "method": "POST",
            "url": CHAT_COMPLETIONS_URL,
            "body": chat_body(call, {"response_format"}, stream=False),
        }
        for call in item_plan.calls
    ]


def _encode(request: dict[str, Any]) -> str:
    return json.dumps(request, ensure_ascii=False, separators=(",", ":")) + "\n"


def prepare_requests(items: Iterable[BatchItem], plan: PlanSource, out: TextIO) -> int:
    """Write every item's request lines to `out` (`council batch prepare`); how many."""
    written = 0
    for item in items:
        for request in request_lines(item, plan):
            out.write(_encode(request))
            written += 1
    out.flush()
    return written


# -- reading results -------------------------------------------------------------------------

_STATUS_KINDS = {
    400: "bad_request",
    401: "auth",
    403: "auth",
    404: "not_found",
    408: "timeout",
    429: "rate_limited",
}


def _message(detail: Any) -> str:
    if isinstance(detail, dict):
        detail = detail.get("message") or detail.get("code") or json.dumps(detail)[:MAX_MESSAGE]
    return " ".join(strip_controls(str(detail or "no detail")).split())[:MAX_MESSAGE]


def _failure(persona: str, kind: str, message: str) -> dict[str, Any]:
    return {"persona": persona, "error_kind": kind, "message": message}


def read_result(record: Any) -> tuple[str, str, dict[str, Any], bool]:
    """One output or error line: (item id, persona, the answer or failure, answered).

    ValueError when the line is not a batch result at all.
    """
    if not isinstance(record, dict) or not isinstance(record.get("custom_id"), str):
        raise ValueError('not a batch result (no "custom_id")')
    item_id, persona = split_custom_id(record["custom_id"])
    response = record.get("response")
    if not isinstance(response, dict):
        error = record.get("error")
        return item_id, persona, _failure(persona, "batch_error", _message(error)), False
    status = response.get("status_code")
    body = response.get("body")
    if status != 200:
        kind = "server_error" if isinstance(status, int) and status >= 500 else "http_error"
        kind = _STATUS_KINDS.get(status, kind) if isinstance(status, int) else kind
        detail = body.get("error") if isinstance(body, dict) else body
        return item_id, persona, _failure(persona, kind, f"{status}: {_message(detail)}"), False
    reader = StreamReader()
    try:
        reader.feed_completion(body)
    except ShapeError as exc:
        return item_id, persona, _failure(persona, "protocol", _message(str(exc))), False
    if not reader.text.strip():
        why = f"an empty answer (finish_reason {reader.finish_reason})"
        return item_id, persona, _failure(persona, "empty", why), False
    model = body.get("model") if isinstance(body.get("model"), str) else None
    answer = {
        "persona": persona,
        "text": reader.text,
        "model": strip_controls(model)[:200] if model else None,
        "tokens_in": reader.tokens_in,
        "tokens_out": reader.tokens_out,
        "finish_reason": reader.finish_reason,
        "reasoning": reader.reasoning or None,
    }
    return item_id, persona, answer, True


@dataclass
class _Results:
    """The results read so far, by item, in the order items first appeared."""

    by_item: dict[str, dict[str, tuple[dict[str, Any], bool]]] = field(default_factory=dict)
    bad_lines: int = 0

    def read(self, data: Iterable[bytes | str]) -> None:
        for raw in data:
            if not raw.strip():
                continue
            try:
                item_id, persona, result, answered = read_result(json.loads(raw))
            except ValueError:
                self.bad_lines += 1
                continue
            self.by_item.setdefault(item_id, {})[persona] = (result, answered)


def _line_for(
    item: BatchItem,
    results: dict[str, tuple[dict[str, Any], bool]],
    personas: Iterable[str],
    via: dict[str, Any],
) -> dict[str, Any]:
    """An item's output line from its personas' results (a persona without one failed)."""
    answers: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for persona in personas:
        result, answered = results.get(persona) or (
            _failure(persona, "missing", "no result for it in the batch output"),
            False,
        )
        (answers if answered else errors).append(result)

    def total(key: str) -> int | None:
        counts = [a[key] for a in answers if a.get(key) is not None]
        return sum(counts) if counts else None

    metrics = {
        "calls": len(answers) + len(errors),
        "answered": len(answers),
        "tokens_in": total("tokens_in"),
        "tokens_out": total("tokens_out"),
        **via,
    }
    return item_line(
        item,
        status=item_status(answers),
        answers=answers,
        answer=None,
        errors=errors,
        metrics=metrics,
    )


class _Writer:
    """Item lines to an OutputFile (in input order with --ordered) or to a text stream."""

    def __init__(self, out: OutputFile | IO[str]) -> None:
        self.out = out
        self.seq = 0
        self.ok = 0
        self.failed = 0

    def write(self, line: dict[str, Any]) -> None:
        if isinstance(self.out, OutputFile):
            self.out.write(self.seq, line)
        else:
            self.out.write(encode_line(line))
            self.out.flush()
        self.seq += 1
        if line["status"] == "ok":
            self.ok += 1
        else:
            self.failed += 1


@dataclass(frozen=True)
class CollectSummary:
    """What `council batch collect` did: items written, by status, and what did not fit."""

    ok: int
    failed: int
    missing: int  # items of the input with no result in the output file
    unknown: int  # results for an id the input does not have (written, without fields)
    bad_lines: int  # lines of the output file that are no batch result

    @property
    def exit_code(self) -> int:
        return _exit_code(self.ok, self.failed)


def _exit_code(ok: int, failed: int) -> int:
    if failed and not ok:
        return EXIT_FAILURE
    return EXIT_PARTIAL if failed else EXIT_OK


def _open_results(path: str, stdin: TextIO | None) -> Iterator[bytes | str]:
    if path == "-":
        yield from stdin if stdin is not None else sys.stdin
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below, after the last line
    except OSError as exc:
        raise UsageError(
            f"cannot read the batch output {path}: {exc.strerror or exc}",
            "give the output file the batch runner wrote",
        ) from None
    with handle:
        yield from handle


def collect_outputs(
    output_file: str,
    *,
    items_source: str | None,
    out: OutputFile | IO[str],
    template: str | None = None,
    stdin: TextIO | None = None,
    on_bad_line: Callable[[Any], None] | None = None,
) -> CollectSummary:
    """Turn a batch runner's output file into council's item lines (`council batch collect`).

    With `items_source` (the input the requests were prepared from, and the same
    `template`) the lines get the input's fields, in the input's order; without it
    they carry only the id. Results are grouped by item first, so an output file in
    any order works; it is held in memory while grouping.
    """
    results = _Results()
    results.read(_open_results(output_file, stdin))
    writer = _Writer(out)
    via = {"via": "batch"}
    missing = 0
    if items_source is not None:
        for item in read_items(items_source, template=template, on_bad_line=on_bad_line):
            found = results.by_item.pop(item.id, None)
            if found is None:
                missing += 1
                continue
            writer.write(_line_for(item, found, found, via))
    unknown = len(results.by_item) if items_source is not None else 0
    for item_id, found in results.by_item.items():
        writer.write(_line_for(BatchItem(item_id, "", {}, 0), found, found, via))
    return CollectSummary(writer.ok, writer.failed, missing, unknown, results.bad_lines)


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
        return _exit_code(self.items_ok, self.items_failed)


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
            encoded = [_encode(r) for r in requests]
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
    if getattr(error, "kind", None) == "auth":
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


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


async def run_via_batch_api(
    items: Iterable[BatchItem],
    plan: PlanSource,
    settings: EndpointSettings,
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
) -> BatchApiSummary:
    """Run the items' oracle calls through the provider's Batch API; their lines go to `out`.

    Items whose line in `out` says ok (and failed, unless `retry_failed`) are skipped.
    `identity` names the command beyond its requests (the input path, say): with `out`'s
    path and every request line it makes the key the batch ids are kept under. With
    `cancel`, the batches of the same command are cancelled and what they finished is
    kept. Interrupted (CancelledError) while polling, the batches go on at the provider
    and the same command picks them up again.
    """
    from council.endpoint.batch_api import BatchClient  # the SDK: only now
    from council.endpoint.errors import CallError

    report = progress or _stderr
    summary = BatchApiSummary()
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
                            summary.created += 1
                    summary.batch_ids = [j.batch_id for j in jobs]
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
    db: Any,
    jobs: list[Any],
    work: _Work,
    out: OutputFile,
    summary: BatchApiSummary,
    report: Callable[[str], None],
    poll_interval: float,
) -> None:
    """Poll every batch until it ends, collecting each as it does; a line when things change."""
    states: dict[str, Any] = {}
    pending = {job.batch_id: job for job in jobs}
    writer = _Writer(out)
    last = ""
    while pending:
        for batch_id in list(pending):
            state = await api.retrieve(batch_id)
            states[batch_id] = state
            if state.status != pending[batch_id].status:
                set_status(db, batch_id, state.status)
            if not state.final:
                continue
            results = _Results()
            for file_id in (state.output_file_id, state.error_file_id):
                if file_id:
                    results.read((await api.content(file_id)).splitlines())
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
            await asyncio.sleep(poll_interval)
    summary.items_ok += writer.ok
    summary.items_failed += writer.failed
    summary.items_pending = max(0, len(work.items) - writer.ok - writer.failed)
    for state in states.values():
        for message in state.errors[:3]:
            report(f"council: batch-api: {state.id}: {strip_controls(message)[:MAX_MESSAGE]}")


def _write_results(results: _Results, work: _Work, writer: _Writer, *, whole: bool) -> None:
    """Each item of the batch's results as a line; an item some persona of which never ran
    (the batch was cancelled or expired first) is left out, to be asked again whole."""
    via = {"via": "batch-api"}
    for item_id, found in results.by_item.items():
        known = work.items.get(item_id)
        if known is None:
            continue  # not an item of this command's to-do list (done since, or foreign)
        item, personas = known
        if not whole and any(p not in found for p in personas):
            continue
        writer.write(_line_for(item, found, personas, via))
