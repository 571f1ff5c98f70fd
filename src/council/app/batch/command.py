"""`council batch FILE`: the same council over every item of a file, resumable, within limits.

Wires a batch: flags -> the resolved council (as `oracle`/`deliberate` resolve it) ->
a plan per item (built as each item is read) -> the fan-out engine (`engine/batch.py`)
-> one line per item in `--out` (`app/batch/output.py`), as each item ends.

Resume is per item: the same command with the same `--out` skips the items whose
line says ok, and also those whose line says failed unless `--retry-failed` (then
they are asked again, and their new line replaces the old). An item that was
running when the batch stopped has no line, so it is asked again whole.

The exit code covers every item of the input that has a line: 0 when none failed,
1 when none is ok, 3 otherwise (so a failed line kept from an earlier run still
says 3); 130 / 143 / 129 when a signal stopped the batch (every finished line is
kept), 2 for a usage or configuration error. The whole batch is one run in the
history (command "batch"), with every item's calls.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from council.app.ask import (
    ResolvedCouncil,
    budget_limits,
    deliberation_plan,
    oracle_plan,
    resolve_council,
    serving_plan,
)
from council.app.batch.items import BadLine, BatchItem, count_items, read_items
from council.app.batch.output import OutputFile, item_line
from council.app.flags import AskFlags
from council.config.defaults import DEFAULT_OUTAGE_LIMIT
from council.engine.model import CallOutcome, StopReason
from council.engine.plan import DeliberationPlan, OraclePlan, estimated_input_tokens
from council.engine.results import BatchProgress, DeliberationResult, OracleResult
from council.errors import EXIT_FAILURE, UsageError
from council.render.batch_progress import BatchProgressView
from council.render.format import count_label
from council.render.json_out import dumps
from council.render.safe_text import strip_controls

if TYPE_CHECKING:  # the engine (and openai) only for a real run: --dry-run imports neither
    from council.engine.batch import BatchJob, BatchRun, ItemOutcome

__all__ = ["BatchOptions", "run_batch"]

MODES = ("oracle", "deliberate")
VIAS = ("direct", "batch-api")
# Items started at once per call the endpoint takes at once: enough waiting calls to keep
# every slot busy while an item's last call finishes, few enough to bound memory.
ITEMS_PER_SLOT = 1
# The failed calls whose messages the history keeps for `council show` (the rest: --out).
RECORDED_ERRORS = 2000


@dataclass(frozen=True)
class BatchOptions:
    """The flags of `council batch` beyond the ones oracle and deliberate share."""

    source: str
    out: str | None = None
    mode: str = "oracle"
    synthesize: bool = False
    template: str | None = None
    strict: bool = False
    ordered: bool = False
    retry_failed: bool = False
    max_items: int | None = None
    outage_limit: float = DEFAULT_OUTAGE_LIMIT
    max_tokens_total: int | None = None
    via: str = "direct"
    cancel: bool = False
    rounds: int | None = None
    speculative: bool | None = None
    threshold: float | None = None
    max_wasted_tokens: int | None = None
    no_query: bool = False  # item lines without their question (`--no-query`)
    poll_interval: float | None = None  # --via batch-api: the first wait between polls
    # The command's arguments as typed (after `council`): Ctrl-C of a batch-API run
    # prints them with --cancel, the command that cancels its provider batches.
    command_line: tuple[str, ...] | None = None


PlanFor = Callable[[str], OraclePlan | DeliberationPlan]


def _check(flags: AskFlags, options: BatchOptions) -> None:
    """Usage errors before anything is read or sent."""
    if options.mode not in MODES:
        raise UsageError(f"--mode {options.mode} is not a mode", "use oracle or deliberate")
    if options.via not in VIAS:
        raise UsageError(f"--via {options.via} is not a way to run", "use direct or batch-api")
    if options.poll_interval is not None:
        if options.via != "batch-api":
            raise UsageError("--poll-interval goes with --via batch-api", "drop it, or add that")
        if not (0 < options.poll_interval < float("inf")):
            raise UsageError(
                f"--poll-interval {options.poll_interval:g}: expected seconds above 0",
                "e.g. --poll-interval 5",
            )
    if options.out is None and not flags.dry_run:
        raise UsageError("council batch needs --out", "give --out FILE (or - for stdout)")
    if flags.jsonl_output:
        raise UsageError("--jsonl does not apply to a batch", "its --out file is JSON lines")
    if flags.vote or flags.rank:
        # An item line has no place for a tally or a ranking yet: refused, not ignored.
        raise UsageError(
            "--vote and --rank do not run in a batch yet",
            "drop them, or ask the questions one by one with council oracle",
        )
    if flags.position_checks is not None or flags.self_check_rate is not None:
        raise UsageError(
            "--position-checks and --self-check-rate measure --rank's reviewers",
            "drop them: a batch runs no --rank",
        )
    if flags.json_output and options.out == "-":
        raise UsageError("--json and --out - both write to stdout", "give --out a file")
    if options.cancel and options.via != "batch-api":
        raise UsageError("--cancel cancels Batch API jobs", "add --via batch-api")
    if options.via == "batch-api" and options.mode != "oracle":
        raise UsageError("--via batch-api runs oracle mode only", "drop --mode deliberate")
    if options.max_items is not None and options.max_items < 0:
        raise UsageError("--max-items must be 0 or more", "give it a count of items")
    budget_limits(flags)  # --budget-usd and --max-tokens-total checked as for one run
    if options.max_tokens_total is not None and options.max_tokens_total <= 0:
        raise UsageError("--max-tokens-total must be more than 0", "give it a token count")


def _shared_budget(flags: AskFlags, template: OraclePlan | DeliberationPlan) -> Any:
    """--budget-usd: one budget for the whole batch, its prices checked before any item.

    --max-tokens-total keeps its batch meaning (no item starts once that many tokens
    were used), so the shared budget holds the dollars only.
    """
    if flags.budget_usd is None:
        return None
    from council.engine.budget import Budget
    from council.engine.cost import check_prices

    budget = Budget(usd=flags.budget_usd)
    check_prices(template, budget)  # an unpriced model: refused before anything is sent
    return budget


def _plan_for(request: ResolvedCouncil, options: BatchOptions) -> PlanFor:
    """How an item's question becomes its plan, as `oracle` or `deliberate` would build it."""
    if options.mode == "oracle":
        return lambda query: oracle_plan(request, query, synthesize=options.synthesize)
    return lambda query: deliberation_plan(
        request, query, max_wasted_tokens=options.max_wasted_tokens
    )


