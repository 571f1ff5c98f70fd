"""`council eval DATA.jsonl`: strategies side by side on labelled questions, scored and summed up.

    report = run_eval(flags, EvalOptions(data="examples/eval-basics.jsonl",
                                         strategies="judge,synthesize", out="results.jsonl"))
    report.summaries      # one StrategySummary per strategy: accuracy, Wilson interval, cost
    report.tradeoff       # the baselines, cost per item, dominance, paired differences

Every item is asked of every strategy: a persona's name (that persona alone, one call),
`synthesize` (the run's personas and the arbiter's synthesis), `deliberate` (a
deliberation of the run's personas), `vote` and `rank` (the run's personas voting or
ranking each other, where this build has them). Items run concurrently, at most
`--max-concurrency` item × strategy runs at once, and every call goes through the
endpoint's limiter, shared by all of them. Each plan runs as a `PlanRun` in the eval's
one `RunContext` (`app/run_context.py`): the engines without views or history.

With `--out`, every item × strategy result is one line of the file, written as it
finishes (`app.batch.output.OutputFile`, id `ITEM::STRATEGY`), with what produced it
(`app.eval.setup`): the same command again skips the pairs this council already
answered, asks again the failed ones and those another setup answered (saying how many
and why), re-scores stored answers whose scoring changed without asking again, and
reports on this council's lines for its items. A council strategy's line also keeps
each member's own answer, scored (`members`): the baselines (the best single persona,
the members' majority) are read from them with no extra call (`engine/tradeoff.py`).
Not recorded in the history: the
recorder keeps one engine run per history run, and an eval is hundreds of them (see
ARCHITECTURE.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from council.app.ask import ResolvedCouncil, resolve_council, serving_council
from council.app.batch.items import BadLine, read_items
from council.app.batch.output import OutputFile
from council.app.escalate import escalation_metrics, escalation_summary
from council.app.eval.jury import JURY, jury_agreement, jury_score, jury_setup
from council.app.eval.setup import (
    LineRecord,
    Work,
    member_setup,
    not_reusable,
    question_digest,
    scored_members,
    scored_plainly,
    sort_out,
    stored_answer,
    strategy_setups,
)
from council.app.eval.strategies import (
    EvalItem,
    StrategyPlans,
    answer_of,
    choose_strategies,
    members_of,
)
from council.app.flags import AskFlags
from council.app.jury_cases import jury_of
from council.app.usage import Usage
from council.config.personas import Persona
from council.engine.plan import DeliberationPlan, OraclePlan, max_concurrency_for
from council.engine.results import BatchProgress
from council.engine.scoring import (
    SCORER_REGISTRY,
    SCORERS,
    StrategySummary,
    Tolerance,
    check_expected,
    parse_tolerance,
    read_judgement,
    summarize,
)
from council.engine.tradeoff import BOOTSTRAP_RESAMPLES, TradeOff, trade_off
from council.errors import EXIT_INTERRUPTED, CouncilError, EndpointError, UsageError

if TYPE_CHECKING:
    from council.app.run_context import RunContext
    from council.render.batch_progress import BatchProgressView

__all__ = ["EvalOptions", "EvalReport", "run_eval"]


@dataclass(frozen=True)
class EvalOptions:
    """`council eval`'s own flags (the shared ones come as AskFlags)."""

    data: str
    strategies: str | None = None
    scorer: str | None = None  # None: "choice" for items with choices, else "exact"
    tolerance: str = "1e-6"
    judge_persona: str | None = None  # None: the run's arbiter
    out: str | None = None
    limit: int | None = None  # the first N items only
    rounds: int | None = None  # deliberate's rounds (None: as a deliberation's default)
    seed: int = 0  # the paired bootstrap's: the same seed, the same intervals
    resamples: int = BOOTSTRAP_RESAMPLES


