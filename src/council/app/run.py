"""Runs an oracle or deliberation plan with its renderers and turns the outcome into an exit code.

The glue between the CLI and the engines: picks the live view and the final
output for where stdout goes, runs the engine, and when the run is stopped still
prints and records everything that finished: Ctrl-C exits 130, SIGTERM 143 and
SIGHUP 129 (what `timeout`, `docker stop`, CI cancellation and a closed terminal
send). A reader of stdout that goes away (`| head`) ends the output quietly; the
run is still recorded. Errors of a view or of the recorder never change an
answer: they are reported in one line at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, TextIO

from council.app.limits import save_learned, seed_learned
from council.app.streams import is_gone, stdout_gone
from council.config.endpoint_settings import EndpointSettings
from council.engine.events import EventBus
from council.engine.model import NOT_AFFORDABLE, CallOutcome
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
)
from council.render import OutputMode
from council.render.costs import budget_lowered_line, budget_stop_line
from council.render.format import count_of, deliberation_warnings, prompt_cut_warnings
from council.render.json_out import JsonlWriter, deliberation_document, dumps, oracle_document
from council.render.markdown import deliberation_markdown, oracle_markdown
from council.render.safe_text import strip_controls

if TYPE_CHECKING:
    from rich.console import Console

    from council.engine.model import ResumeState
    from council.render.live import LiveView, RoundsLiveView
    from council.store.recorder import Recorder

from council.store.recorder import RecordOptions

__all__ = [
    "STOPPED_BY",
    "all_failed_error",
    "close_recording",
    "document_of",
    "finish_recording",
    "plan_endpoints",
    "result_markdown",
    "run_deliberation",
    "run_error",
    "run_metrics",
    "run_notes",
    "run_oracle",
    "run_quietly",
    "run_until_stopped",
    "say",
    "start_recording",
    "stderr_console",
    "stop_recording",
    "stop_signals_call",
    "subscriber_errors_line",
]

# Signals that stop a run as Ctrl-C does, and the exit code each ends it with
# (128 + the signal's number, as a shell reports a process it killed).
STOP_SIGNALS = {
    getattr(signal, name): code
    for name, code in (("SIGTERM", EXIT_TERMINATED), ("SIGHUP", EXIT_HANGUP))
    if hasattr(signal, name)  # no SIGHUP on Windows
}
STOPPED_BY = {EXIT_INTERRUPTED: "Ctrl-C", EXIT_TERMINATED: "SIGTERM", EXIT_HANGUP: "SIGHUP"}


# What rich reads to decide that a file which is no TTY is a terminal all the same.
RICH_TERMINAL_ENV = ("FORCE_TERMINAL", "TTY_COMPATIBLE", "FORCE_COLOR", "JUPYTER_COLUMNS")
# The modules only a human's output needs: rich, and Markdown rendered by it (about 50 ms
# to import). Loaded before a run only when stdout is a terminal; a pipe, --json or
# --jsonl never loads them, so that their first request goes out sooner.
RICH_OUTPUT_MODULES = ("council.render.rich_report",)


@contextlib.contextmanager
def stop_signals_call(
    loop: asyncio.AbstractEventLoop, stop: Callable[[int], None]
) -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP call `stop(exit code)` on `loop`.

    (Ctrl-C is asyncio.run's own: it cancels the main task and raises KeyboardInterrupt.)
    """
    installed = []
    for signum, code in STOP_SIGNALS.items():
        # Not on Windows, nor from a thread other than the main one (tests).
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop, code)
            installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


class _Stderr:
    """stderr as a rich Console, made when first needed: rich costs about 20 ms to import,
    and a run whose stderr is no terminal, with nothing to say, never needs it."""

    @cached_property
    def console(self) -> Console:
        from rich.console import Console

        # soft_wrap: a message is one line, however narrow the terminal (or 80 in a pipe).
        return Console(stderr=True, highlight=False, soft_wrap=True)

    @property
    def is_terminal(self) -> bool:
        """Whether rich sees a terminal (its own answer; without asking, when it cannot)."""
        if not _isatty(sys.stderr) and not any(k in os.environ for k in RICH_TERMINAL_ENV):
            return False
        return self.console.is_terminal

    def print(self, text: str, **options: Any) -> None:
        self.console.print(text, **options)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (ValueError, AttributeError):  # closed, or no file at all
        return False


def stderr_console() -> _Stderr:
    return _Stderr()


def say(err: _Stderr, line: str) -> None:
    """One line on stderr. It may quote a server or a model, so it is cleaned of control
    sequences and never read as rich markup (`[link=...]` would make a disguised link)."""
    err.print(strip_controls(line), markup=False, highlight=False)


