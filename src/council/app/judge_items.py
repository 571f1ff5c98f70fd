"""`council judge --items FILE.jsonl`: the jury over every item of a file, resumable.

Each line is one case, JSONL as `council batch` reads it (`app/batch/items.py`):

    {"id": "q1", "query": "Which database?", "answer": "Use Postgres.", "rubric": "correct, clear"}
    {"id": "q2", "query": "Which reply is better?", "a": "Answer one.", "b": "Answer two."}

`answer` is graded against `rubric` (text, one criterion a line or comma-separated, or
a list of criteria; `--rubric` gives one to the items without); `a` and `b` are a pair,
each juror judging both orders. Any other field passes through to the item's line.

Every item is a job of the batch engine (`app/jury_run.py`): the progress view, `--out`
written a whole line per item as it ends (`app/batch/output.py`: 0600, locked, a torn
last line cut) and resume as `council batch` has them: the same command with the same
`--out` skips the items whose line says ok, and those that say failed unless
`--retry-failed`; an item that was running when the run stopped is asked again whole.
A line says "failed" when some juror gave no verdict. The summary counts the verdicts
of every item of the file on `--out` (this run's and earlier ones').

Exit code with `--gate`: 4 when any item was rejected (a pair: B won), else 3 when any
is undecided, a tie or failed, else 0 (every item approved, or A won). Without it, as
a batch: 0 none failed, 1 none ok, 3 otherwise. 130/143/129 when a signal stopped it.
"""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

from council.app.ask import ResolvedCouncil, resolve_council
from council.app.batch.items import BadLine, BatchItem, read_items
from council.app.batch.output import OutputFile
from council.app.flags import AskFlags
from council.app.judge import check_flags, check_pool, rubric_criteria
from council.app.jury_cases import JuryCase, case_plans, case_verdict, jury_of
from council.engine.jury import APPROVE, REJECT, criteria_of
from council.engine.results import BatchProgress, batch_exit_code
from council.errors import EXIT_OK, EXIT_PARTIAL, EXIT_REJECT, UsageError
from council.render.format import count_label

__all__ = ["ItemsOptions", "ItemsReport", "judge_items", "run_items"]

# The fields that make the case; not passed through to the line (the answers are long).
CASE_FIELDS = ("answer", "a", "b", "rubric")
# The keys council writes on an item's line; a passed-through field never overrides them.
# Piped, a run of fewer items than this shows no progress lines (its summary follows).
PLAIN_MIN_ITEMS = 20
LINE_KEYS = ("id", "query", "status", "errors", "metrics", "kind", "verdict", "jurors")


@dataclass(frozen=True)
class ItemsOptions:
    """`council judge --items`'s own flags."""

    source: str
    out: str
    rubric: str | None = None  # for the items without their own
    pool: str = "majority"
    pass_score: float = 3.5
    gate: bool = False
    retry_failed: bool = False


@dataclass
class ItemsReport:
    """What a run over a file of items found: the summary of every item's line on `--out`."""

    summary: dict[str, Any]
    exit_code: int
    stopped: int | None = None  # the signal's exit code, when one stopped it
    run_id: str | None = None
    notes: list[str] | None = None


def _case(item: BatchItem, default: tuple[str, ...]) -> JuryCase:
    """The case an item's fields make; ValueError with the reason for a bad line."""
    fields = item.fields
    answer, a, b = fields.get("answer"), fields.get("a"), fields.get("b")
    if answer is not None and (a is not None or b is not None):
        raise ValueError('give "answer" (with a rubric) or "a" and "b", not both')
    if answer is None:
        if not (isinstance(a, str) and isinstance(b, str) and a.strip() and b.strip()):
            raise ValueError('no "answer", and no "a" and "b" texts to compare')
        return JuryCase(item.query, pair=(a, b))
    if not isinstance(answer, str) or not answer.strip():
        raise ValueError('"answer" must be a non-empty text')
    rubric = fields.get("rubric")
    if isinstance(rubric, list) and all(isinstance(c, str) for c in rubric):
        criteria = tuple(c.strip() for c in rubric if c.strip())
    elif isinstance(rubric, str):
        criteria = tuple(criteria_of(rubric))
    elif rubric is None:
        criteria = default
    else:
        raise ValueError('"rubric" must be text or a list of criteria')
    if not criteria:
        raise ValueError('no rubric: give the item a "rubric", or --rubric for every item')
    return JuryCase(item.query, answer=answer, criteria=criteria)


def judge_items(
    flags: AskFlags, options: ItemsOptions, *, answer: Any = None, pair: Any = None
) -> int:
    """The CLI's `council judge --items`: run, print the summary, return the exit code."""
    if answer is not None or pair is not None:
        raise UsageError(
            "--items judges the cases of its file; --answer and --pair judge one",
            "give each item its answer (or a and b) in the file, or drop --items",
        )
    if flags.query:
        raise UsageError(
            "--items takes each question from its item's query", "drop the QUESTION argument"
        )
    report = run_items(flags, options)
    for line in report.notes or []:
        sys.stderr.write(line + "\n")
    summary = report.summary
    sys.stderr.write(_summary_line(summary, options, report.stopped) + "\n")
    if flags.json_output:
        from council.render.json_out import dumps

        sys.stdout.write(dumps(summary) + "\n")
    elif options.out != "-" and report.stopped is None:
        sys.stdout.write(summary_markdown(summary))
    return report.exit_code


