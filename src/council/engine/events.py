"""The events every engine emits and every renderer and recorder reads.

Events are frozen dataclasses stamped with the run id and a monotonic time, so a
renderer can rebuild everything it shows from the stream alone, and `--jsonl`
is just this stream written out.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from council.engine.model import CallOutcome

__all__ = [
    "ArbiterVerdict",
    "CallCancelled",
    "CallEnded",
    "CallEvent",
    "CallFailed",
    "CallFinished",
    "CallRetrying",
    "CallStarted",
    "Event",
    "EventBus",
    "FirstToken",
    "LimitChanged",
    "ReasoningDelta",
    "RoundDiscarded",
    "RoundFinished",
    "RunFinished",
    "RunStarted",
    "TextDelta",
    "event_to_dict",
]


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of all events: which run, and when (time.monotonic())."""

    kind: ClassVar[str] = "event"
    run_id: str
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, kw_only=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    command: str
    query: str
    personas: tuple[str, ...]
    model: str
    endpoint_host: str


@dataclass(frozen=True, kw_only=True)
class CallEvent(Event):
    """An event about one model call; `role` is "persona" or "arbiter"."""

    call_id: str
    persona: str
    round: int = 1
    role: str = "persona"


@dataclass(frozen=True, kw_only=True)
class CallStarted(CallEvent):
    """A call got a slot and is being sent; `endpoint_host` is where it goes (None: not sent,
    e.g. an answer a resumed run reuses)."""

    kind: ClassVar[str] = "call_started"
    model: str
    speculative: bool = False
    endpoint_host: str | None = None


@dataclass(frozen=True, kw_only=True)
class FirstToken(CallEvent):
    """The attempt's first token, of reasoning or of the answer (`ttft` from sending it)."""

    kind: ClassVar[str] = "first_token"
    ttft: float


@dataclass(frozen=True, kw_only=True)
class ReasoningDelta(CallEvent):
    """Reasoning a model streamed before (or beside) its answer; never part of the answer.

    While a call has sent only these, a view can show it as thinking.
    """

    kind: ClassVar[str] = "reasoning_delta"
    text: str


@dataclass(frozen=True, kw_only=True)
class TextDelta(CallEvent):
    kind: ClassVar[str] = "text_delta"
    text: str


@dataclass(frozen=True, kw_only=True)
class CallRetrying(CallEvent):
    """An attempt failed with a retryable error; the next starts after `wait` seconds.

    Text streamed by the failed attempt is void: a view should clear it.
    """

    kind: ClassVar[str] = "call_retrying"
    attempt: int
    error_kind: str
    message: str
    wait: float


@dataclass(frozen=True, kw_only=True)
class CallEnded(CallEvent):
    """A call's end, carrying its outcome (the same object the run's result keeps).

    `event_to_dict` writes the outcome flat where it stands, as the `outcome_fields`
    each kind names, in that order: every `--jsonl` event type keeps one flat shape.
    """

    outcome_fields: ClassVar[tuple[str, ...]] = ()
    outcome: CallOutcome


@dataclass(frozen=True, kw_only=True)
class CallFinished(CallEnded):
    """A call's whole answer. Token counts are None when the endpoint did not report them.

    `outcome.reused_from` is set when a resumed run took the answer from an earlier run;
    `finish_reason` and `reasoning` are None when the server sent none.
    """

    kind: ClassVar[str] = "call_finished"
    outcome_fields = (
        "text",
        "tokens_in",
        "tokens_out",
        "latency",
        "ttft",
        "retries",
        "reused_from",
        "finish_reason",
        "reasoning",
        "queued",
        "resends",
        "cost_usd",  # None: unknown
        "prompt_cut_by_server",
    )


@dataclass(frozen=True, kw_only=True)
class CallFailed(CallEnded):
    kind: ClassVar[str] = "call_failed"
    outcome_fields = ("error_kind", "message", "retries", "latency", "queued", "cost_usd")


@dataclass(frozen=True, kw_only=True)
class CallCancelled(CallEnded):
    """A call stopped before it finished; `outcome.tokens_out` counts what it streamed so far."""

    kind: ClassVar[str] = "call_cancelled"
    outcome_fields = ("tokens_out", "latency", "cost_usd")  # cost_usd: estimated
    reason: str = "interrupted"  # or "superseded": a verdict ended the council first


@dataclass(frozen=True, kw_only=True)
class RoundFinished(Event):
    """Every persona call of a deliberation round has ended (answered or failed)."""

    kind: ClassVar[str] = "round_finished"
    round: int
    answered: tuple[str, ...]
    failed: tuple[str, ...]
    speculative: bool


@dataclass(frozen=True, kw_only=True)
class ArbiterVerdict(Event):
    """The arbiter's verdict on a round; `ends_council` applies the threshold.

    `problem` is set when the reply could not be read (it then counts as not converged).
    """

    kind: ClassVar[str] = "arbiter_verdict"
    round: int
    converged: bool
    confidence: float
    synthesis: str
    dissent: tuple[str, ...]
    ends_council: bool
    problem: str | None = None


@dataclass(frozen=True, kw_only=True)
class RoundDiscarded(Event):
    """A round started speculatively was thrown away because the council ended before it.

    Its calls still in flight were cancelled (each has its own CallCancelled); the
    tokens it had produced, finished calls included, are `wasted_tokens`.
    """

    kind: ClassVar[str] = "round_discarded"
    round: int
    wasted_tokens: int
    # In a batch (one run, many councils): the item whose round it was; None otherwise.
    item: str | None = None


@dataclass(frozen=True, kw_only=True)
class LimitChanged(Event):
    """The calls `host` takes at once went from `old` to `new`, and why.

    E.g. reason "2 interrupted streams" (the server turned calls away: the limit
    is now its known capacity) or "probing for more room".
    """

    kind: ClassVar[str] = "limit_changed"
    host: str
    old: int
    new: int
    reason: str


@dataclass(frozen=True, kw_only=True)
class RunFinished(Event):
    kind: ClassVar[str] = "run_finished"
    status: str
    exit_code: int
    wall: float


def event_to_dict(event: Event) -> dict[str, Any]:
    """A JSON-ready dict: its `type`, then the event's fields, a call's outcome written flat."""
    data: dict[str, Any] = {"type": event.kind}
    for item in dataclasses.fields(event):
        if isinstance(event, CallEnded) and item.name == "outcome":
            data.update((name, getattr(event.outcome, name)) for name in event.outcome_fields)
        else:
            data[item.name] = getattr(event, item.name)
    return data


Subscriber = Callable[[Event], None]


class EventBus:
    """Hands every emitted event to every subscriber, in subscription order.

    Usage:
        bus = EventBus()
        bus.subscribe(view.handle)
        bus.emit(CallStarted(...))

    Subscribers run synchronously on the engine's loop: they must be quick and
    must not raise (a renderer bug should not lose the user's answers), so an
    exception from one is kept in `errors` and the rest still run.
    """

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self.errors: list[BaseException] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    @property
    def listening(self) -> bool:
        """False when nobody subscribed: engines may skip building high-volume events."""
        return bool(self._subscribers)

    def emit(self, event: Event) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception as exc:  # keep going: the answers matter more than one view
                self.errors.append(exc)
