"""council's MCP server (the official `mcp` SDK) and its tools, whatever the transport.

    server = build_server(McpSettings(...))  # served by mcp_stdio.py and mcp_http.py

Tools: `ask` (one round, the arbiter's synthesis by default), `deliberate` (rounds,
speculation), `presets`, `recent_runs`, `show_run`. A council's progress goes out as
MCP progress notifications (when the client sent a progress token) as members
answer and rounds start. Results are text for the model and structured content
(the output schemas of `mcp_schemas.py`); errors a user can cause are tool errors
(isError) of one line, with any key this process sent masked.

No `from __future__ import annotations` here: the SDK reads the tools' annotations
to build their schemas.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from council import __version__
from council.endpoint.redact import redact
from council.errors import CouncilError
from council.serve.mcp_results import council_answer
from council.serve.mcp_run import CouncilSpec, McpSettings, run_council
from council.serve.mcp_schemas import CouncilAnswer, Presets, RecentRuns, RunRecord
from council.serve.mcp_tools import list_presets, recent_runs, show_run

__all__ = ["build_server"]

T = TypeVar("T")

INSTRUCTIONS = (
    "council asks several LLM personas (a judge, a critic, a skeptic...) the same question "
    "at once and has an arbiter weigh their answers. Use `ask` for a second opinion that "
    "needs more than one view (one round with a synthesis: about as long as the slowest "
    "member); `deliberate` when the members should read each other's answers and revise "
    "(several rounds: minutes). `presets` lists the councils and personas there are."
)

Question = Annotated[
    str,
    Field(
        description="The question, with everything the members need to answer it "
        "(code, a design, the options): they see nothing else."
    ),
]
Personas = Annotated[
    list[str] | str | None,
    Field(
        description="Who to ask, by persona name (see the presets tool), e.g. "
        '["judge", "critic", "security"]. Default: the preset\'s, or the configured council.'
    ),
]
Preset = Annotated[
    str | None,
    Field(description="A preset (a whole council: personas, arbiter, model) by name."),
]
Vote = Annotated[
    bool,
    Field(description="Each member casts a ballot; the answer is the majority (no synthesis)."),
]
Choices = Annotated[
    list[str] | str | None,
    Field(description='With vote: the choices to pick from, e.g. ["yes", "no"] or ["A", "B"].'),
]
Escalate = Annotated[
    bool | None,
    Field(
        description="Ask one member first and the whole council only if it is unsure: "
        "far fewer calls on easy questions. Default: the preset's escalate setting."
    ),
]


def _names(value: list[str] | str | None) -> tuple[str, ...]:
    """A list of names, or one string of them separated by commas (as models often send)."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    return tuple(name.strip() for name in items if name.strip())


def _error(error: Exception) -> CallToolResult:
    """A tool error the model reads: one line, keys masked."""
    if isinstance(error, CouncilError):
        text = error.one_line()
    else:  # a bug: said in one line as the CLI does, not a traceback
        text = f"unexpected {type(error).__name__}: {error}; please report it"
    return CallToolResult(content=[TextContent(type="text", text=redact(text))], is_error=True)


def _result(text: str, structured: BaseModel) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=structured.model_dump(mode="json"),
    )


async def _with_progress(ctx: Context, work: Callable[[Callable[[str], None]], Awaitable[T]]) -> T:
    """Run `work(report)`, sending each line it reports as a progress notification.

    The engine reports from its event bus, which must not wait: lines are queued and
    sent in order by a task of their own, all of them before the result goes out.
    """
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    async def send() -> None:
        sent = 0
        while (line := await queue.get()) is not None:
            sent += 1
            # A client that stopped listening costs the council nothing.
            with contextlib.suppress(Exception):
                await ctx.report_progress(sent, None, line)

    sender = asyncio.create_task(send())
    try:
        result = await work(queue.put_nowait)
    except BaseException:
        sender.cancel()
        raise
    queue.put_nowait(None)
    await sender
    return result


async def _council(ctx: Context, spec: CouncilSpec, settings: McpSettings) -> CallToolResult:
    try:
        document = await _with_progress(ctx, lambda report: run_council(spec, settings, report))
    except CouncilError as error:
        return _error(error)
    text, answer = council_answer(document)
    return _result(text, answer)


async def _reading(work: Callable[[], tuple[str, BaseModel]]) -> CallToolResult:
    """A tool that reads files or the history: on a thread, its errors as tool errors."""
    try:
        text, structured = await asyncio.to_thread(work)
    except CouncilError as error:
        return _error(error)
    return _result(text, structured)


