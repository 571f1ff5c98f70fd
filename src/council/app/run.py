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

from council.app.run_context import (
    PlanRun,
    RunContext,
    close_recording,
    command_of,
    document_of,
    has_output,
    plan_endpoints,
    result_markdown,
    run_error,
    run_notes,
    subscriber_errors_line,
)
from council.app.streams import is_gone, stdout_gone
from council.engine.events import EventBus
from council.engine.plan import DeliberationPlan, OraclePlan
from council.engine.results import DeliberationResult, OracleResult
from council.errors import EXIT_HANGUP, EXIT_INTERRUPTED, EXIT_TERMINATED
from council.render import OutputMode
from council.render.json_out import JsonlWriter, dumps
from council.render.safe_text import strip_controls

if TYPE_CHECKING:
    from rich.console import Console

    from council.engine.model import ResumeState
    from council.render.live import LiveView, RoundsLiveView
    from council.store.recorder import Recorder

from council.store.recorder import RecordOptions

__all__ = [
    "run_deliberation",
    "run_oracle",
    "run_quietly",
    "run_shown",
    "run_until_stopped",
    "say",
    "stderr_console",
    "stop_recording",
    "stop_signals_call",
]

# Signals that stop a run as Ctrl-C does, and the exit code each ends it with
# (128 + the signal's number, as a shell reports a process it killed).
STOP_SIGNALS = {
    getattr(signal, name): code
    for name, code in (("SIGTERM", EXIT_TERMINATED), ("SIGHUP", EXIT_HANGUP))
    if hasattr(signal, name)  # no SIGHUP on Windows
}
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


def stop_recording(recorder: Recorder | None, err: _Stderr) -> None:
    line = close_recording(recorder)
    if line is not None:
        say(err, line)


def run_shown(
    plan: OraclePlan | DeliberationPlan,
    mode: OutputMode,
    *,
    quiet: bool = False,
    verbose: bool = False,
    stdout: TextIO | None = None,
    show_live: bool | None = None,
    record: RecordOptions | None = None,
    resume: ResumeState | None = None,
) -> int:
    """Run the plan under its views, print the result for `mode`, and return the exit code.

    Raises AuthError / EndpointError when no persona answered (in a deliberation's
    first round), after printing whatever a program asked for (`--json` always gets
    its document).
    """
    out = _Output(stdout or sys.stdout)
    err = stderr_console()
    context = RunContext(
        plan_endpoints(plan), record=record, command=command_of(plan), plan=plan.to_dict()
    )
    run = PlanRun(plan, context, resume=resume)
    views = _Views(mode, out.out, err, quiet=quiet, show_live=show_live)
    try:
        stopped = views.drive(context.bus, run.execute, _live_view(plan), _stopping(run.result))
        if stopped is not None:
            run.stopped(stopped)
        result = run.result
        document, markdown = document_of(result), result_markdown(result, quiet=quiet)
        out.write(lambda: _print_result(result, mode, quiet, verbose, out.out, markdown, document))
        run.finish(quiet=quiet)
    finally:
        for line in context.close():
            say(err, line)
    _report_views(context.bus, out, err)
    _report(result, err)
    _how_to_go_on(result, context, err)
    return result.exit_code


def run_oracle(plan: OraclePlan, mode: OutputMode, **options: Any) -> int:
    """`run_shown` for an oracle's plan."""
    return run_shown(plan, mode, **options)


def run_deliberation(plan: DeliberationPlan, mode: OutputMode, **options: Any) -> int:
    """`run_shown` for a deliberation's plan (`resume`: a recorded run's state)."""
    return run_shown(plan, mode, **options)


def _live_view(plan: OraclePlan | DeliberationPlan) -> Callable[[Console], Any]:
    if isinstance(plan, DeliberationPlan):
        return _rounds_live_view(plan.rounds)
    names = [p.name for p in plan.personas]
    return _oracle_live_view(names, plan.choices if plan.vote else None)


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
    """Run a plan with no view, no output and no history; its result, for programs.

    It runs on the caller's event loop, in a context of its own (its own endpoint pool;
    several plans that must share one run as `PlanRun`s in one `RunContext`). The caller
    wraps it: `serving` for a local endpoint, and its own subscribers on `bus`. Nothing is
    raised for failed calls: they are in the result, as for the printing runs.
    """
    return await PlanRun(plan, RunContext(()), bus=bus).execute()


def _stopping(result: OracleResult | DeliberationResult) -> Callable[[int], None]:
    """What a stop signal does first: say in the result which exit code the run ends with."""

    def stopping(code: int) -> None:
        result.interrupted_exit = code

    return stopping


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


def _print_result(
    result: OracleResult | DeliberationResult,
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
    elif not has_output(result):
        return  # nothing to show; the error line on stderr says why
    elif mode is OutputMode.RICH:
        from rich.console import Console

        from council.render.rich_report import deliberation_renderable, oracle_renderable

        if isinstance(result, DeliberationResult):
            renderable = deliberation_renderable(result, quiet=quiet, verbose=verbose)
        else:
            renderable = oracle_renderable(result, quiet=quiet, verbose=verbose)
        Console(file=out).print(renderable)
    else:
        out.write(markdown)


def _report(result: OracleResult | DeliberationResult, err: _Stderr) -> None:
    """One line on stderr for anything short of full success; raise when nothing answered."""
    for line in run_notes(result):
        say(err, line)
    error = run_error(result)
    if error is not None:
        raise error


def _how_to_go_on(
    result: OracleResult | DeliberationResult, context: RunContext, err: _Stderr
) -> None:
    """After a stopped run that is in the history: its id, and the exact command to go on."""
    run_id = context.run_id  # None: not (wholly) recorded, there is nothing to go on from
    if not result.interrupted or run_id is None:
        return
    if isinstance(result, DeliberationResult):
        say(
            err,
            f"council: run {run_id} is in the history; go on with: "
            f"council deliberate --resume {run_id} (or: council resume {run_id})",
        )
    else:  # an oracle run cannot be resumed: what finished is there to see
        say(err, f"council: run {run_id} is in the history; see it with: council show {run_id}")
