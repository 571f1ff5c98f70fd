"""One request's council run on the server's event loop, and every run the server holds.

`Runs` admits a request under `--max-runs` (councils running at once) and `--max-queue`
(requests waiting for one of them): past both, 429. Each admitted request gets a
`CouncilRun`: the council's event stream (the public API's `Council.stream`) read in
a task of its own, its events queued for the response as they happen, its tokens
summed over every call (cancelled ones included). The API records the run in the
history (`command: serve`). Cancelling the task (the client went away, the deadline
passed, the server is stopping) cancels every call of the run at once; what
finished is recorded all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from council.app.council import CouncilResult, CouncilStream
from council.app.usage import Usage
from council.engine.events import CallFailed, Event
from council.engine.model import CallOutcome
from council.errors import CouncilError
from council.serve.councils import ServedCouncil
from council.serve.protocol import ApiError

__all__ = ["CouncilRun", "Runs", "usage_of"]

# Seconds a client is told to wait when the queue is full (Retry-After).
RETRY_AFTER = 1


def usage_of(usage: Usage) -> dict[str, int]:
    """OpenAI's `usage` from the run's: every call's tokens (a count no server sent: 0)."""
    prompt, completion = usage.tokens_in or 0, usage.tokens_out or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class CouncilRun:
    """One council run for one request: events as they come, the result when it ends."""

    def __init__(
        self, council: ServedCouncil, stream: CouncilStream, *, deadline: float | None
    ) -> None:
        self.council = council
        self.stream_of_run = stream
        self.deadline = deadline
        self.usage = Usage()
        self.events: asyncio.Queue[Event | None] = asyncio.Queue()
        self.failures: list[CallOutcome] = []
        self.result: CouncilResult | None = None
        # The error the API raised when nobody answered (the endpoint refused every call...).
        self.error: CouncilError | None = None
        self.timed_out = False
        self.cancelled = False
        self.task: asyncio.Task[None] | None = None

    async def execute(self) -> None:
        """Read the run to its end, the deadline or a cancel (the API records it either way)."""
        try:
            async with asyncio.timeout(self.deadline), self.stream_of_run as events:
                async for event in events:
                    self.usage.handle(event)
                    if isinstance(event, CallFailed):
                        self.failures.append(event.outcome)
                    self.events.put_nowait(event)
            self.result = self.stream_of_run.result
        except TimeoutError:
            self.timed_out = True
        except asyncio.CancelledError:
            # Not raised on: the run ends here, and whoever cancelled it (a client gone,
            # the server stopping) awaits this task to its end.
            self.cancelled = True
        except CouncilError as error:
            self.error = error
        finally:
            self.events.put_nowait(None)

    async def stream(self) -> AsyncIterator[Event]:
        """The run's events, as they happen, until it ends."""
        while True:
            event = await self.events.get()
            if event is None:
                return
            yield event


class Runs:
    """Every council the server is running: admission, the deadline, shutdown."""

    def __init__(self, *, max_runs: int, max_queue: int, deadline: float | None) -> None:
        self.max_runs = max_runs
        self.max_queue = max_queue
        self.deadline = deadline
        self._slots = asyncio.Semaphore(max_runs)
        self._admitted = 0
        self.tasks: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """Hold one of the `--max-runs` slots, waiting in the queue; 429 when that is full."""
        if self._admitted >= self.max_runs + self.max_queue:
            raise ApiError(
                429,
                f"this server is running {self.max_runs} councils and has "
                f"{self.max_queue} waiting, its most (--max-runs, --max-queue); retry shortly",
                type="requests",
                code="rate_limit_exceeded",
                headers={"retry-after": str(RETRY_AFTER)},
            )
        self._admitted += 1
        try:
            async with self._slots:
                yield
        finally:
            self._admitted -= 1

    def start(self, council: ServedCouncil, stream: CouncilStream) -> CouncilRun:
        """The run of `stream`, read in a task of its own."""
        run = CouncilRun(council, stream, deadline=self.deadline)
        task = asyncio.get_running_loop().create_task(run.execute())
        run.task = task
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return run

    async def close(self) -> None:
        """Cancel the councils still running and wait until each is recorded."""
        pending = set(self.tasks)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