def build_server(settings: McpSettings, running: set[asyncio.Task[Any]] | None = None) -> MCPServer:
    """The MCP server with council's tools; every council starts from `settings`.

    `running` holds the task of each council while it runs (to cancel them on a stop).
    """
    running = running if running is not None else set()

    async def council(ctx: Context, spec: CouncilSpec) -> CallToolResult:
        task = asyncio.current_task()
        assert task is not None  # a tool call is a task of the SDK's
        running.add(task)
        try:
            return await _council(ctx, spec, settings)
        finally:
            running.discard(task)

    server = MCPServer(
        "council",
        title="council",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
    )
    asks_models = ToolAnnotations(readOnlyHint=True, openWorldHint=True, idempotentHint=False)
    reads_here = ToolAnnotations(readOnlyHint=True, openWorldHint=False, idempotentHint=True)

    @server.tool(name="ask", title="Ask a council", annotations=asks_models)
    async def ask(
        ctx: Context,
        question: Question,
        personas: Personas = None,
        preset: Preset = None,
        synthesize: Annotated[
            bool,
            Field(
                description="Have the arbiter weigh the answers into one, with its confidence "
                "and the dissent. False: the members' answers only."
            ),
        ] = True,
        vote: Vote = False,
        choices: Choices = None,
        escalate: Escalate = None,
    ) -> Annotated[CallToolResult, CouncilAnswer]:
        """Ask every member of a council the same question at once; the arbiter weighs their
        answers into one (with its confidence and what the members still disagree on).
        One round: about as long as the slowest member takes."""
        spec = CouncilSpec(
            question=question,
            personas=_names(personas),
            preset=preset,
            # One round judged by the arbiter: its verdict carries confidence and dissent.
            deliberation=synthesize and not vote,
            synthesize=synthesize,
            rounds=1,
            speculative=False,
            vote=vote,
            choices=_names(choices),
            escalate=escalate,
        )
        return await council(ctx, spec)

    @server.tool(name="deliberate", title="Deliberate with a council", annotations=asks_models)
    async def deliberate(
        ctx: Context,
        question: Question,
        personas: Personas = None,
        preset: Preset = None,
        rounds: Annotated[
            int | None,
            Field(
                description="Most rounds (1 to 20); it stops sooner when the members converge. "
                "Default: the preset's or the config's (3).",
                ge=1,
                le=20,
            ),
        ] = None,
        speculative: Annotated[
            bool | None,
            Field(
                description="Start each round while the arbiter judges the last: the same "
                "answer, sooner, for some wasted tokens. Default: the preset's."
            ),
        ] = None,
        vote: Vote = False,
        choices: Choices = None,
        escalate: Escalate = None,
    ) -> Annotated[CallToolResult, CouncilAnswer]:
        """A council that deliberates: every member answers, then reads the others' answers
        and revises, round after round, until the arbiter finds they converge. Takes
        minutes: the client's tool timeout may need raising."""
        spec = CouncilSpec(
            question=question,
            personas=_names(personas),
            preset=preset,
            deliberation=True,
            rounds=rounds,
            speculative=speculative,
            vote=vote,
            choices=_names(choices),
            escalate=escalate,
        )
        return await council(ctx, spec)

    @server.tool(name="presets", title="What can be asked", annotations=reads_here)
    async def presets() -> Annotated[CallToolResult, Presets]:
        """The presets (whole councils) and personas (members) that ask and deliberate take,
        and the council asked when none is named."""
        return await _reading(lambda: list_presets(settings))

    @server.tool(name="recent_runs", title="Recent council runs", annotations=reads_here)
    async def recent(
        limit: Annotated[int, Field(description="Most runs to list.", ge=1, le=100)] = 10,
    ) -> Annotated[CallToolResult, RecentRuns]:
        """The newest runs in council's history (from here and from the command line)."""
        return await _reading(lambda: recent_runs(limit))

    @server.tool(name="show_run", title="Show a past council run", annotations=reads_here)
    async def show(
        run_id: Annotated[str, Field(description="The run's id, or a unique start of it.")],
    ) -> Annotated[CallToolResult, RunRecord]:
        """A past run again, from the history, without asking any model: its answer, every
        member's answer, and what failed."""
        return await _reading(lambda: show_run(run_id))

    return server
