"""Runs an oracle plan with its renderers and turns the outcome into an exit code.

The glue between the CLI and the engine: picks the live view and the final
output for where stdout goes, runs the engine, and on Ctrl-C still prints
everything that finished before exiting 130.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from rich.console import Console

from council.errors import EXIT_INTERRUPTED, EXIT_USAGE, AuthError, CouncilError, EndpointError
from council.events import EventBus
from council.oracle import OracleRun
from council.plan import OraclePlan
from council.render import OutputMode
from council.render.json_out import JsonlWriter, dumps, oracle_document
from council.render.live import LiveView
from council.render.markdown import oracle_markdown
from council.render.rich_report import oracle_renderable
from council.results import Failure, OracleResult

__all__ = ["run_oracle"]


def _stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def run_oracle(
    plan: OraclePlan,
    mode: OutputMode,
    *,
    quiet: bool = False,
    stdout: TextIO | None = None,
    show_live: bool | None = None,
) -> int:
    """Run the plan, print the result for `mode`, and return the exit code.

    Raises AuthError / EndpointError when no persona answered, after printing
    whatever a program asked for (`--json` always gets its document).
    """
    out = stdout or sys.stdout
    err = _stderr_console()
    bus = EventBus()
    run = OracleRun(plan, bus)
    if mode is OutputMode.JSONL:
        bus.subscribe(JsonlWriter(out))
    live_wanted = show_live if show_live is not None else err.is_terminal
    live = (
        LiveView(err, [p.name for p in plan.personas])
        if live_wanted and not quiet and mode in (OutputMode.RICH, OutputMode.MARKDOWN)
        else None
    )
    if live is not None:
        bus.subscribe(live.handle)
    try:
        if live is not None:
            with live:
                asyncio.run(run.execute())
        else:
            asyncio.run(run.execute())
    except KeyboardInterrupt:
        run.result.interrupted = True
    result = run.result
    _print_result(result, mode, quiet, out)
    _report(result, err)
    return result.exit_code


def _print_result(result: OracleResult, mode: OutputMode, quiet: bool, out: TextIO) -> None:
    if mode is OutputMode.JSON:
        out.write(dumps(oracle_document(result)) + "\n")
    elif mode is OutputMode.JSONL:
        return  # the events already went out as they happened
    elif not result.answers and not result.interrupted:
        return  # nothing to show; the error line on stderr says why
    elif mode is OutputMode.RICH:
        Console(file=out).print(oracle_renderable(result, quiet=quiet))
    else:
        out.write(oracle_markdown(result, quiet=quiet))
    out.flush()


def _report(result: OracleResult, err: Console) -> None:
    """One line on stderr for anything short of full success; raise when nothing answered."""
    failures = result.failures
    total = len(result.plan.personas)
    if result.exit_code == EXIT_INTERRUPTED:
        err.print(f"council: interrupted; {len(result.answers)} of {total} answers had finished")
        return
    if not result.answers:
        raise _all_failed_error(result)
    if failures:
        names = ", ".join(f"{f.persona} ({f.error_kind})" for f in failures)
        err.print(
            f"council: {len(failures)} of {total} personas failed: {names}; "
            "the other answers are shown",
            highlight=False,
        )
    synthesis = result.synthesis
    if isinstance(synthesis, Failure):
        err.print(
            f"council: the synthesis failed ({synthesis.error_kind}): {synthesis.message}; "
            "the answers are shown",
            highlight=False,
        )


def _all_failed_error(result: OracleResult) -> CouncilError:
    failures = result.failures
    endpoint = result.plan.endpoint
    first = failures[0] if failures else None
    if result.exit_code == EXIT_USAGE and first is not None:
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
    count = len(result.plan.personas)
    who = "the only persona" if count == 1 else f"all {count} personas"
    return EndpointError(f"{who} failed: {detail}", hint)