@dataclass
class EvalReport:
    """What an eval found: per-strategy summaries and every result line they come from."""

    data: str
    strategies: list[str]
    summaries: list[StrategySummary]
    lines: list[dict[str, Any]]
    items: int
    asked: int  # item × strategy pairs run now (the rest were in --out already)
    reused: int
    bad_lines: int
    scorer: str  # the --scorer, or "per item" (its own, else choice or exact)
    tolerance: str
    out: str | None = None
    stopped: int | None = None  # the exit code when a signal stopped it (130, 143, 129)
    # Stored lines asked again, by why (another setup, failed...); answers re-scored.
    redone: dict[str, int] = field(default_factory=dict)
    rescored: int = 0
    # --scorer jury: Cohen's kappa of the jury's verdicts against the labels (app/eval/jury.py).
    jury: dict[str, Any] | None = None
    # The baselines, cost per item, dominance and paired differences (engine/tradeoff.py).
    tradeoff: TradeOff | None = None

    def document(self) -> dict[str, Any]:
        extras = self.tradeoff.row_extras if self.tradeoff else lambda name: {}
        return {
            "data": self.data,
            "scorer": self.scorer,
            "items": self.items,
            "asked": self.asked,
            "reused": self.reused,
            "redone": dict(self.redone),
            "rescored": self.rescored,
            "bad_lines": self.bad_lines,
            "out": self.out,
            "strategies": [{**s.to_dict(), **extras(s.name)} for s in self.summaries],
            "escalation": escalation_summary(self.lines),
            **({"jury_agreement": self.jury} if self.jury is not None else {}),
            **(self.tradeoff.document() if self.tradeoff else {}),
        }


def _read(options: EvalOptions, scorer: str | None) -> tuple[list[EvalItem], int]:
    """The data file's items (bad ones reported on stderr with their line numbers)."""
    bad: list[BadLine] = []

    def report(line: BadLine) -> None:
        bad.append(line)
        sys.stderr.write(f"council: {options.data}:{line.line}: {line.reason}; skipped\n")

    items: list[EvalItem] = []
    for item in read_items(options.data, on_bad_line=report, format="jsonl"):
        expected, choices = item.fields.get("expected"), item.fields.get("choices")
        named = item.fields.get("scorer")  # an item's own scorer; --scorer wins over it
        if named is not None and named not in SCORERS:
            report(BadLine(item.line, f"unknown scorer {named!r}; use one of {', '.join(SCORERS)}"))
            continue
        own = scorer or named or ("choice" if choices is not None else "exact")
        problem = check_expected(own, expected, choices)
        if problem is not None:
            report(BadLine(item.line, problem))
            continue
        options_text = [str(c) for c in choices] if isinstance(choices, list) else None
        items.append(EvalItem(item, str(expected), options_text, own))
        if options.limit is not None and len(items) >= options.limit:
            break
    if not items:
        raise UsageError(
            f"{options.data} has no item to evaluate",
            'each line needs "id", "query" and "expected" (and optionally "choices")',
        )
    return items, len(bad)


def _check_scorer(scorer: str | None) -> None:
    if scorer is not None and scorer not in SCORERS:
        raise UsageError(f"unknown scorer {scorer!r}", f"use one of {', '.join(SCORERS)}")


def _tolerance(text: str) -> Tolerance:
    try:
        return parse_tolerance(text)
    except ValueError:
        raise UsageError(
            f"--tolerance {text} is not a tolerance",
            "give an absolute one (0.01) or a relative one (1%)",
        ) from None