class _Views:
    """What watches a run: the JSON-lines writer or the live view, as the output mode asks."""

    def __init__(
        self,
        mode: OutputMode,
        out: TextIO,
        err: _Stderr,
        *,
        quiet: bool,
        show_live: bool | None,
    ) -> None:
        self.mode, self.out, self.err = mode, out, err
        wanted = show_live if show_live is not None else err.is_terminal
        self.live_wanted = wanted and not quiet and mode in (OutputMode.RICH, OutputMode.MARKDOWN)
        _load_output_modules(mode)

    def drive(
        self,
        bus: EventBus,
        execute: Callable[[], Coroutine[Any, Any, object]],
        make_live: Callable[[Console], LiveView | RoundsLiveView],
        on_stop: Callable[[int], None],
    ) -> int | None:
        """Run an engine to its end under its views; None, or the exit code of what stopped it.

        Ctrl-C gives 130, SIGTERM 143, SIGHUP 129. For a signal, `on_stop(code)` is
        called on the loop before the engine is cancelled, so that the result (and
        the events it ends with) say why. The engine's result holds everything that
        finished either way.
        """
        if self.mode is OutputMode.JSONL:
            bus.subscribe(JsonlWriter(self.out))
        live = make_live(self.err.console) if self.live_wanted else None
        if live is not None:
            bus.subscribe(live.handle)
        return run_until_stopped(execute, on_stop, live)


def run_until_stopped(
    execute: Callable[[], Coroutine[Any, Any, object]],
    on_stop: Callable[[int], None],
    during: contextlib.AbstractContextManager[Any] | None = None,
) -> int | None:
    """Run `execute` on a new event loop to its end; None, or the exit code of what stopped it.

    Ctrl-C gives 130, SIGTERM 143, SIGHUP 129. For a signal, `on_stop(code)` is
    called on the loop before the engine is cancelled, so that the result (and
    the events it ends with) say why. `during` (the live view) is held while it runs.
    """
    stopped: list[int] = []

    async def main() -> None:
        _collect_again()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def stop(code: int) -> None:
            # Cancelled as Ctrl-C cancels it: calls end, streams close, results stay.
            # Once: a second signal must not cut short the closing of the streams.
            if not stopped:
                stopped.append(code)
                on_stop(code)
                task.cancel()

        with stop_signals_call(loop, stop):
            await execute()

    try:
        with during if during is not None else contextlib.nullcontext():
            asyncio.run(main())
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except asyncio.CancelledError:
        if stopped:
            return stopped[0]
        raise
    except OSError as error:
        if stopped and is_gone(error):  # the live view's terminal hung up
            return stopped[0]
        raise
    return None


class _Output:
    """Writes the run's final output to stdout, and notices when its reader went away."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.gone = False

    def write(self, write: Callable[[], object]) -> None:
        if self.gone:
            return
        try:
            write()
            self.out.flush()
        except OSError as error:
            if not is_gone(error):
                raise
            self.closed()

    def closed(self) -> None:
        """The reader left (`| head`): nothing more is written, and nothing fails at exit."""
        self.gone = True
        if self.out is sys.stdout:
            stdout_gone()


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
    )
    bus.subscribe(recorder.handle)
    return recorder


def stop_recording(recorder: Recorder | None, err: _Stderr) -> None:
    line = close_recording(recorder)
    if line is not None:
        say(err, line)


def close_recording(recorder: Recorder | None) -> str | None:
    """Wait for the history's writes; the warning line when the history could not be used."""
    if recorder is None:
        return None
    recorder.close()  # waits for the writer: the history is complete when the command ends
    return f"council: warning: {recorder.problem}" if recorder.problem else None


def run_oracle(
    plan: OraclePlan,
    mode: OutputMode,
    *,
    quiet: bool = False,
    verbose: bool = False,
    stdout: TextIO | None = None,
    show_live: bool | None = None,
    record: RecordOptions | None = None,
) -> int:
    """Run the plan, print the result for `mode`, and return the exit code.

    Raises AuthError / EndpointError when no persona answered, after printing
    whatever a program asked for (`--json` always gets its document).
    """
    out = _Output(stdout or sys.stdout)
    err = stderr_console()
    bus = EventBus()
    endpoints = plan_endpoints(plan)
    seed_learned(endpoints)
    run = OracleRun(plan, bus)
    names = [p.name for p in plan.personas]
    views = _Views(mode, out.out, err, quiet=quiet, show_live=show_live)
    recorder = start_recording(record, "oracle", plan.to_dict(), bus)
    try:
        stopped = views.drive(
            bus,
            run.execute,
            _oracle_live_view(names, plan.choices if plan.vote else None),
            _stopping(run.result),
        )
        if stopped is not None:
            _stopped(run.result, stopped)
        result = run.result
        markdown = result_markdown(result, quiet=quiet)
        document = oracle_document(result)
        out.write(lambda: _print_result(result, mode, quiet, verbose, out.out, markdown, document))
        finish_recording(recorder, result, document, markdown)
    finally:
        stop_recording(recorder, err)
        if record is not None:  # --no-history keeps nothing, this included
            save_learned(endpoints)
    _report_views(bus, out, err)
    _report(result, err)
    _how_to_go_on(result, recorder, err)
    return result.exit_code


