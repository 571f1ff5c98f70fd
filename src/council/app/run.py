"""Runs an oracle or deliberation plan with its renderers and turns the outcome into an exit code.

The glue between the CLI and the engines: picks the live view and the final
output for where stdout goes, runs the engine, and on Ctrl-C still prints
everything that finished before exiting 130.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console

from council.config.endpoint_settings import EndpointSettings
from council.engine.deliberation import DeliberationRun
from council.engine.events import EventBus
from council.engine.model import CallOutcome
from council.engine.oracle import OracleRun
from council.engine.plan import DeliberationPlan, OraclePlan
from council.engine.results import DeliberationResult, OracleResult
from council.errors import EXIT_INTERRUPTED, AuthError, CouncilError, EndpointError
from council.render import OutputMode
from council.render.format import deliberation_warnings
from council.render.json_out import JsonlWriter, deliberation_document, dumps, oracle_document
from council.render.live import LiveView, RoundsLiveView
from council.render.markdown import deliberation_markdown, oracle_markdown
from council.render.rich_report import deliberation_renderable, oracle_renderable
from council.render.safe_text import strip_controls

if TYPE_CHECKING:
    from council.engine.model import ResumeState
    from council.store.recorder import Recorder

from council.store.recorder import RecordOptions

__all__ = ["run_deliberation", "run_oracle"]


def _stderr_console() -> Console:
    # soft_wrap: a message is one line, however narrow the terminal (or 80 in a pipe).
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _say(err: Console, line: str) -> None:
    """One line on stderr. It may quote a server or a model, so it is cleaned of control
    sequences and never read as rich markup (`[link=...]` would make a disguised link)."""
    err.print(strip_controls(line), markup=False, highlight=False)


class _Views:
    """What watches a run: the JSON-lines writer or the live view, as the output mode asks."""

    def __init__(
        self,
        mode: OutputMode,
        out: TextIO,
        err: Console,
        *,
        quiet: bool,
        show_live: bool | None,
    ) -> None:
        self.mode, self.out, self.err = mode, out, err
        wanted = show_live if show_live is not None else err.is_terminal
        self.live_wanted = wanted and not quiet and mode in (OutputMode.RICH, OutputMode.MARKDOWN)

    def drive(
        self,
        bus: EventBus,
        execute: Callable[[], Coroutine[Any, Any, object]],
        make_live: Callable[[Console], LiveView | RoundsLiveView],
    ) -> bool:
        """Run an engine to its end under its views; return True if Ctrl-C stopped it.

        The engine's result object holds everything that finished either way.
        """
        if self.mode is OutputMode.JSONL:
            bus.subscribe(JsonlWriter(self.out))
        live = make_live(self.err) if self.live_wanted else None
        if live is not None:
            bus.subscribe(live.handle)
        try:
            with live if live is not None else contextlib.nullcontext():
                asyncio.run(execute())
        except KeyboardInterrupt:
            return True
        return False


def _start_recording(
    options: RecordOptions | None, command: str, plan: dict[str, Any], bus: EventBus, err: Console
) -> Recorder | None:
    """A recorder subscribed to the run's events; None (with a warning) if history is unusable."""
    if options is None:
        return None
    from council.store.db import HistoryDB
    from council.store.recorder import Recorder

    try:
        history = HistoryDB.open()
    except CouncilError as error:
        _say(err, f"council: warning: {error.one_line()}; this run is not recorded")
        return None
    recorder = Recorder(
        history,
        command=command,
        plan=plan,
        store_text=options.store_text,
        preset=options.preset,
        resumed_from=options.resumed_from,
    )
    bus.subscribe(recorder.handle)
    return recorder


def _stop_recording(recorder: Recorder | None, err: Console) -> None:
    if recorder is None:
        return
    recorder.close()
    recorder.history.close()
    if recorder.problem:
        _say(err, f"council: warning: {recorder.problem}")


def run_oracle(
    plan: OraclePlan,
    mode: OutputMode,
    *,
    quiet: bool = False,
    stdout: TextIO | None = None,
    show_live: bool | None = None,
    record: RecordOptions | None = None,
) -> int:
    """Run the plan, print the result for `mode`, and return the exit code.

    Raises AuthError / EndpointError when no persona answered, after printing
    whatever a program asked for (`--json` always gets its document).
    """
    out = stdout or sys.stdout
    err = _stderr_console()
    bus = EventBus()
    run = OracleRun(plan, bus)
    names = [p.name for p in plan.personas]
    views = _Views(mode, out, err, quiet=quiet, show_live=show_live)
    recorder = _start_recording(record, "oracle", plan.to_dict(), bus, err)
    try:
        if views.drive(bus, run.execute, lambda console: LiveView(console, names)):
            run.result.interrupted = True
        result = run.result
        shown = bool(result.answers) or result.interrupted
        markdown = oracle_markdown(result, quiet=quiet) if shown else ""
        document = oracle_document(result)
        _print_result(result, mode, quiet, out, markdown, document)
        if recorder is not None:
            recorder.finish(answer=result.answer, document=document, markdown=markdown)
    finally:
        _stop_recording(recorder, err)
    _report(result, err)
    return result.exit_code


