"""One model call as an engine sees it: run it, turn its progress into events, keep its outcome.

Shared by the oracle and the deliberation engines. A `CallReporter` is the
endpoint's CallObserver for one call; `run_call` runs the call and always ends
with exactly one outcome on the reporter (answer, failure, or cancellation),
whatever happened inside it, a bug included, so one call can never cost the
others theirs, and an engine that is cancelled half-way still knows what every
call did and what it cost. The reporter is the one place where what the
endpoint returned (a StreamResult or a CallError) becomes a CallOutcome, and it
measures the call's latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from collections.abc import Iterable, Iterator
from typing import Any

from council.config.prices import Price
from council.endpoint.client import CallError, EndpointClient, StreamResult
from council.endpoint.errors import internal_error
from council.endpoint.learned import learned_for
from council.endpoint.limiter import LimitChange
from council.engine.budget import UNCOUNTED_MARGIN, Ask, Budget, Reservation, current_budget
from council.engine.cost import Spent, output_tokens_of, price_of
from council.engine.events import (
    CallCancelled,
    CallEnded,
    CallFailed,
    CallFinished,
    CallRetrying,
    CallStarted,
    EventBus,
    FirstToken,
    LimitChanged,
    ReasoningDelta,
    RunFinished,
    RunStarted,
    TextDelta,
)
from council.engine.fit import (
    DoesNotFit,
    correct,
    counted,
    cut_by_server,
    estimate,
    fit,
    too_long_error,
)
from council.engine.model import (
    CANCELLED,
    NOT_AFFORDABLE,
    VOTE_DECIDED,
    CallOutcome,
    CallSpec,
    Fitted,
)
from council.engine.plan import DeliberationPlan, OraclePlan
from council.engine.results import DeliberationResult, OracleResult

__all__ = [
    "CallReporter",
    "check_fits",
    "known_window",
    "limit_changes_reported",
    "release_unsettled",
    "reserve_together",
    "run_call",
    "run_finished",
    "run_started",
]

# Where a window came from when a server's count showed that it cut a prompt: trusted
# like a context error's numbers (a server's own description, say Ollama's trained
# context, is what it does not keep to).
WINDOW_FROM_CUT = "cut prompt"
# A question this large (in estimated tokens) is worth asking the server its window
# before any call, so that one too long for it fails at once (exit 2).
PROBE_BEFORE_ASKING = 1024


class CallReporter:
    """Turns one call's progress into events and remembers when it ran and what it produced.

    `cancel_reason` is what a CallCancelled will say if the call is cancelled:
    an engine that cancels on purpose sets it first ("superseded"). `priority` is
    its place in the endpoint's queue: calls on the critical path (0) take a free
    slot before speculative ones (1).
    """

    def __init__(
        self, run_id: str, bus: EventBus, call: CallSpec, *, speculative: bool = False
    ) -> None:
        self.run_id = run_id
        self.bus = bus
        self.call = call
        self.speculative = speculative
        self.priority = 1 if speculative else 0
        self.asked_at = time.monotonic()  # when it first asked for a slot
        self.endpoint_host: str | None = None  # set when it is sent (None: reused, not sent)
        self.started_at: float | None = None  # time.monotonic(), when the call got a slot
        self.ended_at: float | None = None
        # Chunks of the current attempt, answer and reasoning (about a token each).
        self.tokens_streamed = 0
        # The current attempt's answer so far: an interrupted call keeps what streamed.
        self.pieces: list[str] = []
        self.outcome: CallOutcome | None = None
        self.cancel_reason = "interrupted"
        self.fitted: Fitted | None = None  # how the call was cut to fit its window
        # What it costs (engine/cost.py): its price, its prompt as estimated, the text
        # chars of the current attempt, and the tokens of failed attempts that streamed.
        self.price: Price | None = None
        self.base_url = ""
        self.prompt_estimate = 0
        self.chars_streamed = 0
        self.lost_in = 0
        self.lost_out = 0
        # The run's budget and what it set aside for this call (None: no budget).
        self.budget: Budget | None = None
        self.reservation: Reservation | None = None
        self.refused = False  # the budget did not let it start

    def _ids(self) -> dict[str, Any]:
        c = self.call
        return {
            "run_id": self.run_id,
            "call_id": c.call_id,
            "persona": c.persona,
            "round": c.round,
            "role": c.role,
        }

    # -- the endpoint's CallObserver -----------------------------------------------------

    def on_start(self) -> None:
        if self.started_at is not None:
            return  # sent again once fitted to the window: the same call
        self.started_at = time.monotonic()
        self.bus.emit(
            CallStarted(
                **self._ids(),
                model=self.call.model,
                speculative=self.speculative,
                endpoint_host=self.endpoint_host,
            )
        )

    def on_first_token(self, ttft: float) -> None:
        self.bus.emit(FirstToken(**self._ids(), ttft=ttft))

    def on_reasoning(self, text: str) -> None:
        self.tokens_streamed += 1
        self.chars_streamed += len(text)
        if self.bus.listening:
            self.bus.emit(ReasoningDelta(**self._ids(), text=text))

    def on_delta(self, text: str) -> None:
        self.tokens_streamed += 1
        self.chars_streamed += len(text)
        self.pieces.append(text)
        if self.bus.listening:  # a delta per token: skip building events nobody reads
            self.bus.emit(TextDelta(**self._ids(), text=text))

    def on_retry(self, attempt: int, error: CallError, wait: float) -> None:
        self._lose_attempt()
        self.bus.emit(
            CallRetrying(
                **self._ids(),
                attempt=attempt,
                error_kind=error.kind,
                message=error.message,
                wait=wait,
            )
        )

    # -- outcomes --------------------------------------------------------------------------

    def elapsed(self) -> float:
        return 0.0 if self.started_at is None else time.monotonic() - self.started_at

    @property
    def tokens_spent(self) -> int:
        """Output tokens this call cost: the endpoint's count when known, else chunks streamed."""
        if self.outcome is not None and self.outcome.tokens_out is not None:
            return self.outcome.tokens_out
        return self.tokens_streamed

    def _lose_attempt(self) -> None:
        """An attempt ended without the answer: what it streamed was still spent."""
        if self.tokens_streamed:
            self.lost_in += self.prompt_estimate
            self.lost_out += output_tokens_of(self.chars_streamed, self.tokens_streamed)
        self.tokens_streamed = self.chars_streamed = 0
        self.pieces = []

    def _cost(self, spent: Spent, reported: float | None = None) -> dict[str, Any]:
        """cost_usd and cost_estimated of an outcome: its last attempt's, and the lost ones'."""
        cost, estimated = spent.cost(self.price, reported)
        if (self.lost_in or self.lost_out) and self.price is not None and cost is not None:
            cost += self.price.cost(self.lost_in, self.lost_out)
            estimated = True
        tokens_in, tokens_out, _ = spent.tokens()
        self._settle(cost, tokens_in + tokens_out + self.lost_in + self.lost_out)
        return {"cost_usd": cost, "cost_estimated": estimated}

    def _settle(self, cost: float | None, tokens: int) -> None:
        if self.budget is not None and self.reservation is not None:
            self.budget.settle(self.reservation, cost_usd=cost, tokens=tokens)
            self.reservation = None

    def ask(self) -> Ask:
        """What the call asks of a budget: its prompt, its answer room, its price.

        Until the endpoint has counted a prompt of the model's, its tokenizer is unknown:
        the prompt is reserved with a margin (UNCOUNTED_MARGIN), so that calls sent at
        once do not all overshoot together.
        """
        prompt = self.prompt_estimate
        if not counted(self.base_url, self.call.model):
            prompt = math.ceil(prompt * UNCOUNTED_MARGIN)
        return Ask(prompt=prompt, room=self.call.max_tokens, price=self.price)

    def priced(self, client: EndpointClient) -> None:
        """Learn the call's price and prompt size on the client's endpoint (before a budget)."""
        if self.price is None:
            self.price = price_of(client.settings, self.call.model)
        self.base_url = client.settings.base_url
        self.prompt_estimate = estimate(
            self.call.messages, client.settings.base_url, self.call.model
        )

    def granted(self, budget: Budget, reservation: Reservation | None) -> None:
        """The budget's answer: the call goes with the room it was given, or not at all."""
        self.budget = budget
        self.reservation = reservation
        self.refused = reservation is None
        if reservation is not None and reservation.max_tokens != self.call.max_tokens:
            self.call = dataclasses.replace(self.call, max_tokens=reservation.max_tokens)

    def _outcome(self, **fields: Any) -> CallOutcome:
        return CallOutcome(persona=self.call.persona, role=self.call.role, **fields)

    def _end(self, event: type[CallEnded], outcome: CallOutcome, **extra: Any) -> CallOutcome:
        """Keep the call's outcome and report it on the bus.

        A call cancelled while still queued never started: it gets an outcome but no event.
        """
        self.ended_at = time.monotonic()
        self.outcome = outcome
        if self.started_at is not None:
            self.bus.emit(event(**self._ids(), outcome=outcome, **extra))
        return outcome

    def finished(self, stream: StreamResult) -> CallOutcome:
        cut = self._cut_by_server(stream)
        if stream.tokens_in is not None and self.base_url:
            # The server's count of this prompt: later estimates (budgets, fitting) learn it.
            correct(self.base_url, self.call.model, self.call.messages, stream.tokens_in)
        answer = self._outcome(
            prompt_cut_by_server=cut is not None,
            prompt_estimate=cut,
            text=stream.text,
            # From on_start (when the call got a slot), retries included, without
            # the time a re-sent call waited for a slot again (that is `queued`).
            latency=max(0.0, self.elapsed() - max(0.0, stream.queued - self._queued_so_far())),
            ttft=stream.ttft,
            tokens_in=stream.tokens_in,
            tokens_out=stream.tokens_out,
            retries=stream.retries,
            finish_reason=stream.finish_reason,
            reasoning=stream.reasoning,
            fitted=self.fitted,
            queued=stream.queued,
            resends=stream.resends,
            **self._cost(
                Spent(
                    stream.tokens_in,
                    stream.tokens_out,
                    self.prompt_estimate,
                    output_tokens_of(
                        len(stream.text) + len(stream.reasoning or ""), self.tokens_streamed
                    ),
                ),
                stream.cost_usd,
            ),
        )
        return self._end(CallFinished, answer)

    def _cut_by_server(self, stream: StreamResult) -> int | None:
        """The prompt's estimate when the server cut the prompt (see fit.cut_by_server);
        its count is then learned as the window, so later calls are fitted by council."""
        counted, call = stream.tokens_in, self.call
        if counted is None or not self.base_url or stream.tokens_cached:
            return None  # a prompt cache says its own count: not a cut
        if not cut_by_server(call.messages, self.base_url, call.model, counted):
            return None
        learned = learned_for(self.base_url, call.model)
        if learned.context_window is None or counted < learned.context_window:
            learned.context_window, learned.window_source = counted, WINDOW_FROM_CUT
            learned.touch()
        return estimate(call.messages, self.base_url, call.model)

    def reuse(self, answer: CallOutcome, from_run: str) -> CallOutcome:
        """Take an answer an earlier run of the same council already had, without a call."""
        self.started_at = time.monotonic()
        self.bus.emit(CallStarted(**self._ids(), model=self.call.model))
        # Paid for by the run that made it: this run spent nothing on it.
        reused = dataclasses.replace(
            answer, reused_from=from_run, cost_usd=0.0, cost_estimated=False
        )
        return self._end(CallFinished, reused)

    def failed(self, error: CallError) -> CallOutcome:
        sent = self.started_at is not None
        if self.started_at is None:  # it failed before it got a slot: still an event
            self.on_start()
        self._lose_attempt()
        cost = self._cost(Spent(0, 0))
        if not sent and not (self.lost_in or self.lost_out):
            cost["cost_usd"] = 0.0  # never sent: it cost nothing, price or not
        failure = self._outcome(
            error_kind=error.kind,
            message=error.message,
            retries=error.retries,
            latency=self.elapsed(),
            fitted=self.fitted,
            queued=error.queued or self._queued_so_far(),
            **cost,
        )
        return self._end(CallFailed, failure)

    def not_affordable(self) -> CallOutcome:
        """The budget did not let the call start: a failure of kind NOT_AFFORDABLE, free."""
        return self.failed(
            CallError(NOT_AFFORDABLE, "not started: the run's budget would have been exceeded")
        )

    def _queued_so_far(self) -> float:
        """Seconds waited for the first slot (all of it, when the call never got one)."""
        end = self.started_at if self.started_at is not None else time.monotonic()
        return max(0.0, end - self.asked_at)

    def cancelled(self) -> CallOutcome:
        message = {
            "superseded": "cancelled: the council ended before it was needed",
            VOTE_DECIDED: "stopped: the vote was decided without this ballot",
        }.get(self.cancel_reason, "interrupted before it finished")
        sent = self.started_at is not None
        streamed = output_tokens_of(self.chars_streamed, self.tokens_streamed)
        # The server never reports what a closed stream cost: its prompt and what it
        # streamed, estimated; nothing for a call that was never sent.
        spent = Spent(None, None, self.prompt_estimate if sent else 0, streamed)
        cost = self._cost(spent)
        if not sent:
            cost = {"cost_usd": 0.0, "cost_estimated": False}
        # Interrupted (Ctrl-C, SIGTERM): what it had streamed is the person's, shown and
        # kept as such; a call cancelled on purpose (superseded, vote decided) keeps none.
        partial = "".join(self.pieces) if self.cancel_reason == "interrupted" else ""
        stopped = self._outcome(
            error_kind=CANCELLED,
            message=message,
            text=partial,
            latency=self.elapsed(),
            tokens_out=self.tokens_streamed,
            queued=self._queued_so_far(),
            **cost,
        )
        return self._end(CallCancelled, stopped, reason=self.cancel_reason)


