"""What a run needs around its engine, and one way to run a plan whatever its mode.

    context = RunContext(plan_endpoints(plan), record=record, command="oracle",
                         plan=plan.to_dict())      # learned limits loaded, recorder subscribed
    run = PlanRun(plan, context)                    # the engine for the plan's mode
    await run.execute()                             # or under the CLI's signals and views
    run.finish()                                    # its document and Markdown into the history
    notes = context.close()                         # history written, learned limits kept

    ran = await run_plan(plan, record=record)       # all of it, for programs (the API)

A `RunContext` owns the bus, the recorder and the endpoints' learned limits (loaded
before, kept after, unless nothing is to be kept); one context may hold many plans
(`council eval`) or another engine (`council batch`'s fan-out). A `PlanRun` is one
plan on its engine, with what its calls used counted from its events. Results answer
the rest: the `--json` document, the Markdown `council show` replays, the metrics the
history keeps, the lines the CLI says after a run, and the error when nobody answered.
Nothing here writes to the terminal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from council.app.limits import save_learned, seed_learned
from council.app.usage import Usage
from council.config.endpoint_settings import EndpointSettings
from council.endpoint.pool import EndpointPool
from council.engine.events import EventBus
from council.engine.model import CallOutcome, StopReason
from council.engine.oracle import OracleRun
from council.engine.plan import DeliberationPlan, OraclePlan
from council.engine.results import DeliberationResult, OracleResult
from council.errors import (
    EXIT_HANGUP,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    AuthError,
    CouncilError,
    EndpointError,
    ErrorKind,
)
from council.render.costs import budget_lowered_line, budget_stop_line
from council.render.format import count_of, deliberation_warnings, prompt_cut_warnings
from council.render.json_out import deliberation_document, oracle_document
from council.store.recorder import RecordOptions

if TYPE_CHECKING:
    from council.engine.budget import Budget
    from council.engine.deliberation import DeliberationRun
    from council.engine.model import ResumeState
    from council.store.recorder import Recorder

__all__ = [
    "STOPPED_BY",
    "PlanRun",
    "Ran",
    "RunContext",
    "all_failed_error",
    "command_of",
    "document_of",
    "engine_for",
    "has_output",
    "plan_endpoints",
    "result_markdown",
    "run_error",
    "run_metrics",
    "run_notes",
    "run_plan",
    "subscriber_errors_line",
]

Result = OracleResult | DeliberationResult
Plan = OraclePlan | DeliberationPlan


class RunContext:
    """The bus, the recorder and the endpoints' learned limits of one run (of one plan, or
    of many under one recorder or none).

    `record` None: no history, and (unless `keep_learned`) nothing learned is kept either.
    """

    def __init__(
        self,
        endpoints: Sequence[EndpointSettings],
        *,
        record: RecordOptions | None = None,
        command: str = "",
        plan: dict[str, Any] | None = None,
        bus: EventBus | None = None,
        keep_learned: bool | None = None,
        pool: EndpointPool | None = None,
    ) -> None:
        self.endpoints = list(endpoints)
        self.bus = bus if bus is not None else EventBus()
        self.keep_learned = record is not None if keep_learned is None else keep_learned
        # One limiter per endpoint for every plan of this context; a long-lived caller (the
        # API, a server) passes its own pool, so that its runs share what is learned.
        self.pool = pool if pool is not None else EndpointPool()
        seed_learned(self.endpoints, self.pool)
        self.recorder = start_recording(record, command, plan or {}, self.bus)

    @property
    def run_id(self) -> str | None:
        """The run's id in the history (None: not recorded, or the history failed)."""
        recorder = self.recorder
        return recorder.run_id if recorder is not None and not recorder.problem else None

    def finish(
        self,
        *,
        answer: str | None,
        document: dict[str, Any],
        markdown: str,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        """What the run showed, for `council show`, and its metrics, into the history."""
        if self.recorder is not None:
            self.recorder.finish(
                answer=answer, document=document, markdown=markdown, metrics=metrics
            )

    def close(self) -> list[str]:
        """The history written to the end and what was learned kept; the warning lines."""
        try:
            line = close_recording(self.recorder)
        finally:
            if self.keep_learned:
                save_learned(self.endpoints, self.pool)
        return [line] if line is not None else []


def command_of(plan: Plan) -> str:
    """The command that runs such a plan: "oracle" or "deliberate"."""
    return "deliberate" if isinstance(plan, DeliberationPlan) else "oracle"


def engine_for(
    plan: Plan,
    bus: EventBus,
    *,
    resume: ResumeState | None = None,
    budget: Budget | None = None,
    pool: EndpointPool | None = None,
) -> OracleRun | DeliberationRun:
    """The engine that runs `plan` (a deliberation's is loaded only for one)."""
    if isinstance(plan, DeliberationPlan):
        from council.engine.deliberation import DeliberationRun

        return DeliberationRun(plan, bus, resume=resume, budget=budget, pool=pool)
    return OracleRun(plan, bus, budget=budget, pool=pool)


class PlanRun:
    """One plan on the engine of its mode, in a context (its own by default).

    `bus`: the plan's events go there (the context's by default); what its calls used
    is counted from them (`usage`). `result` holds everything that finished, at any time.
    """

    def __init__(
        self,
        plan: Plan,
        context: RunContext | None = None,
        *,
        bus: EventBus | None = None,
        resume: ResumeState | None = None,
    ) -> None:
        self.plan = plan
        self.context = context if context is not None else RunContext(plan_endpoints(plan))
        self.bus = bus if bus is not None else self.context.bus
        self.usage = Usage()
        self.bus.subscribe(self.usage.handle)
        self.engine = engine_for(plan, self.bus, resume=resume, pool=self.context.pool)

    @property
    def result(self) -> Result:
        return self.engine.result

    async def execute(self) -> Result:
        """Run the plan to its end; cancelled, it ends as Ctrl-C ends a run (interrupted)."""
        try:
            await self.engine.execute()
        except asyncio.CancelledError:
            self.stopped(self.result.interrupted_exit)
            raise
        return self.result

    def stopped(self, code: int) -> None:
        """The run was stopped (by Ctrl-C, a signal, a cancelled task): it says so."""
        result = self.result
        result.interrupted, result.interrupted_exit = True, code
        if isinstance(result, DeliberationResult):
            result.stop_reason = StopReason.INTERRUPTED

    def finish(self, *, quiet: bool = False) -> tuple[dict[str, Any], str]:
        """The run's `--json` document and Markdown (`quiet`: answers only), recorded."""
        result = self.result
        document, markdown = document_of(result), result_markdown(result, quiet=quiet)
        self.context.finish(
            answer=result.answer, document=document, markdown=markdown, metrics=run_metrics(result)
        )
        return document, markdown


@dataclass
class Ran:
    """A plan's run: its result and `--json` document, what its calls used, its history id
    (None: not recorded), the lines the CLI would say, and the error it ends with when
    nobody answered (`run_error`)."""

    result: Result
    document: dict[str, Any]
    usage: Usage
    run_id: str | None = None
    notes: list[str] = field(default_factory=list)
    error: CouncilError | None = None


async def run_plan(
    plan: Plan,
    *,
    bus: EventBus | None = None,
    record: RecordOptions | None = None,
    command: str | None = None,
    pool: EndpointPool | None = None,
) -> Ran:
    """Run `plan` in a context of its own, on this loop, to its end; `bus` gets every event
    (the caller's subscribers first). `record`: how to keep it in the history (None: not
    at all, learned limits included); `command`: the name the history gives it (the
    plan's mode by default). Cancelled, what finished is recorded and the cancellation
    goes on up."""
    context = RunContext(
        plan_endpoints(plan),
        record=record,
        command=command or command_of(plan),
        plan=plan.to_dict(),
        bus=bus,
        pool=pool,
    )
    run = PlanRun(plan, context)
    try:
        try:
            await run.execute()
        except asyncio.CancelledError:  # what finished is recorded, as after Ctrl-C
            run.finish()
            raise
        document, _ = run.finish()
    finally:
        # On a thread: the history's last writes must not hold up the caller's loop (a
        # server's other runs). Submitted to the executor at once (to_thread would be a
        # task that asyncio.run's cleanup can cancel before it starts) and shielded, so
        # they complete even if this run is cancelled again; the loop's shutdown waits.
        closing = asyncio.get_running_loop().run_in_executor(None, context.close)
        notes = await asyncio.shield(closing)
    result = run.result
    notes += run_notes(result)
    line = subscriber_errors_line(context.bus.errors)
    if line is not None:
        notes.append(line)
    return Ran(result, document, run.usage, context.run_id, notes, run_error(result))


STOPPED_BY = {EXIT_INTERRUPTED: "Ctrl-C", EXIT_TERMINATED: "SIGTERM", EXIT_HANGUP: "SIGHUP"}


def start_recording(
    options: RecordOptions | None, command: str, plan: dict[str, Any], bus: EventBus
) -> Recorder | None:
    """A recorder subscribed to the run's events (None: not recording).

    The history is opened by the recorder's writer thread, so that a busy or broken
    file delays nothing; if it cannot be used, a warning says so after the run.
    """
    if options is None:
        return None
    from council.store.db import HistoryDB
    from council.store.recorder import Recorder
    from council.store.writer import HistoryWriter

    recorder = Recorder(
        HistoryWriter(HistoryDB.default_path()),
        command=command,
        plan=plan,
        store_text=options.store_text,
        preset=options.preset,
        resumed_from=options.resumed_from,
        continued_from=options.continued_from,
    )
    bus.subscribe(recorder.handle)
    return recorder


def close_recording(recorder: Recorder | None) -> str | None:
    """Wait for the history's writes; the warning line when the history could not be used."""
    if recorder is None:
        return None
    recorder.close()  # waits for the writer: the history is complete when the command ends
    return f"council: warning: {recorder.problem}" if recorder.problem else None


def document_of(result: OracleResult | DeliberationResult) -> dict[str, Any]:
    """The run's `--json` document, whatever its mode."""
    if isinstance(result, DeliberationResult):
        return deliberation_document(result)
    return oracle_document(result)


def has_output(result: OracleResult | DeliberationResult) -> bool:
    """Whether the run has anything to show: an answer, or what finished before a stop."""
    if isinstance(result, DeliberationResult):
        return any(r.answers for r in result.rounds) or result.interrupted
    return bool(result.answers) or result.interrupted


def result_markdown(result: OracleResult | DeliberationResult, *, quiet: bool = False) -> str:
    """The run as Markdown (what a pipe gets, and `council show` replays); "" when there
    is nothing to show."""
    if not has_output(result):
        return ""
    # Imported once the answers are in: not on the way to a run's first request.
    from council.render.markdown import deliberation_markdown, oracle_markdown

    if isinstance(result, DeliberationResult):
        return deliberation_markdown(result, quiet=quiet)
    return oracle_markdown(result, quiet=quiet)


def run_metrics(result: OracleResult | DeliberationResult) -> dict[str, Any]:
    """The run-level metrics the history keeps beside the run (`council stats`)."""
    if isinstance(result, OracleResult):
        return {"cost_usd": result.cost_usd}
    speculative = result.plan.speculative
    return {
        "rounds": len(result.rounds),
        "converged": int(result.stop_reason == StopReason.CONVERGED),
        "saved": result.sequential_estimate - result.wall if speculative else 0.0,
        "wasted_tokens": result.wasted_tokens,
        "cost_usd": result.cost_usd,
    }


def finish_recording(
    recorder: Recorder | None,
    result: OracleResult | DeliberationResult,
    document: dict[str, Any],
    markdown: str,
) -> None:
    """What the run printed and its metrics, into the history (nothing when not recording)."""
    if recorder is not None:
        recorder.finish(
            answer=result.answer, document=document, markdown=markdown, metrics=run_metrics(result)
        )


def run_error(result: OracleResult | DeliberationResult) -> CouncilError | None:
    """The error a run ends with when nobody answered (not stopped, not held back by the
    budget): the endpoint cannot be reached, the key is refused...; None otherwise."""
    if result.interrupted or result.budget_stopped:
        return None
    if isinstance(result, OracleResult):
        if result.answers:
            return None
        failures = [f for f in result.failures if f.error_kind != ErrorKind.NOT_AFFORDABLE]
        return all_failed_error(failures, result.plan.endpoint, len(result.plan.personas))
    if any(r.answers for r in result.rounds):
        return None
    count = len(result.plan.personas)
    return all_failed_error(result.kept_failures, result.plan.endpoint, count)


def plan_endpoints(plan: OraclePlan | DeliberationPlan) -> list[EndpointSettings]:
    """Every endpoint the plan calls, whose learned limits are loaded and kept."""
    return [plan.endpoint, *plan.endpoints.values()]


def subscriber_errors_line(errors: Sequence[BaseException]) -> str | None:
    """One line for what failed in a view or the recorder (None: nothing did)."""
    if not errors:
        return None
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return (
        f"council: warning: showing or recording the run failed: "
        f"{type(first).__name__}: {first}{more}; the answers are unaffected"
    )


def run_notes(result: OracleResult | DeliberationResult) -> list[str]:
    """The lines the CLI says on stderr after a run, for anything short of full success
    (when nobody answered: those before `run_error`'s)."""
    if isinstance(result, DeliberationResult):
        return _deliberation_notes(result)
    failures = [f for f in result.failures if f.error_kind != ErrorKind.NOT_AFFORDABLE]
    total = len(result.plan.personas)
    if result.interrupted:
        how = _stopped_how(result.interrupted_exit)
        return [f"council: {how}; {count_of(len(result.answers), total, 'answer')} had finished"]
    lines = _budget_lines(result)
    if run_error(result) is not None:
        return lines
    if failures:
        names = ", ".join(f"{f.persona} ({f.error_kind})" for f in failures)
        lines.append(
            f"council: {count_of(len(failures), total, 'persona')} failed: {names}; "
            "the other answers are shown"
        )
    synthesis = result.synthesis
    if (
        synthesis is not None
        and not synthesis.answered
        and synthesis.error_kind != ErrorKind.NOT_AFFORDABLE
    ):
        lines.append(
            f"council: the synthesis failed ({synthesis.error_kind}): {synthesis.message}; "
            "the answers are shown"
        )
    lines += [
        f"council: {line}" for line in prompt_cut_warnings([(o.persona, o) for o in result.calls])
    ]
    reviews = result.review_failures
    if reviews:
        names = ", ".join(f"{f.persona} ({f.error_kind})" for f in reviews)
        lines.append(f"council: ranking failed for {names}; the ranking counts the other reviews")
    if result.vote is not None and not result.vote.winners:
        lines.append("council: no ballot could be read; the vote has no answer (see the ballots)")
    return lines


def _budget_lines(result: OracleResult | DeliberationResult) -> list[str]:
    """A budget that cut calls' answer room short (their answers may be cut too), and one
    that stopped calls from starting."""
    lines = [budget_lowered_line(result), budget_stop_line(result)]
    return [f"council: {line}" for line in lines if line is not None]


def _deliberation_notes(result: DeliberationResult) -> list[str]:
    lines = []
    if result.interrupted and result.interrupted_exit != EXIT_INTERRUPTED:
        lines.append(f"council: {_stopped_how(result.interrupted_exit)}")
    lines += [f"council: {line}" for line in deliberation_warnings(result)]
    return lines + _budget_lines(result)


def _stopped_how(code: int) -> str:
    if code == EXIT_INTERRUPTED:
        return "interrupted"
    return f"stopped by {STOPPED_BY.get(code, f'exit {code}')}"


_RETRY_HINT = "retry later, or raise --timeout / --retries"


# What helps when every call failed the same way (other kinds: wait, or allow more time).
_HINTS = {
    "not_found": "check --model",
    "not_api": "check --base-url: a proxy or login page may be answering instead of the API",
    "protocol": "check that --base-url is an OpenAI-compatible API that streams",
    # A 4xx is the server's final word on the request: waiting or more time cannot help.
    "context_length": (
        "the prompt does not fit the model's context window: attach less --context, "
        "ask fewer personas, or set context_window: in the endpoint's profile "
        "(or use a model with a larger window)"
    ),
    "too_large": "the server sent more than an answer can be: set -o max_tokens N, or check it",
    "bad_request": "the server refused the request as sent; its message above says why",
    "http_error": "the server refused the request; its message above says why",
    "redirect": "if you trust the host it names, give its URL as --base-url",
}


# Kinds no retry or longer timeout can fix: their hint wins even among other failures.
_FINAL_KINDS = ("context_length", "bad_request", "http_error", "redirect")


def all_failed_error(
    failures: list[CallOutcome], endpoint: EndpointSettings, count: int
) -> CouncilError:
    first = failures[0] if failures else None
    if first is not None and all(f.error_kind == ErrorKind.AUTH for f in failures):
        return AuthError(first.message, endpoint.auth_hint())
    kinds = {f.error_kind for f in failures}
    if kinds == {"connection"}:
        return EndpointError(
            f"cannot reach {endpoint.base_url}",
            "is the server running? check --base-url or $COUNCIL_BASE_URL",
        )
    first_kind = first.error_kind if first is not None else None
    if len(kinds) == 1 and first is not None:
        detail = first.message
    else:
        detail = ", ".join(f"{f.persona} ({f.error_kind})" for f in failures)
    hint = _HINTS.get(first_kind or "", _RETRY_HINT) if len(kinds) == 1 else _RETRY_HINT
    final = [kind for kind in _FINAL_KINDS if kind in kinds]
    if final and len(kinds) > 1:
        hint = _HINTS[final[0]]
    who = "the only persona" if count == 1 else f"all {count} personas"
    return EndpointError(f"{who} failed: {detail}", hint)
