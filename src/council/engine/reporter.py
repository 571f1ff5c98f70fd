"""One model call as an engine sees it: its progress turned into events, its one outcome.

A `CallReporter` is the endpoint's CallObserver for one call. It is the one place
where what the endpoint returned (a StreamResult or a CallError) becomes a
CallOutcome: it measures the call's latency, counts what the call cost (failed
attempts that streamed included) and settles the call's reservation with the
run's budget, and it learns from the server's count of the prompt (its tokenizer,
or a prompt the server cut to its window).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

from council.config.prices import Price
from council.endpoint.client import CallError, EndpointClient, StreamResult
from council.endpoint.learned import Learned
from council.engine.budget import UNCOUNTED_MARGIN, Ask, Budget, Reservation
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
    ReasoningDelta,
    TextDelta,
)
from council.engine.fit import WINDOW_FROM_CUT, correct, cut_by_server, estimate
from council.engine.model import (
    VOTE_DECIDED,
    CallOutcome,
    CallSpec,
    Fitted,
)
from council.errors import ErrorKind

__all__ = ["CallReporter"]


class CallReporter:
    """Turns one call's progress into events and remembers when it ran and what it produced.

    `cancel_reason` is what a CallCancelled will say if the call is cancelled:
    an engine that cancels on purpose sets it first ("superseded"). `priority` is
    its place in the endpoint's queue: calls on the critical path (0) take a free
    slot before speculative ones (1).
    """

    def __init__(
        self,
        run_id: str,
        bus: EventBus,
        call: CallSpec,
        *,
        speculative: bool = False,
        budget: Budget | None = None,
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
        self.learned: Learned | None = None  # about its endpoint and model, once priced
        self.prompt_estimate = 0
        self.chars_streamed = 0
        self.lost_in = 0
        self.lost_out = 0
        # The run's budget (None: no limit), and what it set aside for this call.
        self.budget = budget
        self.asked_budget = False  # reserved, or refused: the budget was asked once
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
        if self.learned is None or not self.learned.counted:
            prompt = math.ceil(prompt * UNCOUNTED_MARGIN)
        return Ask(prompt=prompt, room=self.call.max_tokens, price=self.price)

    def priced(self, client: EndpointClient) -> None:
        """Learn the call's price and prompt size on the client's endpoint (before a budget)."""
        if self.price is None:
            self.price = price_of(client.settings, self.call.model)
        self.learned = client.limiter.learned_for(self.call.model)
        self.prompt_estimate = estimate(self.call.messages, self.learned)

    def granted(self, reservation: Reservation | None) -> None:
        """The budget's answer: the call goes with the room it was given, or not at all."""
        self.asked_budget = True
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
        if stream.tokens_in is not None and self.learned is not None:
            # The server's count of this prompt: later estimates (budgets, fitting) learn it.
            correct(self.learned, self.call.messages, stream.tokens_in)
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
        counted, call, learned = stream.tokens_in, self.call, self.learned
        if counted is None or learned is None or stream.tokens_cached:
            return None  # a prompt cache says its own count: not a cut
        if not cut_by_server(call.messages, learned, counted):
            return None
        if learned.context_window is None or counted < learned.context_window:
            learned.context_window, learned.window_source = counted, WINDOW_FROM_CUT
            learned.touch()
        return estimate(call.messages, learned)

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
            CallError(
                ErrorKind.NOT_AFFORDABLE, "not started: the run's budget would have been exceeded"
            )
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
            error_kind=ErrorKind.CANCELLED,
            message=message,
            text=partial,
            latency=self.elapsed(),
            tokens_out=self.tokens_streamed,
            queued=self._queued_so_far(),
            **cost,
        )
        return self._end(CallCancelled, stopped, reason=self.cancel_reason)
