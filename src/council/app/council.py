"""The public Python API: a council a program holds, asks, and streams.

    from council import Council

    council = Council(personas=["judge", "critic"], base_url="http://localhost:8080/v1",
                      model="gpt-4o-mini")
    result = council.ask("Should we rewrite billing in Rust?")
    print(result.answer.text, [a.persona for a in result.answers], result.cost_usd)

A `Council` is resolved the way the CLI resolves its flags (arguments > preset > env >
project config > user config > default; `app/ask.py`'s resolver), once, when it is
made. Each question builds the plan `council oracle` or `council deliberate` would
build, and runs it on the caller's event loop: the same engine, events, `--json`
document and history as the CLI. Nothing is written to the terminal: what the CLI
would say on stderr is on the result (`notes`). Cancelling the task that runs a
question (or leaving `stream`) cancels every call of that run at once; what
finished is recorded, as after Ctrl-C. Signals are the CLI's business, not this one's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from council.app.ask import (
    ResolvedCouncil,
    plan_deliberation,
    plan_oracle,
    resolve_council,
    serving_council,
    serving_plan,
    with_system,
)
from council.app.conversation import with_conversation
from council.app.flags import AskFlags
from council.app.model_options import check_model_options
from council.errors import UsageError

if TYPE_CHECKING:
    from council.app.judge import JudgeOutcome
    from council.config.endpoint_settings import EndpointSettings
    from council.endpoint.pool import EndpointPool
    from council.engine.events import Event, EventBus
    from council.engine.model import CallOutcome
    from council.engine.plan import DeliberationPlan, OraclePlan
    from council.engine.results import DeliberationResult, OracleResult

__all__ = ["Council", "CouncilAnswer", "CouncilResult", "CouncilStream"]


@dataclass(frozen=True)
class CouncilAnswer:
    """The council's one answer: `text` (None: there is none, e.g. no synthesis was asked),
    who wrote it (`persona`), and the rest of the `--json` document's `answer` object
    (`answered`, `members`, `missing`; a deliberation's `round`, `converged`,
    `confidence`, `dissent`) in `details`."""

    text: str | None
    persona: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.text or ""


@dataclass
class CouncilResult:
    """What one question to the council produced.

    `engine_result` is the engine's `OracleResult` or `DeliberationResult` (every call's
    outcome, the rounds, the vote...); the rest answers the usual questions.
    """

    engine_result: OracleResult | DeliberationResult
    document: dict[str, Any]  # the `--json` document
    usage: dict[str, Any]  # calls, tokens_in, tokens_out, cost_usd: every call of the run
    run_id: str | None = None  # the history's run id; None when not recorded
    notes: list[str] = field(default_factory=list)  # what the CLI would say on stderr

    @property
    def answer(self) -> CouncilAnswer:
        answer = dict(self.document["answer"])
        text, persona = answer.pop("text"), answer.pop("persona")
        return CouncilAnswer(text=text, persona=persona, details=answer)

    @property
    def answers(self) -> list[CallOutcome]:
        """The members' answers (each with `.persona`, `.text`): an oracle's, or the last
        kept round's of a deliberation."""
        result = self.engine_result
        rounds = getattr(result, "rounds", None)
        if rounds is None:
            return list(result.answers)  # type: ignore[union-attr]
        return list(rounds[-1].answers) if rounds else []

    @property
    def cost_usd(self) -> float | None:
        """What every call of the run cost, as far as known (None: unknown)."""
        return self.usage["cost_usd"]

    @property
    def tokens_in(self) -> int | None:
        return self.usage["tokens_in"]

    @property
    def tokens_out(self) -> int | None:
        return self.usage["tokens_out"]

    @property
    def exit_code(self) -> int:
        """The exit code the CLI would end with: 0 ok, 3 partial, 1 failed, 130 interrupted."""
        return int(self.document["exit_code"])

    @property
    def status(self) -> str:
        return str(self.document["status"])

    @property
    def escalation(self) -> dict[str, Any] | None:
        """What `escalate=` did (`escalated`, `calls_saved`, `cost_saved_usd`, `basis`,
        the panel's `decision`, a shadow run's `changed`); None: no escalation."""
        return self.document.get("escalation")

    def to_dict(self) -> dict[str, Any]:
        """The `--json` document of the run, exactly as `council oracle --json` prints it."""
        return self.document


