"""Batch files: the request lines of a batch, and reading a batch's results back.

    prepare_requests(items, plan, sys.stdout)       # `council batch prepare`
    collect_outputs("outputs.jsonl", items_source="tickets.jsonl", out=output_file)

A request line is `{"custom_id": "ITEM::PERSONA", "method": "POST", "url":
"/v1/chat/completions", "body": ...}`, one per persona per item, and its body is exactly
what a direct call sends (`endpoint.body.chat_body`, from the plan's calls, not
streamed): the format of OpenAI's Batch API and of vLLM's batch runner. Their output
lines (`{"id", "custom_id", "response": {"status_code", "body"}, "error"}`) are read
back by `custom_id` (split on its last "::", so an item id may hold "::") into
council's item lines (`batch.output.item_line`); an answer is validated like a direct
one (`endpoint.stream.StreamReader`). An item is "ok" when every persona
answered (`item_status`), as in a direct batch.

Only an oracle's personas fit in a batch file: a synthesis needs their answers first,
and every call must go to one endpoint. Nothing here loads the SDK.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, TextIO

from council.app.batch.items import BatchItem, read_items
from council.app.batch.output import OutputFile, encode_line, item_line, item_status
from council.endpoint.body import CHAT_COMPLETIONS_URL, chat_body
from council.endpoint.stream import ShapeError, StreamReader
from council.engine.plan import OraclePlan, build_oracle_plan
from council.errors import EXIT_FAILURE, EXIT_OK, EXIT_PARTIAL, UsageError
from council.render.safe_text import strip_controls

__all__ = [
    "MAX_MESSAGE",
    "CollectSummary",
    "IndexedResults",
    "PlanSource",
    "ResultWriter",
    "Results",
    "collect_outputs",
    "custom_id",
    "encode_request",
    "exit_code_for",
    "item_result_line",
    "prepare_requests",
    "request_lines",
    "split_custom_id",
]

SEPARATOR = "::"
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


def encode_request(request: dict[str, Any]) -> str:
    return json.dumps(request, ensure_ascii=False, separators=(",", ":")) + "\n"


def prepare_requests(items: Iterable[BatchItem], plan: PlanSource, out: TextIO) -> int:
    """Write every item's request lines to `out` (`council batch prepare`); how many."""
    written = 0
    for item in items:
        for request in request_lines(item, plan):
            out.write(encode_request(request))
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
class Results:
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

    def take(self, item_id: str) -> dict[str, tuple[dict[str, Any], bool]] | None:
        return self.by_item.pop(item_id, None)

    def rest(self) -> Iterator[tuple[str, dict[str, tuple[dict[str, Any], bool]]]]:
        while self.by_item:
            item_id = next(iter(self.by_item))
            yield item_id, self.by_item.pop(item_id)


def item_result_line(
    item: BatchItem,
    results: dict[str, tuple[dict[str, Any], bool]],
    personas: Iterable[str],
    via: dict[str, Any],
    with_query: bool = True,
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
        status=item_status(answers, errors),
        answers=answers,
        answer=None,
        errors=errors,
        metrics=metrics,
        with_query=with_query,
    )


class ResultWriter:
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
        return exit_code_for(self.ok, self.failed)


def exit_code_for(ok: int, failed: int) -> int:
    if failed and not ok:
        return EXIT_FAILURE
    return EXIT_PARTIAL if failed else EXIT_OK


class IndexedResults:
    """A results file by item without holding it: where each item's lines start.

    A runner's output is as big as every answer together; only offsets are kept, and an
    item's lines are read again (by seeking) when its turn comes.
    """

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.offsets: dict[str, list[int]] = {}
        self.bad_lines = 0
        offset = 0
        for raw in handle:
            start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
                if not isinstance(record, dict) or not isinstance(record.get("custom_id"), str):
                    raise ValueError("no custom_id")
                item_id = split_custom_id(record["custom_id"])[0]
            except ValueError:
                self.bad_lines += 1
                continue
            self.offsets.setdefault(item_id, []).append(start)

    def take(self, item_id: str) -> dict[str, tuple[dict[str, Any], bool]] | None:
        """The item's results by persona (read once: a second take is None)."""
        offsets = self.offsets.pop(item_id, None)
        if offsets is None:
            return None
        found: dict[str, tuple[dict[str, Any], bool]] = {}
        for offset in offsets:
            self.handle.seek(offset)
            _, persona, result, answered = read_result(json.loads(self.handle.readline()))
            found[persona] = (result, answered)
        return found

    def rest(self) -> Iterator[tuple[str, dict[str, tuple[dict[str, Any], bool]]]]:
        """The items not taken yet, in the order they first appeared."""
        for item_id in list(self.offsets):
            found = self.take(item_id)
            assert found is not None
            yield item_id, found


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
    they carry only the id. Results are grouped by item, so an output file in any order
    works: a file is indexed (offsets only, then read again item by item); standard
    input is held in memory.
    """
    if output_file == "-":
        results: Results | IndexedResults = Results()
        results.read(stdin if stdin is not None else sys.stdin)  # a pipe: held in memory
        return _collect(results, items_source, out, template, on_bad_line)
    try:
        handle = open(output_file, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise UsageError(
            f"cannot read the batch output {output_file}: {exc.strerror or exc}",
            "give the output file the batch runner wrote",
        ) from None
    with handle:
        return _collect(IndexedResults(handle), items_source, out, template, on_bad_line)


def _collect(
    results: Results | IndexedResults,
    items_source: str | None,
    out: OutputFile | IO[str],
    template: str | None,
    on_bad_line: Callable[[Any], None] | None,
) -> CollectSummary:
    writer = ResultWriter(out)
    via = {"via": "batch"}
    missing = 0
    unknown = 0
    if items_source is not None:
        for item in read_items(items_source, template=template, on_bad_line=on_bad_line):
            found = results.take(item.id)
            if found is None:
                missing += 1
                continue
            writer.write(item_result_line(item, found, found, via))
    for item_id, found in results.rest():
        unknown += 1 if items_source is not None else 0
        writer.write(item_result_line(BatchItem(item_id, "", {}, 0), found, found, via))
    return CollectSummary(writer.ok, writer.failed, missing, unknown, results.bad_lines)
