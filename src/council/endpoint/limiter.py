"""How many calls one endpoint takes at once: a limiter shared by every call to it in a pool.

Real servers have a few slots and rate limits. One `EndpointLimiter` per endpoint
(base URL and key variable, from an `EndpointPool`: `pool.py`) admits calls in
priority order, learns the endpoint's capacity from its rejections and lives within it:

- it starts at the ceiling (flag > profile `max_concurrency` > default), at most the
  slots the server states (`stated`: llama.cpp's `/props`, asked once by the client),
  or lower where an earlier run learned less (`learned.capacity`): every call
  of a round goes out at once, on the first run against an endpoint as on later ones
  (a call turned away costs one quick answer and is re-sent at once, where waiting
  for each call to be accepted before sending the next would tax every run);
- a rejection (429, 503, a reset or an interrupted stream while others ran) with n
  calls in flight sets the limit to max(1, min(limit // 2, n - 1)), but not below what
  the endpoint took at once before when that was fewer than n, and remembers it as
  the known capacity; rejections of calls sent before that change count once;
- a call sent with k calls in flight (itself included) that ends well, nothing
  turned away since it was sent, records that the endpoint took k at once
  (`learned.took`), raising a known capacity below k, so later runs start at least
  there;
- 2 x limit successes in a row grow it by one up to the known capacity; above it,
  one probe at most once a minute (or every 100 calls), up to the ceiling; each
  probe turned away doubles that spacing (up to MAX_PROBE_SPACING times), so that a
  long batch at its true capacity is not slowed by a probe every 100 calls; a
  probe turned away is the limiter's own experiment: the limit goes back to the
  known capacity at once, and the Retry-After that came with it pauses nothing
  (the calls within capacity are fine; any rejection at capacity pauses as usual);
- `Retry-After` and an exhausted rate-limit header pause the whole endpoint.

    limiter = pool.limiter(settings, ceiling=8)
    ticket = await limiter.acquire(priority=0)
    ...  limiter.release(ticket, rejected=False)
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from council.endpoint.learned import Learned, LearnedTable

__all__ = [
    "HEAD",
    "EndpointLimiter",
    "LimitChange",
    "Ticket",
    "limiter_for",
]

# Priority of a call re-sent after a rejection or retried after an error: the head of the queue.
HEAD = -1
# Probing above the known capacity: at most this often, or after this many calls.
PROBE_INTERVAL = 60.0
PROBE_CALLS = 100
# ... times this at most, after probes that were turned away.
MAX_PROBE_SPACING = 32
# Pauses asked for by a server, capped: a longer one fails calls rather than sleeping.
MAX_PAUSE = 120.0


@dataclass(frozen=True)
class LimitChange:
    """The limit of `host` went from `old` to `new` calls at once, and why."""

    host: str
    old: int
    new: int
    reason: str


@dataclass(eq=False)
class Ticket:
    """One call's slot: when it was asked for and when it was granted."""

    priority: int
    asked_at: float
    epoch: int = 0  # the limiter's epoch when it was sent: older rejections count once
    rejections: int = 0  # the limiter's rejections when it was sent
    at_once: int = 0  # calls in flight when it was sent, itself included
    granted_at: float | None = None
    _future: asyncio.Future[None] | None = field(default=None, repr=False)

    @property
    def queued(self) -> float:
        """Seconds spent waiting for the slot."""
        return 0.0 if self.granted_at is None else self.granted_at - self.asked_at


