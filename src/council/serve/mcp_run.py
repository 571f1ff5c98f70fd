"""One council asked from an MCP tool call, on the public `Council` API: its document back.

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
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from council.app.council import Council, CouncilStream
from council.engine.events import ArbiterVerdict, CallFailed, CallFinished, CallStarted, Event
from council.errors import ErrorKind, UsageError

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
    # Ask a first panel and the rest only in doubt (None: as the preset says).
    escalate: bool | None = None


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
            what = "ranked the answers" if event.role in ("reviewer", "check") else "answered"
            return f"{event.persona} {what} ({event.outcome.latency:.1f} s{where})"
        if isinstance(event, CallFailed):
            if event.outcome.error_kind == ErrorKind.NOT_AFFORDABLE:
                return f"{event.persona} was not asked: the budget is spent"
            return f"{event.persona} failed ({event.outcome.error_kind})"
        if isinstance(event, ArbiterVerdict):
            settled = "converged" if event.converged else "not converged"
            return f"round {event.round} judged: {settled}, confidence {event.confidence:.2f}"
        return None


def _check(spec: CouncilSpec) -> None:
    """What the council would refuse, said in the tool's own words before anything is sent."""
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


def _council(spec: CouncilSpec, settings: McpSettings) -> Council:
    """The council the call asks for, resolved as the CLI resolves its flags."""
    return Council(
        list(spec.personas) or None,
        preset=spec.preset or settings.preset,
        endpoint=settings.endpoint,
        base_url=settings.base_url,
        model=settings.model,
        api_key_env=settings.api_key_env,
        history=not settings.no_history,
        command=COMMAND,
    )


def _stream(council: Council, spec: CouncilSpec) -> CouncilStream:
    voting: dict[str, Any] = {"vote": spec.vote, "choices": list(spec.choices) or None}
    voting["escalate"] = spec.escalate
    if spec.deliberation:
        return council.stream(
            spec.question,
            deliberate=True,
            rounds=spec.rounds,
            speculative=spec.speculative,
            **voting,
        )
    return council.stream(spec.question, synthesize=spec.synthesize and not spec.vote, **voting)


async def run_council(
    spec: CouncilSpec, settings: McpSettings, report: Callable[[str], None]
) -> dict[str, Any]:
    """Run the council `spec` asks for; its `--json` document, `run_id` the history's
    (None: not recorded).

    Raises CouncilError for a request that cannot run (unknown persona or preset, no
    key) and when no member answered (the run is recorded first). Cancelled, it
    cancels every call of the run, records what finished, and raises CancelledError.
    """
    _check(spec)
    # Reading config, preset and persona files is blocking work: off the event loop.
    council = await asyncio.to_thread(_council, spec, settings)
    lines = ProgressLines()
    async with _stream(council, spec) as events:
        async for event in events:
            line = lines(event)
            if line is not None:
                report(line)
    result = events.result
    for note in result.notes:  # what the CLI would say on stderr: the client's log
        sys.stderr.write(f"{note}\n")
    document = dict(result.to_dict())
    document["run_id"] = result.run_id
    return document