def _say(line: str) -> None:
    """One line on stderr, cleaned of control sequences (it may quote the input file)."""
    sys.stderr.write(strip_controls(line) + "\n")
    sys.stderr.flush()


def _items(options: BatchOptions, on_bad_line: Callable[[BadLine], None]) -> Iterator[BatchItem]:
    return read_items(
        options.source, template=options.template, strict=options.strict, on_bad_line=on_bad_line
    )


def _check_template(options: BatchOptions) -> None:
    """A --template against the input's first item, before anything is written or sent.

    The reader raises the UsageError ("did you mean {body}?") at a first item that lacks
    a field the template names; standard input cannot be read twice, so there the
    reading itself stops the batch at that item, before any is asked.
    """
    if options.template is None or options.source == "-":
        return
    next(_items(options, lambda bad: None), None)  # dropped at once: the file is closed


def _reporting_bad_lines(source: str) -> Callable[[BadLine], None]:
    shown = "standard input" if source == "-" else source

    def report(bad: BadLine) -> None:
        _say(f"council: {shown}:{bad.line}: {bad.reason}; skipped (--strict stops instead)")

    return report


def run_batch(flags: AskFlags, options: BatchOptions) -> int:
    """`council batch FILE`: run (or with --dry-run, estimate) the batch; the exit code."""
    _check(flags, options)
    _check_template(options)
    values = flags.setting_values()
    if options.mode == "deliberate":
        values = flags.setting_values(
            rounds=options.rounds, speculative=options.speculative, threshold=options.threshold
        )
    request = resolve_council(flags, values)
    for note in request.notes:
        _say(note)
    if request.escalate not in (None, False):  # said, not silently ignored
        _say(
            "council: note: the preset's escalate: applies to council oracle and deliberate; "
            "council batch asks every persona of every item"
        )
    plan_for = _plan_for(request, options)
    template = plan_for("")
    if flags.dry_run:
        return _dry_run(flags, options, plan_for, template)
    if options.via == "batch-api":
        return _via_batch_api(flags, options, template, plan_for, request)
    record = request.record_options(no_history=flags.no_history, no_store_text=flags.no_store_text)
    with serving_plan(template) as served:

        def served_plan(query: str) -> OraclePlan | DeliberationPlan:
            # Each item's plan on the endpoints as served (the embedded model's URL).
            return replace(plan_for(query), endpoint=served.endpoint, endpoints=served.endpoints)

        return _run(flags, options, served_plan, served, record)


