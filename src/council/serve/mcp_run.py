"""One council asked from an MCP tool call: settings resolved, run, recorded, its document back.

    document = await run_council(spec, settings, progress)

`progress` gets a line as each member answers or fails and as each round starts
("critic answered (2.1 s)", "round 2 started"), for the client's progress bar.
The run is recorded in the history with `command: mcp`. A call cancelled by the
client (or by its transport going away) cancels every model call at once; what
finished is recorded as an interrupted run. Errors a user can cause are raised
as `CouncilError`, one line each.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from council.app.ask import AskRequest, deliberation_plan, oracle_plan, resolve_council
from council.app.flags import AskFlags
from council.app.run import plan_endpoints, start_recording
from council.engine.events import ArbiterVerdict, CallFailed, CallFinished, CallStarted, Event
from council.engine.model import NOT_AFFORDABLE
from council.engine.results import DeliberationResult, OracleResult
from council.errors import AuthError, EndpointError, UsageError

__all__ = ["CouncilSpec", "McpSettings", "ProgressLines", "run_council"]

# The command a run asked through MCP is recorded as (`council history`, `council stats`).
COMMAND = "mcp"


@dataclass(frozen=True)
class McpSettings:
    """What `council mcp` was started with: every tool call's council starts from these
    (a tool call's own personas or preset win)."""

    endpoint: str | None = None
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    preset: str | None = None
    no_history: bool = False


@dataclass(frozen=True)
class CouncilSpec:
    """The council a tool call asks for. `rounds` None with `deliberation`: the preset's
    or the config's; an oracle (`deliberation` False) answers in one round."""

    question: str
    personas: tuple[str, ...] = ()
    preset: str | None = None
    deliberation: bool = False
    synthesize: bool = True
    rounds: int | None = None
    speculative: bool | None = None
    vote: bool = False
    choices: tuple[str, ...] = ()


class ProgressLines:
    """What a person watching a run is told about each event (None: nothing).

    A member's answer or failure, a new round, a verdict: the moments the client's
    progress bar moves. Calls that start, stream or are cancelled are not news.
    """

    def __init__(self) -> None:
        self.rounds: set[int] = {1}

    def __call__(self, event: Event) -> str | None:
        if isinstance(event, CallStarted):
            if event.role != "persona" or event.round in self.rounds:
                return None
            self.rounds.add(event.round)
            return f"round {event.round} started"
        if isinstance(event, CallFinished):
            if event.role == "arbiter":
                return None  # its verdict is the news, just after
            where = f", round {event.round}" if event.round > 1 else ""
            what = "ranked the answers" if event.role == "reviewer" else "answered"
            return f"{event.persona} {what} ({event.outcome.latency:.1f} s{where})"
        if isinstance(event, CallFailed):
            if event.outcome.error_kind == NOT_AFFORDABLE:
                return f"{event.persona} was not asked: the budget is spent"
            return f"{event.persona} failed ({event.outcome.error_kind})"
        if isinstance(event, ArbiterVerdict):
            settled = "converged" if event.converged else "not converged"
            return f"round {event.round} judged: {settled}, confidence {event.confidence:.2f}"
        return None


def _flags(spec: CouncilSpec, settings: McpSettings) -> AskFlags:
    return AskFlags(
        preset=spec.preset or settings.preset,
        personas=",".join(spec.personas) if spec.personas else None,
        endpoint=settings.endpoint,
        base_url=settings.base_url,
        model=[settings.model] if settings.model else None,
        api_key_env=settings.api_key_env,
        no_stdin=True,  # standard input is the protocol
        vote=spec.vote,
        choices=",".join(spec.choices) if spec.choices else None,
    )


def _check(spec: CouncilSpec) -> None:
    """What the engine would refuse, said before anything is sent."""
    if not spec.question.strip():
        raise UsageError("the question is empty", "give the question to ask the council")
    if spec.choices and not spec.vote:
        raise UsageError("choices go with vote", "set vote to true, or drop choices")
    if spec.vote and spec.choices and len(spec.choices) < 2:
        raise UsageError(
            "choices names fewer than two choices", 'give two or more, e.g. ["yes", "no"]'
        )
    if spec.rounds is not None and not 1 <= spec.rounds <= 20:
        raise UsageError(f"rounds {spec.rounds}: expected 1 to 20", "e.g. rounds 2")


def _plan(spec: CouncilSpec, request: AskRequest) -> Any:
    voting = {"vote": spec.vote, "choices": spec.choices}
    if spec.deliberation:
        return deliberation_plan(request, spec.question, max_wasted_tokens=None, **voting)
    synthesize = spec.synthesize and not spec.vote
    return oracle_plan(request, spec.question, synthesize=synthesize, **voting)


async def run_council(
    spec: CouncilSpec, settings: McpSettings, report: Callable[[str], None]
) -> dict[str, Any]:
    """Run the council `spec` asks for; its `--json` document (with the history's run id).

    Raises CouncilError for a request that cannot run (unknown persona or preset, no
    key) and when no member answered (the run is recorded first).
    """
    _check(spec)
    flags = _flags(spec, settings)
    values = flags.setting_values(rounds=spec.rounds, speculative=spec.speculative)
    if not spec.deliberation:
        values = flags.setting_values()
    # Reading config and persona files is blocking work: off the event loop.
    request = await asyncio.to_thread(resolve_council, flags, values)
    plan = _plan(spec, request)
    return await _run(plan, request, settings, report)


async def _run(
    plan: Any, request: AskRequest, settings: McpSettings, report: Callable[[str], None]
) -> dict[str, Any]:
    from council.app.limits import save_learned, seed_learned
    from council.engine.deliberation import DeliberationRun
    from council.engine.events import EventBus
    from council.engine.oracle import OracleRun
    from council.engine.plan import DeliberationPlan

    bus = EventBus()
    lines = ProgressLines()

    def progress(event: Event) -> None:
        line = lines(event)
        if line is not None:
            report(line)

    bus.subscribe(progress)
    endpoints = plan_endpoints(plan)
    seed_learned(endpoints)
    record = request.record_options(no_history=settings.no_history, no_store_text=False)
    recorder = start_recording(record, COMMAND, plan.to_dict(), bus)
    deliberating = isinstance(plan, DeliberationPlan)
    run = DeliberationRun(plan, bus) if deliberating else OracleRun(plan, bus)
    try:
        try:
            await run.execute()
        except asyncio.CancelledError:
            run.result.interrupted = True
            if isinstance(run.result, DeliberationResult):
                run.result.stop_reason = "interrupted"
            raise
        finally:
            document, markdown = _outputs(run.result)
            if recorder is not None:
                recorder.finish(
                    answer=run.result.answer,
                    document=document,
                    markdown=markdown,
                    metrics={"cost_usd": run.result.cost_usd},
                )
    finally:
        if recorder is not None:
            # Waits for the history writer's thread: off the event loop.
            with contextlib.suppress(Exception):
                await asyncio.shield(asyncio.to_thread(recorder.close))
        if record is not None:
            save_learned(endpoints)
    _raise_when_nobody_answered(run.result)
    # The id the history knows the run by; none when it was not recorded.
    document["run_id"] = recorder.run_id if recorder is not None else None
    return document


def _outputs(result: OracleResult | DeliberationResult) -> tuple[dict[str, Any], str]:
    from council.render.json_out import deliberation_document, oracle_document
    from council.render.markdown import deliberation_markdown, oracle_markdown

    if isinstance(result, DeliberationResult):
        return deliberation_document(result), deliberation_markdown(result, quiet=False)
    return oracle_document(result), oracle_markdown(result, quiet=False)


def _raise_when_nobody_answered(result: OracleResult | DeliberationResult) -> None:
    if isinstance(result, DeliberationResult):
        answered = any(r.answers for r in result.rounds)
        failures = result.kept_failures
    else:
        answered = bool(result.answers)
        failures = result.failures
    failures = [f for f in failures if f.error_kind != NOT_AFFORDABLE]
    if answered or not failures:
        return
    count = len(result.plan.personas)
    who = "the only persona" if count == 1 else f"all {count} personas"
    endpoint = result.plan.endpoint
    if all(f.error_kind == "auth" for f in failures):
        raise AuthError(
            f"{who} failed: {failures[0].message}",
            f"check that ${endpoint.api_key_env} holds a valid key for {endpoint.host}",
        )
    kinds = {f.error_kind for f in failures}
    if kinds == {"connection"}:
        raise EndpointError(
            f"cannot reach {endpoint.base_url}",
            "is the server running? check the base URL council mcp was started with",
        )
    detail = "; ".join(f"{f.persona} ({f.error_kind}): {f.message}" for f in failures)
    raise EndpointError(f"{who} failed: {detail}", "retry later, or check the endpoint")