def run_deliberation(
    plan: DeliberationPlan,
    mode: OutputMode,
    *,
    quiet: bool = False,
    verbose: bool = False,
    stdout: TextIO | None = None,
    show_live: bool | None = None,
    record: RecordOptions | None = None,
    resume: ResumeState | None = None,
) -> int:
    """Run a deliberation, print its answer for `mode`, and return the exit code.

    Raises AuthError / EndpointError when no persona answered in the first round.
    """
    out = _Output(stdout or sys.stdout)
    err = stderr_console()
    bus = EventBus()
    endpoints = plan_endpoints(plan)
    seed_learned(endpoints)
    from council.engine.deliberation import DeliberationRun  # an oracle never loads it

    run = DeliberationRun(plan, bus, resume=resume)
    views = _Views(mode, out.out, err, quiet=quiet, show_live=show_live)
    recorder = start_recording(record, "deliberate", plan.to_dict(), bus)
    try:
        stopped = views.drive(
            bus,
            run.execute,
            _rounds_live_view(plan.rounds),
            _stopping(run.result),
        )
        if stopped is not None:
            _stopped(run.result, stopped)
            run.result.stop_reason = "interrupted"
        result = run.result
        shown = any(r.answers for r in result.rounds) or result.interrupted
        markdown = result_markdown(result, quiet=quiet)
        document = deliberation_document(result)
        if mode is OutputMode.JSON:
            out.write(lambda: out.out.write(dumps(document) + "\n"))
        elif mode is OutputMode.RICH and shown:
            from rich.console import Console

            from council.render.rich_report import deliberation_renderable

            renderable = deliberation_renderable(result, quiet=quiet, verbose=verbose)
            out.write(lambda: Console(file=out.out).print(renderable))
        elif mode is OutputMode.MARKDOWN:
            out.write(lambda: out.out.write(markdown))
        finish_recording(recorder, result, document, markdown)
    finally:
        stop_recording(recorder, err)
        if record is not None:  # --no-history keeps nothing, this included
            save_learned(endpoints)
    _report_views(bus, out, err)
    _report(result, err)
    _how_to_go_on(result, recorder, err)
    return result.exit_code


def document_of(result: OracleResult | DeliberationResult) -> dict[str, Any]:
    """The run's `--json` document, whatever its mode."""
    if isinstance(result, DeliberationResult):
        return deliberation_document(result)
    return oracle_document(result)


def result_markdown(result: OracleResult | DeliberationResult, *, quiet: bool = False) -> str:
    """The run as Markdown (what a pipe gets, and `council show` replays); "" when nothing
    answered and nothing was stopped: there is nothing to show."""
    if isinstance(result, DeliberationResult):
        shown = any(r.answers for r in result.rounds) or result.interrupted
        return deliberation_markdown(result, quiet=quiet) if shown else ""
    shown = bool(result.answers) or result.interrupted
    return oracle_markdown(result, quiet=quiet) if shown else ""