class CouncilStream:
    """A run's events as they happen (`async for event in stream`), then its `result`.

    Leaving the loop early (break, an exception, the task cancelled) cancels the run's
    calls at once; `async with council.stream(...) as events:` makes that immediate
    rather than when the iterator is collected.
    """

    def __init__(self, start: Callable[[EventBus], Awaitable[CouncilResult]]) -> None:
        self._start = start
        self._task: asyncio.Task[CouncilResult] | None = None
        self._result: CouncilResult | None = None

    @property
    def result(self) -> CouncilResult:
        """The run's result, once the events are all read."""
        if self._result is None:
            raise RuntimeError("the stream has not finished: read its events first")
        return self._result

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def __aenter__(self) -> CouncilStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel the run if it still goes, and wait until its calls are closed."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _events(self) -> AsyncIterator[Event]:
        from council.engine.events import EventBus

        if self._task is not None:
            raise RuntimeError("a council stream can be read once")
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        bus = EventBus()
        bus.subscribe(queue.put_nowait)
        task = asyncio.ensure_future(self._start(bus))
        self._task = task
        task.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (event := await queue.get()) is not None:
                yield event
            self._result = task.result()  # raises what the run raised
        finally:
            await self.aclose()


class Council:
    """A council of personas on an endpoint, resolved once; ask it as often as you like.

    Arguments not given come from the preset, the environment and the config files,
    as for the CLI (`Council()` is what `council oracle` would use). `api_key` is sent
    to the run's endpoint instead of the one `$OPENAI_API_KEY` (or `api_key_env`) holds;
    it is never shown or stored. `system` is appended to every persona's system prompt
    (`--system`), `options` go into every request body (`-o`: temperature, max_tokens,
    seed...). `history=False` records nothing; `command` is the command name the
    history records (`council history` shows it). `model_path` runs a .gguf file on the
    embedded server (`--model-path`); `with council:` keeps that server for every run.
    """

    def __init__(
        self,
        personas: Sequence[str] | str | None = None,
        *,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        endpoint: str | None = None,
        preset: str | None = None,
        arbiter: str | None = None,
        api_key_env: str | None = None,
        model_path: str | Path | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        max_concurrency: int | None = None,
        rounds: int | None = None,
        speculative: bool | None = None,
        threshold: float | None = None,
        system: str | None = None,
        options: Mapping[str, Any] | None = None,
        context: Sequence[str | Path] | None = None,
        budget_usd: float | None = None,
        max_tokens_total: int | None = None,
        history: bool = True,
        store_text: bool = True,
        command: str = "api",
    ) -> None:
        names = personas if isinstance(personas, str) or personas is None else ",".join(personas)
        self._flags = AskFlags(
            preset=preset,
            personas=names,
            arbiter=arbiter,
            context=[Path(c) for c in context] if context is not None else None,
            endpoint=endpoint,
            base_url=base_url,
            model=[model] if model is not None else None,
            api_key_env=api_key_env,
            model_path=Path(model_path) if model_path is not None else None,
            timeout=timeout,
            retries=retries,
            max_concurrency=max_concurrency,
            no_stdin=True,
            system=system,
            budget_usd=budget_usd,
            max_tokens_total=max_tokens_total,
            no_history=not history,
            no_store_text=not store_text,
        )
        self._api_key = api_key
        self._options = check_model_options(options or {})
        self._deliberation = {"rounds": rounds, "speculative": speculative, "threshold": threshold}
        self.command = command
        self._council = self._resolve()
        # One pool per event loop (a pool's limiters belong to the loop that used them): the
        # runs of a long-lived loop (a server's) share each endpoint's one limiter and what
        # it learned; each `ask()` runs a loop of its own, as a CLI command would.
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, EndpointPool] = (
            weakref.WeakKeyDictionary()
        )
        # open(): the embedded model's servers kept for every run, by model file.
        self._kept: dict[str, EndpointSettings] = {}
        self._keeping: contextlib.ExitStack | None = None

    def open(self) -> Council:
        """Start the embedded model's server now (where this council runs on `local` or a
        `--model-path`) and keep it for every run until `close()`; a no-op for others.

        Without it each run starts and stops its own (seconds each): a program or server
        that asks many times opens the council once, or uses `with council:`.
        """
        if self._keeping is None:
            stack = contextlib.ExitStack()
            served = stack.enter_context(serving_council(self._council))
            pairs = [(self._council.settings.endpoint, served.settings.endpoint)]
            pairs += [(e, served.endpoints[n]) for n, e in self._council.endpoints.items()]
            self._kept = {e.local_model_path: s for e, s in pairs if e.local_model_path}
            self._keeping = stack
        return self

    def close(self) -> None:
        """Stop what `open()` started (runs after it start their own again)."""
        keeping, self._keeping, self._kept = self._keeping, None, {}
        if keeping is not None:
            keeping.close()

    def __enter__(self) -> Council:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _served(self, plan: OraclePlan | DeliberationPlan) -> Iterator[Any]:
        """The plan on served endpoints: those `open()` keeps, else started for this run."""
        kept = self._kept

        def swap(endpoint: EndpointSettings) -> EndpointSettings:
            return kept.get(endpoint.local_model_path or "", endpoint)

        every = [plan.endpoint, *plan.endpoints.values()]
        if kept and all(e.local_model_path in kept for e in every if e.local_model_path):
            yield dataclasses.replace(
                plan,
                endpoint=swap(plan.endpoint),
                endpoints={name: swap(e) for name, e in plan.endpoints.items()},
            )
            return
        with serving_plan(plan) as served:
            yield served

    def _pool(self) -> EndpointPool:
        """This loop's pool of endpoint limiters, made on first use."""
        from council.endpoint.pool import EndpointPool

        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = self._pools[loop] = EndpointPool()
        return pool

    @classmethod
    def from_preset(cls, name: str, **arguments: Any) -> Council:
        """The council a preset describes (`--preset NAME`); arguments override it."""
        return cls(preset=name, **arguments)

    @property
    def personas(self) -> list[str]:
        """The members' names, in the order they are asked."""
        return [p.name for p in self._council.personas]

    @property
    def arbiter(self) -> str:
        return self._council.arbiter.name

    @property
    def model(self) -> str:
        return self._council.settings.endpoint.model

    @property
    def base_url(self) -> str:
        return self._council.settings.endpoint.base_url

    def _resolve(self, **deliberation: Any) -> ResolvedCouncil:
        settings = {**self._deliberation}
        settings.update({k: v for k, v in deliberation.items() if v is not None})
        values = self._flags.setting_values(**settings)
        council = resolve_council(self._flags, values, require_key=self._api_key is None)
        council = dataclasses.replace(council, options={**council.options, **self._options})
        if self._api_key is None:
            return council
        endpoint = dataclasses.replace(council.settings.endpoint, api_key=self._api_key)
        return dataclasses.replace(
            council, settings=dataclasses.replace(council.settings, endpoint=endpoint)
        )

    def _for_call(
        self,
        *,
        system: str | None,
        options: Mapping[str, Any] | None,
        **deliberation: Any,
    ) -> ResolvedCouncil:
        """The council for one question: re-resolved only for settings of its own."""
        given = any(v is not None for v in deliberation.values())
        council = self._resolve(**deliberation) if given else self._council
        if system is not None:
            if not system.strip():
                raise UsageError("system is empty", "give the instruction, or None")
            council = dataclasses.replace(
                council, personas=[with_system(p, system) for p in council.personas]
            )
        if options:
            council = dataclasses.replace(
                council, options={**council.options, **check_model_options(options)}
            )
        return council

    def _ask_flags(
        self, vote: bool, choices: Sequence[str] | str | None, rank: bool, **counting: Any
    ) -> AskFlags:
        """The flags of one question; `counting`: stop_rule, weighting."""
        if choices is not None and not isinstance(choices, str):
            choices = ",".join(choices)
        return dataclasses.replace(self._flags, vote=vote, choices=choices, rank=rank, **counting)

    def _oracle_plan(
        self,
        question: str,
        *,
        synthesize: bool | None,
        vote: bool,
        rank: bool,
        choices: Sequence[str] | str | None,
        conversation: Sequence[Mapping[str, Any]] | None,
        system: str | None,
        options: Mapping[str, Any] | None,
        position_checks: int | None = None,
        self_check_rate: float | None = None,
        escalate: bool | Mapping[str, Any] | None = None,
        stop_rule: str | None = None,
        stop_threshold: float | None = None,
        weighting: str | None = None,
    ) -> OraclePlan:
        council = self._for_call(system=system, options=options)
        if stop_threshold is not None:  # the CLI's --stop-rule NAME:THRESHOLD
            stop_rule = f"{stop_rule or ''}:{stop_threshold}"
        checks = {"position_checks": position_checks, "self_check_rate": self_check_rate}
        counting = {"stop_rule": stop_rule, "weighting": weighting}
        flags = self._ask_flags(vote, choices, rank, **checks, **counting)
        wanted = not vote if synthesize is None else synthesize
        query = with_conversation(question, conversation)
        chosen = _escalation(council, escalate)
        return plan_oracle(council, flags, query, synthesize=wanted, escalate=chosen)

    def _deliberation_plan(
        self,
        question: str,
        *,
        rounds: int | None,
        speculative: bool | None,
        threshold: float | None,
        max_wasted_tokens: int | None,
        vote: bool,
        choices: Sequence[str] | str | None,
        conversation: Sequence[Mapping[str, Any]] | None,
        system: str | None,
        options: Mapping[str, Any] | None,
        escalate: bool | Mapping[str, Any] | None = None,
    ) -> DeliberationPlan:
        council = self._for_call(
            system=system,
            options=options,
            rounds=rounds,
            speculative=speculative,
            threshold=threshold,
        )
        flags = self._ask_flags(vote, choices, False)
        query = with_conversation(question, conversation)
        chosen = _escalation(council, escalate)
        return plan_deliberation(
            council, flags, query, max_wasted_tokens=max_wasted_tokens, escalate=chosen
        )

    # -- asking ------------------------------------------------------------------------

    async def aask(
        self,
        question: str,
        *,
        synthesize: bool | None = None,
        vote: bool = False,
        rank: bool = False,
        choices: Sequence[str] | str | None = None,
        conversation: Sequence[Mapping[str, Any]] | None = None,
        system: str | None = None,
        options: Mapping[str, Any] | None = None,
        position_checks: int | None = None,
        self_check_rate: float | None = None,
        escalate: bool | Mapping[str, Any] | None = None,
        stop_rule: str | None = None,
        stop_threshold: float | None = None,
        weighting: str | None = None,
    ) -> CouncilResult:
        """Every persona at once (`council oracle`); by default the arbiter then writes
        the council's answer (`synthesize=False`: none). `vote=True`: each gives a
        ballot (`choices`), the majority is the answer; `rank=True`: each ranks the
        others' answers anonymously, and `to_dict()["bias"]` measures the reviewers
        (`position_checks`: how many are asked again in the reverse order, default 1;
        `self_check_rate`: the share shown their own answer too, default 0).
        `conversation`: earlier turns (`[{"role": "user"|"assistant", "content": ...}]`),
        given to every member as the conversation so far. `escalate=True` (or
        `{"panel": 2, "threshold": 0.8, "shadow_rate": 0.1}`): a first panel is asked
        first, the rest only if it is in doubt (`result.escalation` says what it
        saved); None: as the preset says. A vote stops the ballots still out on
        `stop_rule` ("posterior" by default, "overtake", "window", "none"; `stop_threshold` its
        threshold), and counts each ballot as 1 or, `weighting="confidence"`, as its
        stated confidence."""
        plan = self._oracle_plan(
            question,
            synthesize=synthesize,
            vote=vote,
            rank=rank,
            choices=choices,
            conversation=conversation,
            system=system,
            options=options,
            position_checks=position_checks,
            self_check_rate=self_check_rate,
            escalate=escalate,
            stop_rule=stop_rule,
            stop_threshold=stop_threshold,
            weighting=weighting,
        )
        return await self._run(plan, None)

    async def adeliberate(
        self,
        question: str,
        *,
        rounds: int | None = None,
        speculative: bool | None = None,
        threshold: float | None = None,
        max_wasted_tokens: int | None = None,
        vote: bool = False,
        choices: Sequence[str] | str | None = None,
        conversation: Sequence[Mapping[str, Any]] | None = None,
        system: str | None = None,
        options: Mapping[str, Any] | None = None,
        escalate: bool | Mapping[str, Any] | None = None,
    ) -> CouncilResult:
        """Rounds of revision judged by the arbiter (`council deliberate`); with
        `speculative=True` the next round starts while the arbiter judges. `escalate`:
        round 1's first panel is asked first, as for `aask`."""
        plan = self._deliberation_plan(
            question,
            rounds=rounds,
            speculative=speculative,
            threshold=threshold,
            max_wasted_tokens=max_wasted_tokens,
            vote=vote,
            choices=choices,
            conversation=conversation,
            system=system,
            options=options,
            escalate=escalate,
        )
        return await self._run(plan, None)

    def ask(self, question: str, **arguments: Any) -> CouncilResult:
        """`aask` on an event loop of its own (not from inside a running loop: use `aask`)."""
        _no_running_loop("ask", "aask")
        return asyncio.run(self.aask(question, **arguments))

    def deliberate(self, question: str, **arguments: Any) -> CouncilResult:
        """`adeliberate` on an event loop of its own."""
        _no_running_loop("deliberate", "adeliberate")
        return asyncio.run(self.adeliberate(question, **arguments))

    def judge(
        self,
        question: str = "",
        *,
        answer: str | None = None,
        rubric: str | Sequence[str] | None = None,
        pair: tuple[str, str] | None = None,
        pool: str = "majority",
        pass_score: float = 3.5,
        gate: bool = False,
    ) -> JudgeOutcome:
        """A jury grades `answer` against `rubric` (criteria: a list, or text one a line or
        comma-separated), or compares `pair` (each juror judges both orders), as `council
        judge` does: `outcome.verdict` (pooled, each juror's, the agreement, a pair's
        flip rate), `outcome.exit_code` (`gate`: 0 approve, 4 reject, 3 undecided).

        The jurors are this council's personas, or its preset's `jury:`. Recorded in the
        history as `judge` (unless `history=False`). Runs an event loop of its own.
        """
        from council.app.judge import judge_case
        from council.app.jury_cases import JuryCase, jury_of
        from council.engine.jury import criteria_of

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise UsageError(
                "Council.judge() runs an event loop of its own, and one is running here",
                "call it on a thread: await asyncio.to_thread(council.judge, ...)",
            )
        if (answer is None) == (pair is None):
            raise UsageError("judge() grades one answer or a pair", "give answer= or pair=")
        if pair is not None:
            case = JuryCase(question, pair=(pair[0], pair[1]))
        else:
            criteria = criteria_of(rubric) if isinstance(rubric, str) else list(rubric or [])
            if not criteria:
                raise UsageError("answer= needs a rubric", 'give rubric=["correct", "clear"]')
            case = JuryCase(question, answer=answer, criteria=tuple(criteria))
        council = self._council
        record = council.record_options(
            no_history=self._flags.no_history, no_store_text=self._flags.no_store_text
        )
        return judge_case(
            jury_of(council), case, pool=pool, pass_score=pass_score, gate=gate, record=record
        )

    def stream(self, question: str, *, deliberate: bool = False, **arguments: Any) -> CouncilStream:
        """The run's events as they happen (what the live view sees: calls starting,
        every text delta of every member and of the arbiter, verdicts, the end), then
        `stream.result`. `deliberate=True` streams a deliberation; the other arguments
        are `aask`'s or `adeliberate`'s. The plan is built (and checked) now."""
        if deliberate:
            plan: OraclePlan | DeliberationPlan = self._deliberation_plan(
                question, **_deliberation_arguments(arguments)
            )
        else:
            plan = self._oracle_plan(question, **_oracle_arguments(arguments))
        return CouncilStream(lambda bus: self._run(plan, bus))

    async def _run(
        self, plan: OraclePlan | DeliberationPlan, bus: EventBus | None
    ) -> CouncilResult:
        from council.app.run_context import run_plan

        council = self._council
        record = council.record_options(
            no_history=self._flags.no_history, no_store_text=self._flags.no_store_text
        )
        with self._served(plan) as served:
            ran = await run_plan(
                served, bus=bus, record=record, command=self.command, pool=self._pool()
            )
        if ran.error is not None:
            raise ran.error
        return CouncilResult(
            engine_result=ran.result,
            document=ran.document,
            usage=ran.usage.to_dict(),
            run_id=ran.run_id,
            notes=[*council.notes, *ran.notes],
        )