class _Runner:
    """Runs the pending item × strategy pairs, at most `cap` at once, writing each line."""

    def __init__(
        self,
        plans: StrategyPlans,
        judge: Persona | None,
        tolerance: Tolerance,
        write: Callable[[dict[str, Any]], None],
        cap: int,
        record: LineRecord,
        context: RunContext,
        jury: ResolvedCouncil | None = None,
    ) -> None:
        self.plans, self.judge, self.tolerance, self.write = plans, judge, tolerance, write
        self.jury = jury  # --scorer jury: the jurors on their served endpoints
        self.context = context
        self.cap = cap
        self.record = record
        self.failures: list[Any] = []
        self.answered = 0
        self.done = 0
        self.stopped: int | None = None  # the exit code of a signal that stopped the run

    async def run(self, pairs: list[Work], progress: Callable[[dict[str, Any]], None]) -> None:
        """Every pair, under the cap; `progress` is told each line as it is written."""
        slots = asyncio.Semaphore(self.cap)

        async def one(item: EvalItem, strategy: str, stored: dict[str, Any] | None) -> None:
            async with slots:
                if stored is None:
                    line = await self._pair(item, strategy)
                else:
                    line = await self._rescored(item, stored)
            self.write(line)
            self.done += 1
            progress(line)

        async with asyncio.TaskGroup() as group:
            for item, strategy, stored in pairs:
                group.create_task(one(item, strategy, stored))

    async def _run(self, plan: OraclePlan | DeliberationPlan) -> tuple[Any, Usage]:
        """One plan in the eval's context, on a bus of its own: its result and usage."""
        from council.app.run_context import PlanRun
        from council.engine.events import EventBus

        run = PlanRun(plan, self.context, bus=EventBus())
        return await run.execute(), run.usage

    async def _pair(self, item: EvalItem, strategy: str) -> dict[str, Any]:
        started = time.monotonic()
        meter = Usage()
        members = None
        try:
            result, meter = await self._run(self.plans.plan(strategy, item))
            answer, note = answer_of(strategy, result, self.plans.alone)
            members = scored_members(item, members_of(strategy, result), self.tolerance)
        except CouncilError as error:  # this item's question cannot be asked (too long...)
            answer, note = None, error.one_line()
        latency = time.monotonic() - started
        metrics: dict[str, Any] = {
            "calls": meter.calls,
            "tokens_in": meter.tokens_in,
            "tokens_out": meter.tokens_out,
            "cost_usd": meter.cost_usd,
            "latency": round(latency, 4),
        }
        escalation = getattr(result, "escalation", None) if answer is not None else None
        if escalation is not None:  # what escalating did, summed up per strategy
            metrics["escalation"] = escalation_metrics(escalation.to_dict())
        if answer is None:
            self.failures.extend(meter.failures)
            return self.record.line(
                item, strategy, None, (None, False, note), metrics, members=members
            )
        self.answered += 1
        scored, extra = await self._score(item, answer, note, metrics)
        return self.record.line(
            item, strategy, answer, scored, metrics, extra=extra, members=members
        )

    async def _score(
        self, item: EvalItem, answer: str, note: str, metrics: dict[str, Any]
    ) -> tuple[tuple[Any, bool, str], dict[str, Any]]:
        """((predicted, correct, note), the line's extra fields) under the item's scorer."""
        if item.scorer == "judge" and answer:
            predicted, note = await self._judge(item, answer, metrics, note)
            return (predicted, predicted == "pass", note), {}
        if item.scorer == JURY and answer and self.jury is not None:
            predicted, correct, extra = await jury_score(
                self.jury, item, answer, self._run, self.tolerance, metrics
            )
            return (predicted, correct, note), extra
        return scored_plainly(item, answer, note, self.tolerance), {}

    async def _rescored(self, item: EvalItem, stored: dict[str, Any]) -> dict[str, Any]:
        """A stored answer judged again (another judge, expected, or --scorer judge now)."""
        answer, note, metrics = stored_answer(stored)
        scored, extra = await self._score(item, answer, note, metrics)
        members = scored_members(item, stored.get("members"), self.tolerance)
        return self.record.line(
            item, str(stored["strategy"]), answer, scored, metrics, extra=extra, members=members
        )

    async def _judge(
        self, item: EvalItem, answer: str, metrics: dict[str, Any], note: str
    ) -> tuple[str | None, str]:
        assert self.judge is not None
        result, meter = await self._run(self.plans.judge(self.judge, item, answer))
        metrics.update(
            judge_calls=meter.calls,
            judge_tokens_in=meter.tokens_in,
            judge_tokens_out=meter.tokens_out,
            judge_cost_usd=meter.cost_usd,
        )
        outcome = result.outcomes.get(self.judge.name)
        verdict = read_judgement(outcome.text) if outcome is not None and outcome.answered else None
        if verdict is None:
            why = (
                "the judge's reply could not be read"
                if outcome and outcome.answered
                else ("the judge's call failed")
            )
            return None, f"{note}; {why}: counted wrong" if note else f"{why}: counted wrong"
        return ("pass" if verdict else "fail"), note


