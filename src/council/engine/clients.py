"""One EndpointClient per endpoint a plan calls, opened together and closed together.

    async with EndpointClients(plan, pool) as clients:
        await run_call(clients.for_call(call), reporter)

Each endpoint keeps its own client, and so its own key, retries and limit: personas
on a local server and personas on a hosted API do not wait for each other's slots.
Each client's limiter is its endpoint's one in the `pool`, shared with every other
run on the pool, and learning into it.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from types import TracebackType
from typing import Any

from council.config.endpoint_settings import EndpointSettings
from council.endpoint.client import EndpointClient
from council.endpoint.pool import EndpointPool
from council.engine.model import CallSpec
from council.engine.plan import DeliberationPlan, OraclePlan, max_concurrency_for

__all__ = ["EndpointClients"]


class EndpointClients:
    """The run's own endpoint's client, and one for each profile its personas name."""

    def __init__(
        self, plan: OraclePlan | DeliberationPlan, pool: EndpointPool, **client_options: Any
    ) -> None:
        self.plan = plan
        self.pool = pool
        self.client_options = client_options  # passed to every EndpointClient (a batch's)
        self._stack = contextlib.AsyncExitStack()
        self._clients: dict[str | None, EndpointClient] = {}

    async def __aenter__(self) -> EndpointClients:
        plan = self.plan
        try:
            self._clients[None] = await self._stack.enter_async_context(
                self._client(plan.endpoint, plan.max_concurrency)
            )
            members = [*plan.personas, *plan.arbiter_fallback]
            if plan.arbiter is not None:
                members.append(plan.arbiter)
            at_once = Counter(p.endpoint for p in members if p.endpoint)
            for name, endpoint in plan.endpoints.items():
                limit = max_concurrency_for(endpoint, at_once[name])
                self._clients[name] = await self._stack.enter_async_context(
                    self._client(endpoint, limit)
                )
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    def _client(self, endpoint: EndpointSettings, limit: int) -> EndpointClient:
        limiter = self.pool.limiter(endpoint, limit)
        return EndpointClient(endpoint, limit, limiter, **self.client_options)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        return await self._stack.__aexit__(exc_type, exc, traceback)

    @property
    def all(self) -> list[EndpointClient]:
        """Every client of the run, the run's own first."""
        return list(self._clients.values())

    def for_call(self, call: CallSpec) -> EndpointClient:
        """The client of the call's endpoint (the run's own when it names none)."""
        return self._clients.get(call.endpoint, self._clients[None])