async def known_window(client: EndpointClient, model: str, *, ask: bool) -> int | None:
    """The context window of `model` on the client's endpoint, as far as it is known.

    In order: the profile's `context_window:`, what the server states (asked once per
    run, and only when `ask`), what an earlier run learned. A server's context error,
    or a prompt it cut (its count, WINDOW_FROM_CUT), beats them all but the profile,
    and that only when it is larger.
    """
    settings = client.settings
    configured = settings.window_for(model)
    learned = learned_for(settings.base_url, model)
    if learned.window_source in ("error", WINDOW_FROM_CUT) and learned.context_window is not None:
        return min(configured or learned.context_window, learned.context_window)
    if configured is not None:
        return configured
    if ask and learned.window_source != "server":
        stated = await client.stated_window(model)
        if stated is not None:
            learned.context_window, learned.window_source = stated, "server"
            learned.touch()
    return learned.context_window


def _learn_from(client: EndpointClient, call: CallSpec, error: CallError) -> None:
    """What a context error says: the window (kept), and how the estimate undercounted."""
    learned = learned_for(client.settings.base_url, call.model)
    if error.window is not None:
        learned.context_window, learned.window_source = error.window, "error"
        learned.touch()
    if error.prompt_tokens is not None:
        correct(client.settings.base_url, call.model, call.messages, error.prompt_tokens)