def run_items(flags: AskFlags, options: ItemsOptions) -> ItemsReport:
    """Judge every item of `options.source` not judged in `--out` yet; the summary."""
    check_pool(options.pool)
    check_flags(flags)
    if not options.out:
        raise UsageError("--items needs --out", "give --out FILE (or - for stdout)")
    if flags.json_output and options.out == "-":
        raise UsageError("--json and --out - both write to stdout", "give --out a file")
    default = rubric_criteria(options.rubric) if options.rubric else ()
    request = jury_of(resolve_council(flags, flags.setting_values()))
    for note in request.notes:
        sys.stderr.write(note + "\n")
    record = request.record_options(no_history=flags.no_history, no_store_text=flags.no_store_text)
    out = OutputFile(Path(options.out), source=options.source)
    runner = _Items(request, options, default, out)
    try:
        return runner.run(record, quiet=flags.quiet)
    finally:
        with contextlib.suppress(OSError):
            out.close()


class _Items:
    """One run over a file: the jobs to ask, a line per item as it ends, the summary."""

    def __init__(
        self,
        request: ResolvedCouncil,
        options: ItemsOptions,
        default: tuple[str, ...],
        out: OutputFile,
    ) -> None:
        self.request, self.options, self.default, self.out = request, options, default, out
        self.ids: list[str] = []  # every good item of the input, in order
        self.written: dict[str, dict[str, Any]] = {}  # this run's lines, by id
        self.progress = BatchProgress()
        self.bad = 0
        self.view: Any = None  # the progress view, while it runs

    def _bad_line(self, bad: BadLine) -> None:
        self.bad += 1
        shown = "standard input" if self.options.source == "-" else self.options.source
        sys.stderr.write(f"council: {shown}:{bad.line}: {bad.reason}; skipped\n")

    def _cases(
        self, report: Callable[[BadLine], None] | None = None
    ) -> Iterator[tuple[BatchItem, JuryCase]]:
        report = report or self._bad_line
        for item in read_items(self.options.source, on_bad_line=report, format="jsonl"):
            try:
                yield item, _case(item, self.default)
            except ValueError as error:
                report(BadLine(item.line, str(error)))

    def jobs(self, council: ResolvedCouncil) -> Iterator[Any]:
        from council.app.jury_run import case_job

        out, retry = self.out, self.options.retry_failed
        for seq, (item, case) in enumerate(self._cases()):
            self.ids.append(item.id)
            failed = item.id in out.failed_ids
            if item.id in out.ok_ids or (failed and not retry):
                self.progress.skipped += 1
                self.progress.skipped_failed += int(failed)
                continue
            yield case_job(seq, item.id, case_plans(council, case), (item, case))

    def on_item(self, outcome: Any) -> None:
        item, case = outcome.job.payload
        line = _item_line(item, case, outcome, self.options)
        self.out.write(outcome.job.seq, line)
        self.written[item.id] = line
        if self.view is not None:
            self.view.item_ended()

    def run(self, record: Any, *, quiet: bool) -> ItemsReport:
        from council.app.jury_run import run_cases
        from council.app.run import stderr_console
        from council.render.batch_progress import BatchProgressView

        total = self.progress.total = self._expected()
        err = stderr_console()
        # Piped, a short run's summary comes before a log needs a progress line (as eval).
        shown = not quiet and (err.is_terminal or total is None or total >= PLAIN_MIN_ITEMS)
        self.view = BatchProgressView(
            err.console, self.progress, enabled=shown, label="judge", noun="items"
        )
        summary: dict[str, Any] = {}

        def ended(run: Any) -> tuple[str | None, dict[str, Any], str]:
            summary.update(self.summary(run))
            return None, summary, summary_markdown(summary)

        run, run_id, notes = run_cases(
            self.request,
            self.jobs,
            self.on_item,
            record=record,
            label=f"judge of {self.options.source}",
            described={
                "items": self.options.source,
                "out": self.options.out,
                "pool": self.options.pool,
                "pass_score": self.options.pass_score,
                "gate": self.options.gate,
            },
            ended=ended,
            progress=self.progress,
            view=self.view,
        )
        stopped = run.interrupted_exit if run.interrupted else None
        return ItemsReport(summary, int(summary["exit_code"]), stopped, run_id, notes)

    def _expected(self) -> int | None:
        """Items this run will ask (for the bar), when the input can be read twice."""
        if self.options.source == "-":
            return None
        total = sum(1 for _ in self._cases(lambda bad: None))  # said once, as it is asked
        kept = len(self.out.ok_ids) + (0 if self.options.retry_failed else len(self.out.failed_ids))
        return max(0, total - kept)

    def summary(self, run: Any) -> dict[str, Any]:
        """Every item of the input with a line (earlier runs' too): the verdicts summed up."""
        ids = set(self.ids)
        lines = {
            str(line.get("id")): line
            for line in self.out.earlier_lines()
            if "verdict" in line and line.get("id") in ids
        }
        lines.update(self.written)
        return items_summary(
            list(lines.values()),
            self.options,
            stopped=run.interrupted_exit if run.interrupted else None,
            bad=self.bad,
        )