def _this_councils(
    line: dict[str, Any], wanted: dict[str, tuple[str, str]], record: LineRecord
) -> bool:
    """Whether a line answers one of this eval's pairs, by this council, to this question."""
    pair = wanted.get(str(line.get("id")))
    if pair is None:
        return False
    question, strategy = pair
    return not_reusable(line, record.setups[strategy], question) is None


def _last_lines(out: OutputFile) -> dict[str, dict[str, Any]]:
    """Each pair's last line in --out (the file may hold a redone pair twice until closed).

    Read through the file's own locked descriptor: opening the path again and closing it
    would drop this process's lock on it."""
    return {str(line.get("id")): line for line in out.earlier_lines() if "strategy" in line}


def _read_lines(path: Path) -> list[dict[str, Any]]:
    """Every result line of an eval's --out file (what a resumed eval reports on)."""
    lines: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as handle:
        for raw in handle:
            with contextlib.suppress(ValueError):
                line = json.loads(raw)
                if isinstance(line, dict) and "strategy" in line:
                    lines.append(line)
    return lines


# Piped, an eval of fewer runs than this shows no progress lines (its report follows).
PLAIN_MIN_RUNS = 20


def _progress(
    total: int, quiet: bool
) -> tuple[BatchProgressView, Callable[[dict[str, Any]], None]]:
    """The eval's progress on stderr, as `council batch` shows it: a live bar with the
    ETA in a terminal, a plain line every 5 s or 10 % of the runs when piped (never one
    a run); and what counts each finished item × strategy line into it."""
    from council.app.run import stderr_console
    from council.render.batch_progress import BatchProgressView

    progress = BatchProgress(total=total)
    err = stderr_console()
    # Piped, a short eval's report comes before a log needs a progress line: none then.
    shown = not quiet and (err.is_terminal or total >= PLAIN_MIN_RUNS)
    view = BatchProgressView(err.console, progress, enabled=shown, label="eval", noun="runs")

    def count(line: dict[str, Any]) -> None:
        if line.get("status") == "ok":
            progress.done += 1
        else:
            progress.failed += 1
        metrics = line.get("metrics") or {}
        progress.calls += int(metrics.get("calls") or 0)
        progress.tokens_in += int(metrics.get("tokens_in") or 0)
        progress.tokens_out += int(metrics.get("tokens_out") or 0)
        view.item_ended()

    return view, count


