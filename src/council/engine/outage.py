"""An endpoint that stopped answering pauses a batch instead of failing its items.

A model server restarting takes seconds to minutes; meanwhile every call fails to
connect, and a batch would write one failed item after another (about ten a
second). Instead, the first item that fails for want of a connection declares
the endpoint down: the batch starts no further item, the items that fail so
wait, and the endpoint is probed (a GET of its model list, with backoff). When
it answers, the waiting items are asked again whole and new ones start. Only an
outage that lasts longer than `limit` seconds, without a break, fails items: the
waiting ones then, and any that fails to connect while it lasts.

    outage = Outage(probe, limit=300.0, progress=progress)
    if failed_for_want_of_connection(calls) and await outage.wait_after_failure(began):
        ...  # ask the item again
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence

from council.engine.model import CallOutcome
from council.engine.results import BatchProgress
from council.errors import ErrorKind

__all__ = ["Outage", "failed_for_want_of_connection"]

# Probe backoff: from PROBE_FIRST seconds, doubling, at most PROBE_MAX apart.
PROBE_FIRST = 0.25
PROBE_MAX = 5.0
# Kinds of failure an outage causes: a refused or reset connection, a stream cut
# off when the server died, a call that timed out waiting for a dead peer.
OUTAGE_KINDS = frozenset({ErrorKind.CONNECTION, ErrorKind.TRUNCATED, ErrorKind.TIMEOUT})


def failed_for_want_of_connection(calls: Sequence[CallOutcome]) -> bool:
    """An item's failed calls are all an outage's doing, one at least a failed connection."""
    failed = [c for c in calls if not c.answered and not c.cancelled]
    kinds = {c.error_kind for c in failed}
    return ErrorKind.CONNECTION in kinds and kinds <= OUTAGE_KINDS


class Outage:
    """Whether the batch's endpoint is down, since when, and waiting for it to return.

    `probe()` answers True when the endpoint responds at all (any HTTP answer),
    False when it still cannot be reached. `limit` is the longest continuous
    outage that items wait through. `progress.down_since` (wall clock) and
    `progress.waiting` are kept for the progress view.
    """

    def __init__(
        self,
        probe: Callable[[], Awaitable[bool]],
        limit: float,
        progress: BatchProgress,
        *,
        probe_first: float = PROBE_FIRST,
        probe_max: float = PROBE_MAX,
    ) -> None:
        self.probe = probe
        self.limit = limit
        self.progress = progress
        self.probe_first = probe_first
        self.probe_max = probe_max
        self.down_at: float | None = None  # monotonic; None: up
        self.up_at: float | None = None  # when the last outage ended (monotonic)
        self._up = asyncio.Event()
        self._up.set()
        self._prober: asyncio.Task[None] | None = None
        self.on_change: Callable[[], None] = lambda: None  # down, or back: for the view

    @property
    def down(self) -> bool:
        return self.down_at is not None

    def _went_down(self) -> None:
        if self.down_at is not None:
            return
        self.down_at = time.monotonic()
        self.progress.down_since = time.time()
        self.progress.outages += 1
        self._up.clear()
        self._prober = asyncio.create_task(self._probe_until_up())
        self.on_change()

    def _came_back(self) -> None:
        self.down_at = None
        self.up_at = time.monotonic()
        self.progress.down_since = None
        self._up.set()
        self.on_change()

    def _left(self) -> float:
        """Seconds of the limit left in this outage (0 or less: given up)."""
        if self.down_at is None:
            return 0.0
        return self.down_at + self.limit - time.monotonic()

    async def _probe_until_up(self) -> None:
        delay = self.probe_first
        while not await self.probe():
            await asyncio.sleep(delay)
            delay = min(self.probe_max, delay * 2)
        self._came_back()

    async def gate(self) -> None:
        """Before an item starts: wait while the endpoint is down, within the limit."""
        if self.down:
            await self._wait()

    async def wait_after_failure(self, began: float) -> bool:
        """An item that began at `began` (monotonic) failed to connect: the endpoint is
        down. True once it answers again (ask the item again), False when the outage
        outlasted the limit (fail it). An item that began before the endpoint came
        back failed in the outage that ended: it is asked again at once."""
        if not self.down and self.up_at is not None and began < self.up_at:
            return True
        self._went_down()
        return await self._wait()

    async def _wait(self) -> bool:
        left = self._left()
        if left <= 0:
            return not self.down
        self.progress.waiting += 1
        try:
            async with asyncio.timeout(left):
                await self._up.wait()
            return True
        except TimeoutError:
            return not self.down
        finally:
            self.progress.waiting -= 1

    async def close(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