def _item_line(
    item: BatchItem, case: JuryCase, outcome: Any, options: ItemsOptions
) -> dict[str, Any]:
    """The item's line: its id and question, passed-through fields, the jury's verdict."""
    plans = [outcome.job.plan, *outcome.job.then]
    results = [outcome.result, *outcome.then] if outcome.error is None else [None] * len(plans)
    verdict = case_verdict(case, plans, results[: len(plans)], options.pool, options.pass_score)
    errors = [
        {"persona": f.persona, "error_kind": f.error_kind, "message": f.message}
        for r in results
        if r is not None
        for f in r.failures
    ]
    if outcome.error is not None:
        errors.append({"error_kind": "internal", "message": outcome.error})
    passed = {k: v for k, v in item.fields.items() if k not in (*CASE_FIELDS, *LINE_KEYS)}
    read = all(j.verdict is not None for j in verdict.jurors)  # every juror ruled
    return {
        "id": item.id,
        "query": item.query,
        **passed,
        "status": "ok" if read and outcome.error is None else "failed",
        **verdict.to_dict(),
        "errors": errors,
        "metrics": outcome.metrics(),
    }


def _mean(values: list[float]) -> float | None:
    return round(fmean(values), 4) if values else None


def items_summary(
    lines: list[dict[str, Any]], options: ItemsOptions, *, stopped: int | None, bad: int
) -> dict[str, Any]:
    """Items judged, the verdicts counted, the mean agreement (by statistic) and flip rate."""
    verdicts = Counter(str(line.get("verdict")) for line in lines)
    agreement: dict[str, list[float]] = {}
    for line in lines:
        found = line.get("agreement") or {}
        if isinstance(found.get("value"), int | float):
            agreement.setdefault(str(found.get("statistic")), []).append(float(found["value"]))
    flips = [
        float(line["position_flip_rate"])
        for line in lines
        if isinstance(line.get("position_flip_rate"), int | float)
    ]
    failed = sum(line.get("status") != "ok" for line in lines)
    if stopped is not None:
        code = stopped
    elif options.gate:
        code = _gate(verdicts, failed)
    else:
        code = batch_exit_code(len(lines) - failed, failed)
    return {
        "command": "judge",
        "items": options.source,
        "out": options.out,
        "judged": len(lines),
        "failed": failed,
        "bad_lines": bad,
        "verdicts": dict(sorted(verdicts.items())),
        "mean_agreement": {k: _mean(v) for k, v in sorted(agreement.items())},
        "mean_position_flip_rate": _mean(flips),
        "gate": options.gate,
        "exit_code": code,
    }


def _gate(verdicts: Counter[str], failed: int) -> int:
    """A CI's verdict on a file: any rejection fails it; anything short of approval is 3."""
    if verdicts[REJECT] or verdicts["B"]:
        return EXIT_REJECT
    undecided = sum(n for v, n in verdicts.items() if v not in (APPROVE, "A"))
    return EXIT_PARTIAL if undecided or failed else EXIT_OK


def _summary_line(summary: dict[str, Any], options: ItemsOptions, stopped: int | None) -> str:
    counts = ", ".join(f"{n} {v}" for v, n in summary["verdicts"].items()) or "none"
    agreement = "; ".join(
        f"mean {k} {v:.2f}" for k, v in summary["mean_agreement"].items() if v is not None
    )
    where = f" -> {options.out}" if options.out != "-" else ""
    head = "council: judge stopped" if stopped is not None else "council: judge"
    tail = "; the same command resumes it" if stopped is not None else ""
    return (
        f"{head}: {count_label(summary['judged'], 'item')} judged ({counts}), "
        f"{summary['failed']} failed"
        f"{'; ' + agreement if agreement else ''}{where}{tail}"
    )


def summary_markdown(summary: dict[str, Any]) -> str:
    """The summary for people (and `council show`)."""
    rows = [f"| {v} | {n} |" for v, n in summary["verdicts"].items()]
    lines = [
        f"# Jury over {summary['items']}",
        "",
        f"- items judged: {summary['judged']} ({summary['failed']} failed, "
        f"{count_label(summary['bad_lines'], 'bad line')} skipped)",
    ]
    for statistic, value in summary["mean_agreement"].items():
        shown = "n/a" if value is None else f"{value:.2f}"
        lines.append(f"- mean agreement ({statistic}): {shown}")
    if summary["mean_position_flip_rate"] is not None:
        lines.append(f"- mean position-flip rate: {summary['mean_position_flip_rate']:.2f}")
    lines += ["", "| verdict | items |", "|---|---|", *rows, ""]
    return "\n".join(lines) + "\n"