def run_eval(flags: AskFlags, options: EvalOptions) -> EvalReport:
    """Ask every item of every strategy not in `--out` yet, score them, sum them up.

    Raises UsageError for a bad file, flag or strategy (before anything is sent), and
    EndpointError / AuthError when nothing could be asked at all (every call failed).
    """
    _check_scorer(options.scorer)
    if options.out == "-":
        raise UsageError("--out needs a file: an eval goes on from it", "give a path")
    if options.resamples < 1:
        raise UsageError(f"resamples {options.resamples} is too few", "give 1 or more")
    tolerance = _tolerance(options.tolerance)
    items, bad = _read(options, options.scorer)
    request = resolve_council(flags, flags.setting_values(rounds=options.rounds))
    for note in request.notes:
        sys.stderr.write(note + "\n")
    strategies, alone = choose_strategies(options.strategies, request, flags.system)
    judge = None
    if any(item.scorer == "judge" for item in items):
        judge_name = options.judge_persona or request.arbiter.name
        judge = request.member(judge_name)
    elif options.judge_persona is not None:
        raise UsageError("--judge-persona only applies with --scorer judge", "add it or drop it")
    jury = jury_of(request) if any(item.scorer == JURY for item in items) else None
    record = LineRecord(
        strategy_setups(strategies, request, alone),
        str(tolerance),
        None if judge is None else member_setup(judge, request),
        None if jury is None else jury_setup(jury, request),
    )
    out = OutputFile(Path(options.out), source=options.data) if options.out else None
    kept: list[dict[str, Any]] = []
    runner: _Runner | None = None
    with out if out is not None else contextlib.nullcontext():
        earlier = _last_lines(out) if out is not None else {}
        plan = sort_out(items, strategies, earlier, record)
        plan.tell(options.out)

        def write(line: dict[str, Any]) -> None:
            kept.append(line)
            if out is not None:
                out.write(0, line)

        # Re-scored by a scorer that asks nobody: now, with no endpoint (or model) started.
        work: list[Work] = []
        for item, strategy, stored in plan.work:
            if stored is None or SCORER_REGISTRY[item.scorer].asks_model:
                work.append((item, strategy, stored))
                continue
            answer, note, metrics = stored_answer(stored)
            scored = scored_plainly(item, answer, note, tolerance)
            members = scored_members(item, stored.get("members"), tolerance)
            write(record.line(item, strategy, answer, scored, metrics, members=members))
        if work:
            runner = _run_pairs(
                request, alone, judge, tolerance, write, work, record, quiet=flags.quiet, jury=jury
            )
    stopped = runner.stopped if runner is not None else None
    asked = len(plan.work) - len(plan.rescore)
    if stopped is not None:
        from council.app.run_context import STOPPED_BY

        how = "interrupted" if stopped == EXIT_INTERRUPTED else f"stopped by {STOPPED_BY[stopped]}"
        where = f"; they are in {options.out}: the same command goes on" if out else ""
        sys.stderr.write(
            f"council: eval {how}; {len(kept)} of {len(plan.work)} runs had finished{where}\n"
        )
    elif runner is not None and runner.answered == 0 and asked:
        raise _nothing_answered(runner.failures, request)
    # The report: this council's lines for these items only, never another setup's.
    wanted = {f"{i.item.id}::{s}": (question_digest(i), s) for i in items for s in strategies}
    on_file = _read_lines(Path(options.out)) if options.out else kept
    lines = [line for line in on_file if _this_councils(line, wanted, record)]
    return EvalReport(
        data=options.data,
        strategies=strategies,
        summaries=summarize(lines, strategies),
        lines=lines,
        items=len(items),
        asked=asked,
        reused=len(items) * len(strategies) - asked,
        bad_lines=bad,
        scorer=options.scorer or "per item",
        tolerance=str(tolerance),
        out=options.out,
        stopped=stopped,
        redone=plan.redone,
        rescored=len(plan.rescore),
        jury=jury_agreement(lines, strategies),
        tradeoff=trade_off(
            lines, strategies, list(alone), seed=options.seed, resamples=options.resamples
        ),
    )


# Why stored lines are asked again, as the line on stderr says it ("8 came from ...").


def _run_pairs(
    request: ResolvedCouncil,
    alone: dict[str, Persona],
    judge: Persona | None,
    tolerance: Tolerance,
    write: Callable[[dict[str, Any]], None],
    pairs: list[Work],
    record: LineRecord,
    quiet: bool = False,
    jury: ResolvedCouncil | None = None,
) -> _Runner:
    from council.app.run import run_until_stopped
    from council.app.run_context import RunContext

    with contextlib.ExitStack() as stack:
        council = stack.enter_context(serving_council(request))
        if jury is not None:  # the run's own personas, or the preset's jury, served
            jury = council if not request.jury else stack.enter_context(serving_council(jury))
        plans = StrategyPlans(council, alone)
        endpoint = council.settings.endpoint
        cap = max_concurrency_for(endpoint, len(pairs))
        # No history (an eval is hundreds of runs; --out is its record); what is learned
        # about the endpoints is kept all the same.
        ends = [endpoint, *council.endpoints.values()]
        if jury is not None and jury is not council:
            ends += [e for e in jury.endpoints.values() if e not in ends]
        context = RunContext(ends, keep_learned=True)
        runner = _Runner(plans, judge, tolerance, write, cap, record, context, jury)

        def stop(code: int) -> None:  # SIGTERM and SIGHUP stop it as Ctrl-C does
            runner.stopped = code

        view, count = _progress(len(pairs), quiet)
        try:
            stopped = run_until_stopped(lambda: runner.run(pairs, count), stop, during=view)
        finally:
            context.close()
        if stopped is not None:
            runner.stopped = stopped
    return runner


def _nothing_answered(failures: list[Any], request: ResolvedCouncil) -> Exception:
    """The error when no strategy answered anything: the endpoint is down, or the key wrong."""
    from council.app.run_context import all_failed_error

    if not failures:
        return EndpointError("no strategy produced an answer", "check the endpoint and the model")
    return all_failed_error(failures, request.settings.endpoint, len(request.personas))