def _fit(client: EndpointClient, reporter: CallReporter, window: int | None) -> None:
    """Shorten the reporter's call to `window` if it must; CallError when it cannot fit."""
    if window is None:
        return
    call = reporter.call
    try:
        fitted_call, fitted = fit(call, window, client.settings.base_url)
    except DoesNotFit as exc:
        raise CallError(
            "context_length",
            f"the question and system prompt alone need about {exc.needed:,} tokens "
            f"with room for the answer; the context window is {exc.window:,}",
        ) from None
    if fitted is not None:
        reporter.call, reporter.fitted = fitted_call, fitted


async def _send(client: EndpointClient, reporter: CallReporter) -> StreamResult:
    """Fit the call to what is known of the window, send it; on a context error, once more."""
    call = reporter.call
    # Only a call that quotes something can be cut: it waits for the server's word.
    _fit(client, reporter, await known_window(client, call.model, ask=bool(call.parts)))
    try:
        return await client.complete(reporter.call, reporter, reporter.priority)
    except CallError as error:
        if error.kind != "context_length":
            raise
        _learn_from(client, reporter.call, error)
        window = await known_window(client, call.model, ask=False)
        if window is None:
            window = _window_from_prompt(client, reporter.call)
        if window is None:
            raise
        try:
            _fit(client, reporter, window)
        except CallError:
            raise error from None  # the server's own words say it best
        if reporter.fitted is None:
            raise  # nothing could be cut: sending it again would fail again
        return await client.complete(reporter.call, reporter, reporter.priority)