def _escalation(council: ResolvedCouncil, escalate: Any) -> Any:
    """`escalate=` as options (None: as the preset says; False: none whatever it says);
    nothing of escalation is loaded when neither asks for it."""
    value = council.escalate if escalate is None else escalate
    if value is None or value is False:
        return None
    from council.app.escalate import escalate_options

    return escalate_options(value)


def _no_running_loop(method: str, twin: str) -> None:
    """The blocking methods run a loop of their own, which cannot be inside another."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise UsageError(
        f"Council.{method}() runs an event loop of its own, and one is running here",
        f"await council.{twin}(...) instead",
    )


_ORACLE = ("synthesize", "vote", "rank", "choices", "conversation", "system", "options")
_ORACLE += ("position_checks", "self_check_rate", "escalate")
_ORACLE += ("stop_rule", "stop_threshold", "weighting")
_DELIBERATION = ("rounds", "speculative", "threshold", "max_wasted_tokens", "vote", "choices")
_DELIBERATION += ("conversation", "system", "options", "escalate")


def _arguments(arguments: dict[str, Any], names: tuple[str, ...], what: str) -> dict[str, Any]:
    unknown = sorted(set(arguments) - set(names))
    if unknown:
        raise TypeError(f"{what} takes no {', '.join(unknown)}")
    defaults: dict[str, Any] = {"vote": False, "rank": False}
    return {name: arguments.get(name, defaults.get(name)) for name in names}


def _oracle_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    return _arguments(arguments, _ORACLE, "stream()")


def _deliberation_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    return _arguments(arguments, _DELIBERATION, "stream(deliberate=True)")