def _calls_per_item(plan: OraclePlan | DeliberationPlan) -> int:
    """The most calls one item makes (a deliberation: every round and its verdict)."""
    if isinstance(plan, OraclePlan):
        return len(plan.calls) + (1 if plan.synthesize else 0)
    return plan.rounds * (len(plan.personas) + 1)


def _dry_run(flags: AskFlags, options: BatchOptions, plan_for: PlanFor, template: Any) -> int:
    """Count the items and estimate calls and input tokens; send nothing, import no openai."""
    items = tokens = 0
    bad: list[BadLine] = []
    for item in _items(options, bad.append):
        items += 1
        plan = plan_for(item.query)
        calls = plan.calls if isinstance(plan, OraclePlan) else plan.example_calls()
        tokens += estimated_input_tokens(calls[: len(plan.personas)])
        if options.max_items is not None and items >= options.max_items:
            break
    per_item = _calls_per_item(template)
    summary = {
        "source": options.source,
        "mode": options.mode,
        "items": items,
        "bad_lines": len(bad),
        "personas": [p.name for p in template.personas],
        "calls_per_item_at_most": per_item,
        "calls_at_most": items * per_item,
        "estimated_input_tokens_first_round": tokens,
        "max_concurrency": template.max_concurrency,
        "endpoint": template.endpoint.describe(),
    }
    if flags.json_output:
        sys.stdout.write(dumps(summary) + "\n")
        return 0
    lines = [
        f"# council batch --dry-run: {options.source}",
        "",
        f"- items: {items:,} ({len(bad):,} bad lines skipped)",
        f"- mode: {options.mode}, personas: {', '.join(summary['personas'])}",
        f"- calls: at most {items * per_item:,} ({per_item} an item)",
        f"- input tokens, first round: about {tokens:,}",
        f"- calls at once: at most {template.max_concurrency}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


class _Lines:
    """What happens as each item ends: its line in --out, the progress view told."""

    def __init__(self, out: OutputFile, view: BatchProgressView, *, with_query: bool) -> None:
        self.out = out
        self.view = view
        self.with_query = with_query
        # The failed calls' messages, by item, for the history (`council show`): the
        # calls' rows keep no message. Bounded: a batch of failures is one outage.
        self.errors: list[dict[str, Any]] = []

    def __call__(self, outcome: ItemOutcome) -> None:
        item: BatchItem = outcome.job.payload
        line = _item_line(item, outcome, with_query=self.with_query)
        self.out.write(outcome.job.seq, line)
        for error in line["errors"]:
            if error.get("persona") is not None and len(self.errors) < RECORDED_ERRORS:
                self.errors.append({"item": item.id, **error})
        self.view.item_ended()


def _answer_dict(outcome: CallOutcome, plan: OraclePlan | DeliberationPlan) -> dict[str, Any]:
    data = outcome.to_dict()
    data["model"] = plan.where(outcome.persona)[0]
    del data["role"]  # always a persona's: the arbiter's text is the line's "answer"
    for unshown in ("reasoning", "fitted"):
        if data.get(unshown) is None:
            data.pop(unshown, None)
    return data


def _error_dict(outcome: CallOutcome) -> dict[str, Any]:
    return {
        "persona": outcome.persona,
        "role": outcome.role,
        "error_kind": outcome.error_kind,
        "message": outcome.message,
    }


# The fields of the council's answer an item line keeps, by mode (`answer_record`'s).
_LINE_ANSWER = {
    "oracle": ("text", "persona"),
    "deliberate": ("text", "round", "converged", "confidence", "dissent"),
}


def _item_line(item: BatchItem, outcome: ItemOutcome, *, with_query: bool) -> dict[str, Any]:
    """The item's line: every answer, the council's one answer, every error, the metrics."""
    result, plan = outcome.result, outcome.job.plan
    answers: list[CallOutcome] = []
    errors: list[CallOutcome] = []
    answer: dict[str, Any] | None = None
    if isinstance(result, OracleResult | DeliberationResult):
        record = result.answer_record
        if record["text"] is not None:  # a synthesis, or a verdict: the council answered
            keys = _LINE_ANSWER[
                "deliberate" if isinstance(result, DeliberationResult) else "oracle"
            ]
            answer = {key: record[key] for key in keys}
    if isinstance(result, OracleResult):
        answers, errors = result.answers, result.failures
        synthesis = result.synthesis
        if synthesis is not None and not synthesis.answered:
            errors = [*errors, synthesis]
    elif isinstance(result, DeliberationResult):
        final = result.final_round
        answers = final.answers if final is not None else []
        errors = result.kept_failures
        if result.verdict_round is None or result.stop_reason == StopReason.ARBITER_FAILED:
            arbiter = final.arbiter if final is not None else None
            if arbiter is not None and not arbiter.answered:
                errors = [*errors, arbiter]
    error_lines = [_error_dict(e) for e in errors]
    if outcome.error is not None:
        error_lines.append({"error_kind": "internal", "message": outcome.error})
    return item_line(
        item,
        status="ok" if outcome.ok else "failed",
        answers=[_answer_dict(a, plan) for a in answers],
        answer=answer,
        errors=error_lines,
        metrics=outcome.metrics(),
        with_query=with_query,
    )


def _expected_total(options: BatchOptions, out: OutputFile) -> int | None:
    """Items this run will ask (for the bar and its ETA), when the input can be read twice."""
    if options.source == "-":
        return options.max_items
    total = count_items(options.source, template=options.template, strict=False)
    kept = len(out.ok_ids) + (0 if options.retry_failed else len(out.failed_ids))
    total = max(0, total - kept)
    return total if options.max_items is None else min(total, options.max_items)


def _jobs(
    options: BatchOptions, out: OutputFile, plan_for: PlanFor, progress: BatchProgress
) -> Iterator[BatchJob]:
    """Every item still to ask, as a job, read as the engine takes them; the others skipped."""
    from council.engine.batch import BatchJob

    started = 0
    report = _reporting_bad_lines(options.source)
    for seq, item in enumerate(_items(options, report)):
        failed = item.id in out.failed_ids
        if item.id in out.ok_ids or (failed and not options.retry_failed):
            progress.skipped += 1
            progress.skipped_failed += int(failed)
            out.skip(seq)
            continue
        if options.max_items is not None and started >= options.max_items:
            progress.stopped_by = "--max-items"
            return
        started += 1
        yield BatchJob(seq, item.id, plan_for(item.query), item)


def _run(
    flags: AskFlags,
    options: BatchOptions,
    plan_for: PlanFor,
    template: OraclePlan | DeliberationPlan,
    record: Any,
) -> int:
    """Run the batch; the exit code. Every finished line is kept whatever stops it."""
    from council.app.run import run_until_stopped, say, stderr_console
    from council.app.run_context import RunContext, plan_endpoints
    from council.engine.batch import BatchRun

    err = stderr_console()
    plan_dict = {**template.to_dict(), "command": "batch", "batch": _described(options)}
    context = RunContext(plan_endpoints(template), record=record, command="batch", plan=plan_dict)
    bus = context.bus
    out = OutputFile(Path(options.out or "-"), ordered=options.ordered, source=options.source)
    progress = BatchProgress()
    view = BatchProgressView(err.console, progress, enabled=not flags.quiet)
    lines = _Lines(out, view, with_query=not options.no_query)
    run = BatchRun(
        template,
        bus,
        on_item=lines,
        on_dropped=lambda job: out.skip(job.seq),  # --ordered: nothing waits for it
        items_at_once=max(1, template.max_concurrency * ITEMS_PER_SLOT),
        label=f"batch of {options.source}",
        max_tokens_total=options.max_tokens_total,
        budget=_shared_budget(flags, template),
        progress=progress,
        outage_limit=options.outage_limit,
        on_outage=view.outage_changed,
        pool=context.pool,
    )
    stopped: int | None = None
    try:
        progress.total = _expected_total(options, out)
        jobs = _jobs(options, out, plan_for, progress)

        def stopping(code: int) -> None:
            run.interrupted_exit = code

        with view:
            stopped = run_until_stopped(lambda: run.execute(jobs), stopping)
        if stopped is not None:
            run.interrupted, run.interrupted_exit = True, stopped
    finally:
        with contextlib.suppress(OSError):
            out.close()
        summary = {**progress.to_dict(), "exit_code": run.exit_code, "out": options.out}
        context.finish(
            answer=None,
            document={**summary, "errors": lines.errors},
            markdown=_summary_line(run, options),
        )
        for line in context.close():
            say(err, line)
    _say(_summary_line(run, options))
    if flags.json_output:
        sys.stdout.write(dumps(summary) + "\n")
    return run.exit_code


def _described(options: BatchOptions) -> dict[str, Any]:
    """The batch's own settings, kept with the run in the history."""
    return {
        "source": options.source,
        "out": options.out,
        "mode": options.mode,
        "template": options.template,
        "ordered": options.ordered,
        "retry_failed": options.retry_failed,
        "max_items": options.max_items,
        "max_tokens_total": options.max_tokens_total,
        "outage_limit": options.outage_limit,
    }


def _summary_line(run: BatchRun, options: BatchOptions) -> str:
    """The batch in one line on stderr: skipped, done, failed, and what stopped it."""
    from council.app.run_context import STOPPED_BY

    p = run.progress
    counts = f"{p.done:,} done, {p.failed:,} failed, {p.skipped:,} skipped"
    if p.skipped_failed:
        counts += f" ({p.skipped_failed:,} failed earlier: --retry-failed asks them again)"
    where = f" -> {options.out}" if options.out not in (None, "-") else ""
    took = f" in {p.elapsed():.1f}s; {p.calls:,} calls, limit {p.limit}/{p.ceiling}"
    if run.interrupted:
        how = STOPPED_BY.get(run.interrupted_exit, "a signal")
        return f"council: batch stopped by {how}: {counts}{where}; the same command resumes it"
    budget = f"; stopped starting items at {p.stopped_by}" if p.stopped_by else ""
    lowered = run.budget.lowered_to if run.budget is not None else []
    if lowered:  # --budget-usd sent these with less room: their answers may be cut at it
        least = min(granted for _, _, granted in lowered)
        budget += (
            f"; --budget-usd lowered max_tokens of {len(lowered):,} calls (the lowest to {least:,})"
        )
    waited = f"; waited through {count_label(p.outages, 'endpoint outage')}" if p.outages else ""
    return f"council: batch: {counts}{where}{took}{budget}{waited}"


# -- the provider's Batch API and the self-hosted batch runner (app/batch/api.py) --


def _via_batch_api(
    flags: AskFlags,
    options: BatchOptions,
    template: OraclePlan | DeliberationPlan,
    plan_for: PlanFor,
    request: ResolvedCouncil,
) -> int:
    """`--via batch-api`: the items go to the provider's Batch API; lines come back the same.

    The run is recorded as a direct batch is (`history`, `stats`); Ctrl-C says that the
    provider's batches go on and prints the command that cancels them; a summary line
    ends it, as the direct path's does.
    """
    from council.app.batch.api import POLL_INTERVAL, BatchApiSummary, run_via_batch_api
    from council.app.batch.api_record import ApiRunRecording
    from council.app.run import run_until_stopped, say, stderr_console
    from council.app.run_context import RunContext, plan_endpoints

    record = request.record_options(no_history=flags.no_history, no_store_text=flags.no_store_text)
    plan_dict = {**template.to_dict(), "command": "batch", "batch": _described(options)}
    context = RunContext(plan_endpoints(template), record=record, command="batch", plan=plan_dict)
    recording = ApiRunRecording(context.bus, template, label=f"batch of {options.source}")
    out = OutputFile(Path(options.out or "-"), ordered=options.ordered, source=options.source)
    summary = BatchApiSummary()
    stopped: int | None = None
    failed: BaseException | None = None
    try:
        items = _items(options, _reporting_bad_lines(options.source))
        recording.started()
        stopped = run_until_stopped(
            lambda: run_via_batch_api(
                items,
                # Each item's plan as a direct batch builds it (its -o options included).
                lambda item: plan_for(item.query),
                request.settings,
                out,
                cancel=options.cancel,
                retry_failed=options.retry_failed,
                identity=options.source,
                with_query=not options.no_query,
                poll_interval=options.poll_interval or POLL_INTERVAL,
                run_id=context.run_id,
                summary=summary,
                on_line=recording.line,
            ),
            lambda code: None,
        )
    except BaseException as exc:  # recorded as the error ends it, then on up
        failed = exc
        raise
    finally:
        out.close()
        code = stopped if stopped is not None else summary.exit_code
        if failed is not None:
            code = getattr(failed, "exit_code", EXIT_FAILURE)
        line = _api_summary_line(summary, options, stopped, time.monotonic() - recording.started_at)
        recording.finished(code, interrupted=stopped is not None)
        context.finish(answer=None, document={**vars(summary), "exit_code": code}, markdown=line)
        for note in context.close():
            say(stderr_console(), note)
    _say(line)
    if stopped is not None:
        cancel = _cancel_command(options)
        if summary.batch_ids and cancel is not None:
            _say(f"council: to cancel them at the provider: {cancel}")
        return stopped
    if flags.json_output:
        sys.stdout.write(dumps(vars(summary)) + "\n")
    return summary.exit_code


def _cancel_command(options: BatchOptions) -> str | None:
    """The command line that cancels this batch's jobs: the same one with --cancel."""
    if options.command_line is None or options.cancel:
        return None
    return shlex.join(["council", *options.command_line, "--cancel"])


def _api_summary_line(summary: Any, options: BatchOptions, stopped: int | None, took: float) -> str:
    """A batch-API run in one line on stderr: items done, failed, skipped; its batches."""
    from council.app.run_context import STOPPED_BY

    counts = (
        f"{summary.items_ok:,} done, {summary.items_failed:,} failed, "
        f"{summary.items_skipped:,} skipped"
    )
    if summary.items_pending:
        counts += f", {summary.items_pending:,} not run (the same command asks them)"
    where = f" -> {options.out}" if options.out not in (None, "-") else ""
    ids = ", ".join(summary.batch_ids) or "none"
    batches = count_label(len(summary.batch_ids), "provider batch")
    if stopped is not None:
        how = STOPPED_BY.get(stopped, "a signal")
        if not summary.batch_ids:
            return f"council: batch-api stopped by {how} before any batch was created: {counts}"
        return (
            f"council: batch-api stopped by {how}: {counts}{where}; the provider goes on with "
            f"{batches} ({ids}), billed as they run; the same command collects them"
        )
    made = f"{summary.created} created, {summary.resumed} polled again"
    if summary.cancelled:
        made += f", {summary.cancelled} cancelled"
    return f"council: batch-api: {counts}{where} in {took:.1f}s; {batches} ({made}): {ids}"