class EndpointLimiter:
    """Admits calls to one endpoint within its learned limit, most urgent first.

    What it learns goes to `table` (its pool's; a table of its own when none is given),
    under `base_url` and `model`; `learned_for` reads the table for any other model
    called on the endpoint (its context window, its tokenizer).
    """

    def __init__(
        self,
        host: str,
        base_url: str,
        model: str,
        ceiling: int,
        *,
        fixed: bool = False,
        table: LearnedTable | None = None,
    ) -> None:
        self.host = host
        self.base_url = base_url
        self.ceiling = max(1, ceiling)
        self.fixed = fixed  # an embedded server: the ceiling is the truth, nothing to learn
        self.table = table if table is not None else LearnedTable()
        self.learned = self.table.learned_for(base_url, model)
        # The most calls at once: the ceiling, or fewer slots the server states.
        self.top = self.ceiling
        if self.learned.slots and not fixed:
            self.top = min(self.ceiling, self.learned.slots)
        known = self.learned.capacity
        if known and self.learned.took:
            known = max(known, self.learned.took)  # it took more since
        self.capacity: int | None = min(known, self.top) if known and not fixed else None
        self.limit = self.capacity or self.top
        self.in_flight = 0
        self.epoch = 0
        self.successes = 0  # in a row, at the current limit
        self.calls_since_probe = 0
        self.last_probe = time.monotonic()
        self.probe_spacing = 1  # doubled by each probe turned away
        self.paused_until = 0.0
        self._paused_before = 0.0  # before the last pause(): undone for a failed probe
        self.rejections = 0
        self.changes: list[LimitChange] = []
        self._recent: dict[str, int] = {}  # rejections by name since the last change
        self._waiting: list[tuple[int, int, Ticket]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self.listeners: list[Callable[[LimitChange], None]] = []

    def learned_for(self, model: str) -> Learned:
        """What was learned about `model` on this endpoint (shared with its pool)."""
        return self.table.learned_for(self.base_url, model)

    # -- admission ---------------------------------------------------------------------------

    async def acquire(self, priority: int = 0) -> Ticket:
        """Wait for a slot: lower priority numbers first, then first come."""
        return await self.wait(self.reserve(priority))

    def reserve(self, priority: int) -> Ticket:
        """A place in the queue, taken now (a re-sent call takes it before its slot is freed)."""
        ticket = Ticket(priority=priority, asked_at=time.monotonic())
        ticket._future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), ticket))
        return ticket

    async def wait(self, ticket: Ticket) -> Ticket:
        """Wait for the reserved slot; Ctrl-C (cancellation) leaves at once."""
        assert ticket._future is not None
        self._dispatch()
        try:
            await ticket._future
        except asyncio.CancelledError:
            if ticket.granted_at is not None:  # granted as it was cancelled: give it back
                self._release_slot(ticket)
            else:
                self._waiting = [w for w in self._waiting if w[2] is not ticket]
                heapq.heapify(self._waiting)
            raise
        return ticket

    def _dispatch(self) -> None:
        now = time.monotonic()
        while self._waiting and self.in_flight < self.limit:
            if now < self.paused_until:
                self._wake_at(self.paused_until)
                return
            _, _, ticket = heapq.heappop(self._waiting)
            assert ticket._future is not None
            if ticket._future.done():  # cancelled while waiting
                continue
            self.in_flight += 1
            ticket.granted_at = now
            ticket.epoch = self.epoch
            ticket.rejections = self.rejections
            ticket.at_once = self.in_flight
            ticket._future.set_result(None)

    def _wake_at(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(0.0, when - time.monotonic()), self._wake)

    def _wake(self) -> None:
        self._timer = None
        self._dispatch()

    def stated(self, slots: int) -> None:
        """The server says it has `slots` slots (0: it says nothing): never more at once."""
        self.learned.slots = slots
        self.learned.touch()
        if slots <= 0 or self.fixed or slots >= self.top:
            return
        self.top = slots
        if self.capacity is not None:
            self.capacity = min(self.capacity, slots)
        self.limit = min(self.limit, slots)

    def _release_slot(self, ticket: Ticket) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        self._dispatch()

    # -- learning ----------------------------------------------------------------------------

    def release(self, ticket: Ticket, *, rejected: bool = False, reason: str = "") -> None:
        """Give the slot back; `rejected`: the server turned the call away (and why)."""
        if rejected:
            self._rejected(ticket, reason)
        else:
            self._succeeded(ticket)
        self._release_slot(ticket)

    def release_quietly(self, ticket: Ticket) -> None:
        """Give the slot back without learning anything (an error, a cancellation)."""
        self._release_slot(ticket)

    def _rejected(self, ticket: Ticket, name: str) -> None:
        self.rejections += 1
        self.successes = 0
        self._recent[name] = self._recent.get(name, 0) + 1
        if self.fixed or ticket.epoch != self.epoch:
            return  # sent before the last change: already counted
        reason = ", ".join(f"{n} {what}{'s' if n != 1 else ''}" for what, n in self._recent.items())
        if self.capacity is not None and self.limit > self.capacity:
            new = self.capacity  # a failed probe: back to what is known to work
            # The client paused the endpoint for this rejection just before: undone.
            self.paused_until = min(self.paused_until, self._paused_before)
            self.probe_spacing = min(MAX_PROBE_SPACING, self.probe_spacing * 2)
        else:
            new = max(1, min(self.limit // 2, self.in_flight - 1))
            took = self.learned.took
            if took and took < self.in_flight:
                new = max(new, took)  # it took that many at once before: not below
            elif took:
                self.learned.took = new  # it no longer takes what it took
            self.capacity = new
            self.learned.capacity = new
            self.learned.touch()
        self.last_probe = time.monotonic()
        self.calls_since_probe = 0
        self._change(new, reason)

    def _succeeded(self, ticket: Ticket) -> None:
        if self.fixed:
            return
        self.successes += 1
        self.calls_since_probe += 1
        if ticket.rejections == self.rejections:
            # What was in flight when it went, not now: calls sent after it (a probe
            # above the capacity, say) may yet be turned away.
            self._took(ticket.at_once)
        if self.capacity is None or self.limit >= self.top:
            return
        if self.limit < self.capacity:
            if self.successes >= 2 * self.limit:
                self._change(self.limit + 1, f"{self.successes} answers in a row")
            return
        spacing = self.probe_spacing
        due = time.monotonic() - self.last_probe >= PROBE_INTERVAL * spacing
        if due or self.calls_since_probe >= PROBE_CALLS * spacing:
            self.last_probe = time.monotonic()
            self.calls_since_probe = 0
            self._change(self.limit + 1, "probing for more room")

    def _took(self, calls: int) -> None:
        """`calls` were in flight, none turned away since this one went: it takes that many."""
        if calls > (self.learned.took or 0):
            self.learned.took = calls
            self.learned.touch()
        if self.capacity is not None and calls > self.capacity:
            self.capacity = self.learned.capacity = calls

    def _change(self, new: int, reason: str) -> None:
        old = self.limit
        self.epoch += 1
        self.successes = 0
        self._recent = {}
        if new == old:
            return
        self.limit = new
        change = LimitChange(self.host, old, new, reason)
        self.changes.append(change)
        for listener in list(self.listeners):
            listener(change)
        self._dispatch()

    def pause(self, seconds: float) -> None:
        """Send nothing new to this endpoint for `seconds` (Retry-After, an exhausted quota)."""
        until = time.monotonic() + min(max(0.0, seconds), MAX_PAUSE)
        self._paused_before = self.paused_until
        if until > self.paused_until:
            self.paused_until = until


def limiter_for(
    host: str,
    base_url: str,
    key_env: str,
    model: str,
    ceiling: int,
    *,
    fixed: bool = False,
) -> EndpointLimiter:
    """A limiter of its own, for a client used alone (`endpoints check`, `council models`).

    A run's clients get their endpoint's one limiter from the run's `EndpointPool`
    instead, so that every call to the endpoint goes through it and it keeps learning.
    """
    del key_env  # nothing is shared: no key to find it by
    return EndpointLimiter(host, base_url, model, ceiling, fixed=fixed)