def run_metrics(result: OracleResult | DeliberationResult) -> dict[str, Any]:
    """The run-level metrics the history keeps beside the run (`council stats`)."""
    if isinstance(result, OracleResult):
        return {"cost_usd": result.cost_usd}
    speculative = result.plan.speculative
    return {
        "rounds": len(result.rounds),
        "converged": int(result.stop_reason == "converged"),
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
        failures = [f for f in result.failures if f.error_kind != NOT_AFFORDABLE]
        return all_failed_error(failures, result.plan.endpoint, len(result.plan.personas))
    if any(r.answers for r in result.rounds):
        return None
    count = len(result.plan.personas)
    return all_failed_error(result.kept_failures, result.plan.endpoint, count)


def _oracle_live_view(
    names: list[str], choices: Sequence[str] | None
) -> Callable[[Console], LiveView]:
    def make(console: Console) -> LiveView:
        from council.render.live import LiveView

        return LiveView(console, names, choices)

    return make


def _rounds_live_view(rounds: int) -> Callable[[Console], RoundsLiveView]:
    def make(console: Console) -> RoundsLiveView:
        from council.render.live import RoundsLiveView

        return RoundsLiveView(console, rounds)

    return make


def _collect_again() -> None:
    """The command's imports are done: the garbage collector is back (`council.cli` turned
    it off for them), past what they made, which lives as long as the process."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _load_output_modules(mode: OutputMode) -> None:
    """Before a run: what printing its result for `mode` will need, so as not to pay
    for it after the answers came (a terminal's live view is drawing meanwhile)."""
    if mode is OutputMode.RICH:
        for name in RICH_OUTPUT_MODULES:
            importlib.import_module(name)


async def run_quietly(
    plan: OraclePlan | DeliberationPlan, bus: EventBus | None = None
) -> OracleResult | DeliberationResult:
    """Run a plan with no view, no output and no history; its result, for programs (`council eval`).

    It runs on the caller's event loop, so that many plans can go at once under the
    endpoint's limiter (shared by every call in the process). The caller wraps them
    all: `seed_learned`/`save_learned` on `plan_endpoints`, `serving` for a local
    endpoint, and its own subscribers on `bus` (calls, tokens). Nothing is raised for
    failed calls: they are in the result, as for the printing runs.
    """
    from council.engine.deliberation import DeliberationRun  # an oracle never loads it

    events = bus or EventBus()
    run: OracleRun | DeliberationRun
    if isinstance(plan, DeliberationPlan):
        run = DeliberationRun(plan, events)
    else:
        run = OracleRun(plan, events)
    await run.execute()
    return run.result


def plan_endpoints(plan: OraclePlan | DeliberationPlan) -> list[EndpointSettings]:
    """Every endpoint the plan calls, whose learned limits are loaded and kept."""
    return [plan.endpoint, *plan.endpoints.values()]


def _stopping(result: OracleResult | DeliberationResult) -> Callable[[int], None]:
    """What a stop signal does first: say in the result which exit code the run ends with."""

    def stopping(code: int) -> None:
        result.interrupted_exit = code

    return stopping


def _stopped(result: OracleResult | DeliberationResult, code: int) -> None:
    result.interrupted = True
    result.interrupted_exit = code


def _report_views(bus: EventBus, out: _Output, err: _Stderr) -> None:
    """One line for what failed in a view or the recorder; quiet about a reader gone away.

    The bus keeps a subscriber's exception and goes on, so that a bug in a view never
    costs an answer; here it is said, once, after the answers.
    """
    errors = [e for e in bus.errors if not is_gone(e)]
    if len(errors) < len(bus.errors):
        out.closed()  # --jsonl's reader went away: the run went on, and is recorded
    line = subscriber_errors_line(errors)
    if line is not None:
        say(err, line)


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


def _print_result(
    result: OracleResult,
    mode: OutputMode,
    quiet: bool,
    verbose: bool,
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
        from rich.console import Console

        from council.render.rich_report import oracle_renderable

        Console(file=out).print(oracle_renderable(result, quiet=quiet, verbose=verbose))
    else:
        out.write(markdown)


def _report(result: OracleResult | DeliberationResult, err: _Stderr) -> None:
    """One line on stderr for anything short of full success; raise when nothing answered."""
    for line in run_notes(result):
        say(err, line)
    error = run_error(result)
    if error is not None:
        raise error


def run_notes(result: OracleResult | DeliberationResult) -> list[str]:
    """The lines the CLI says on stderr after a run, for anything short of full success
    (when nobody answered: those before `run_error`'s)."""
    if isinstance(result, DeliberationResult):
        return _deliberation_notes(result)
    failures = [f for f in result.failures if f.error_kind != NOT_AFFORDABLE]
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
    if synthesis is not None and not synthesis.answered and synthesis.error_kind != NOT_AFFORDABLE:
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


def _how_to_go_on(
    result: OracleResult | DeliberationResult, recorder: Recorder | None, err: Console
) -> None:
    """After a stopped run that is in the history: its id, and the exact command to go on."""
    if not result.interrupted or recorder is None or recorder.run_id is None:
        return
    if recorder.problem:  # not (wholly) recorded: there is nothing to go on from
        return
    run_id = recorder.run_id
    if isinstance(result, DeliberationResult):
        say(
            err,
            f"council: run {run_id} is in the history; go on with: "
            f"council deliberate --resume {run_id} (or: council resume {run_id})",
        )
    else:  # an oracle run cannot be resumed: what finished is there to see
        say(err, f"council: run {run_id} is in the history; see it with: council show {run_id}")


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