def _window_from_prompt(client: EndpointClient, call: CallSpec) -> int | None:
    """A window when the error named none: somewhat less than the prompt it refused."""
    estimated = estimate(call.messages, client.settings.base_url, call.model)
    return max(256, (estimated * 3) // 4) if call.parts else None


async def check_fits(client: EndpointClient, calls: list[CallSpec]) -> None:
    """Before anything is sent: UsageError (exit 2) when a question cannot fit the window."""
    for call in calls:
        size = estimate(call.messages, client.settings.base_url, call.model)
        window = await known_window(client, call.model, ask=size > PROBE_BEFORE_ASKING)
        if window is None:
            continue
        try:
            fit(call, window, client.settings.base_url)
        except DoesNotFit as exc:
            raise too_long_error(exc) from None


async def run_call(client: EndpointClient, reporter: CallReporter) -> CallOutcome:
    """Run one call to its one outcome; on cancellation, record it as cancelled and re-raise.

    Nothing but cancellation leaves: a failure of any kind, a bug included (kind
    `internal`, its exception type in the message), is the call's outcome. A call
    is fitted to its context window before it goes (engine/fit.py), and a server's
    context error teaches the window: the call is fitted and sent once more.
    """
    budget = current_budget()
    if budget is not None and budget.limited and reporter.budget is None:
        reporter.priced(client)
        reporter.granted(budget, budget.reserve(reporter.ask(), reporter.call.call_id))
    if reporter.refused:
        reporter.endpoint_host = client.settings.host
        return reporter.not_affordable()
    try:
        reporter.asked_at = time.monotonic()
        reporter.endpoint_host = client.settings.host  # a council may call several
        reporter.priced(client)
        stream = await _send(client, reporter)
    except CallError as error:
        return reporter.failed(error)
    except asyncio.CancelledError:
        reporter.cancelled()
        raise
    except Exception as exc:  # the endpoint should have classified it: a bug
        return reporter.failed(internal_error(exc))
    try:
        return reporter.finished(stream)
    except Exception as exc:
        return reporter.failed(internal_error(exc))


def reserve_together(
    pairs: list[tuple[EndpointClient, CallReporter]], *, all_or_none: bool, tentative: bool = False
) -> bool:
    """Reserve calls that start together from the current budget, their rooms lowered alike.

    Those refused do not start (`run_call` ends them as NOT_AFFORDABLE). With
    `all_or_none`, nothing is reserved unless everything fits. True when every call
    got its reservation (or there is no budget).
    """
    budget = current_budget()
    if budget is None or not budget.limited or not pairs:
        return True
    for client, reporter in pairs:
        reporter.priced(client)
    reporters = [reporter for _, reporter in pairs]
    granted = budget.reserve_all(
        [r.ask() for r in reporters],
        [r.call.call_id for r in reporters],
        all_or_none=all_or_none,
        tentative=tentative,
    )
    for reporter, reservation in zip(reporters, granted, strict=True):
        reporter.granted(budget, reservation)
    return all(g is not None for g in granted)


def release_unsettled(reporters: Iterable[CallReporter]) -> None:
    """Give back what was reserved for calls that never ran (cancelled before they started),
    so that a budget shared with other runs does not lose it."""
    for reporter in reporters:
        if reporter.budget is not None and reporter.reservation is not None:
            reporter.budget.release(reporter.reservation)
            reporter.reservation = None


@contextlib.contextmanager
def limit_changes_reported(
    clients: Iterable[EndpointClient], bus: EventBus, run_id: str, kept: list[dict[str, Any]]
) -> Iterator[None]:
    """While a run goes, each change of its endpoints' limits is an event and kept in `kept`.

    Clients of one endpoint share its limiter, which is listened to once.
    """

    def report(change: LimitChange) -> None:
        kept.append(dataclasses.asdict(change))
        bus.emit(LimitChanged(run_id=run_id, **dataclasses.asdict(change)))

    limiters = list({id(c.limiter): c.limiter for c in clients}.values())
    for limiter in limiters:
        limiter.listeners.append(report)
    try:
        yield
    finally:
        for limiter in limiters:
            limiter.listeners.remove(report)


def run_started(run_id: str, command: str, plan: OraclePlan | DeliberationPlan) -> RunStarted:
    return RunStarted(
        run_id=run_id,
        command=command,
        query=plan.query,
        personas=tuple(p.name for p in plan.personas),
        model=plan.endpoint.model,
        endpoint_host=plan.endpoint.host,
    )


def run_finished(run_id: str, result: OracleResult | DeliberationResult) -> RunFinished:
    return RunFinished(
        run_id=run_id, status=result.status, exit_code=result.exit_code, wall=result.wall
    )