def run_deliberation(
    plan: DeliberationPlan,
    mode: OutputMode,
    *,
    quiet: bool = False,
    stdout: TextIO | None = None,
    show_live: bool | None = None,
    record: RecordOptions | None = None,
    resume: ResumeState | None = None,
) -> int:
    """Run a deliberation, print its answer for `mode`, and return the exit code.

    Raises AuthError / EndpointError when no persona answered in the first round.
    """
    out = stdout or sys.stdout
    err = _stderr_console()
    bus = EventBus()
    run = DeliberationRun(plan, bus, resume=resume)
    views = _Views(mode, out, err, quiet=quiet, show_live=show_live)
    recorder = _start_recording(record, "deliberate", plan.to_dict(), bus, err)
    try:
        if views.drive(bus, run.execute, lambda console: RoundsLiveView(console, plan.rounds)):
            run.result.interrupted = True
            run.result.stop_reason = "interrupted"
        result = run.result
        shown = any(r.answers for r in result.rounds) or result.interrupted
        markdown = deliberation_markdown(result, quiet=quiet) if shown else ""
        document = deliberation_document(result)
        if mode is OutputMode.JSON:
            out.write(dumps(document) + "\n")
        elif mode is OutputMode.RICH and shown:
            Console(file=out).print(deliberation_renderable(result, quiet=quiet))
        elif mode is OutputMode.MARKDOWN:
            out.write(markdown)
        out.flush()
        if recorder is not None:
            recorder.finish(
                answer=result.answer,
                document=document,
                markdown=markdown,
                metrics={
                    "rounds": len(result.rounds),
                    "converged": int(result.stop_reason == "converged"),
                    "saved": result.sequential_estimate - result.wall if plan.speculative else 0.0,
                    "wasted_tokens": result.wasted_tokens,
                },
            )
    finally:
        _stop_recording(recorder, err)
    _report_deliberation(result, err)
    return result.exit_code


def _print_result(
    result: OracleResult,
    mode: OutputMode,
    quiet: bool,
    out: TextIO,
    markdown: str,
    document: dict[str, Any],
) -> None:
    if mode is OutputMode.JSON:
        out.write(dumps(document) + "\n")
    elif mode is OutputMode.JSONL:
        return  # the events already went out as they happened
    elif not result.answers and not result.interrupted:
        return  # nothing to show; the error line on stderr says why
    elif mode is OutputMode.RICH:
        Console(file=out).print(oracle_renderable(result, quiet=quiet))
    else:
        out.write(markdown)
    out.flush()


def _report(result: OracleResult, err: Console) -> None:
    """One line on stderr for anything short of full success; raise when nothing answered."""
    failures = result.failures
    total = len(result.plan.personas)
    if result.exit_code == EXIT_INTERRUPTED:
        _say(err, f"council: interrupted; {len(result.answers)} of {total} answers had finished")
        return
    if not result.answers:
        raise _all_failed_error(failures, result.plan.endpoint, total)
    if failures:
        names = ", ".join(f"{f.persona} ({f.error_kind})" for f in failures)
        _say(
            err,
            f"council: {len(failures)} of {total} personas failed: {names}; "
            "the other answers are shown",
        )
    synthesis = result.synthesis
    if synthesis is not None and not synthesis.answered:
        _say(
            err,
            f"council: the synthesis failed ({synthesis.error_kind}): {synthesis.message}; "
            "the answers are shown",
        )


def _report_deliberation(result: DeliberationResult, err: Console) -> None:
    """Lines on stderr for what went wrong or was left out; raise when nobody ever answered."""
    for line in deliberation_warnings(result):
        _say(err, f"council: {line}")
    if result.interrupted:
        return
    if not any(r.answers for r in result.rounds):
        count = len(result.plan.personas)
        raise _all_failed_error(result.kept_failures, result.plan.endpoint, count)


def _all_failed_error(
    failures: list[CallOutcome], endpoint: EndpointSettings, count: int
) -> CouncilError:
    first = failures[0] if failures else None
    if first is not None and all(f.error_kind == "auth" for f in failures):
        return AuthError(
            first.message,
            f"check that ${endpoint.api_key_env} holds a valid key for {endpoint.host} "
            "(or pass --api-key-env NAME)",
        )
    kinds = {f.error_kind for f in failures}
    if kinds == {"connection"}:
        return EndpointError(
            f"cannot reach {endpoint.base_url}",
            "is the server running? check --base-url or $COUNCIL_BASE_URL",
        )
    if len(kinds) == 1 and first is not None:
        detail = first.message
    else:
        detail = ", ".join(f"{f.persona} ({f.error_kind})" for f in failures)
    hint = (
        "check --model" if kinds == {"not_found"} else "retry later, or raise --timeout / --retries"
    )
    who = "the only persona" if count == 1 else f"all {count} personas"
    return EndpointError(f"{who} failed: {detail}", hint)
