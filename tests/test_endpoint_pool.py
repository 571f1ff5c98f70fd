"""Issue 24, point 2: an EndpointPool owns each endpoint's one limiter and what was learned.

Runs that share a pool (a server running many councils, a batch, an eval) share each
endpoint's limiter, which keeps learning across them; a run given no pool makes its
own, as a command in a new process does. Counted from the fake server's own log.
"""

from __future__ import annotations

import asyncio

from council.config.personas import Persona
from council.endpoint.pool import EndpointPool
from council.engine.deliberation import DeliberationRun
from council.engine.events import EventBus
from council.engine.oracle import OracleRun
from council.engine.plan import OraclePlan, build_deliberation_plan, build_oracle_plan
from council.engine.results import OracleResult
from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import resolved_endpoint

THREE = ("judge", "critic", "skeptic")


def personas(names: tuple[str, ...] = THREE) -> list[Persona]:
    return [Persona(name=n, description=n, system=f"You are {n}.") for n in names]


def oracle_plan(fake: FakeOpenAI, max_concurrency: int | None = None) -> OraclePlan:
    endpoint = resolved_endpoint(fake.base_url, max_concurrency)
    return build_oracle_plan(query="q", personas=personas(), endpoint=endpoint)


async def together(*runs: OracleRun) -> list[OracleResult]:
    return list(await asyncio.gather(*(run.execute() for run in runs)))


def test_runs_on_one_pool_go_through_the_endpoints_one_limiter(fake: FakeOpenAI) -> None:
    fake.default = Reply(ttft=0.3, tokens=3)
    plan = oracle_plan(fake, max_concurrency=2)
    pool = EndpointPool()
    shared = [OracleRun(plan, EventBus(), pool=pool) for _ in range(2)]
    results = asyncio.run(together(*shared))
    assert [r.exit_code for r in results] == [0, 0]
    assert fake.peak_concurrency == 2  # six calls of two runs, two at a time
    assert shared[0].pool is shared[1].pool

    # Without a pool each run makes its own, as two processes: each has its two slots.
    fake.reset()
    fake.default = Reply(ttft=0.3, tokens=3)
    alone = [OracleRun(plan, EventBus()) for _ in range(2)]
    results = asyncio.run(together(*alone))
    assert [r.exit_code for r in results] == [0, 0]
    assert alone[0].pool is not alone[1].pool
    assert fake.peak_concurrency == 4


def test_what_a_run_learned_the_next_run_on_the_pool_starts_from(fake: FakeOpenAI) -> None:
    fake.slots, fake.over_limit, fake.slot_retry_after = 2, "429", 0.05
    fake.default = Reply(ttft=0.2, tokens=3)
    plan = oracle_plan(fake)
    pool = EndpointPool()

    async def one_after_the_other() -> tuple[OracleResult, int, OracleResult]:
        first = await OracleRun(plan, EventBus(), pool=pool).execute()
        before = len(fake.requests)
        second = await OracleRun(plan, EventBus(), pool=pool).execute()
        return first, before, second

    first, before, second = asyncio.run(one_after_the_other())
    assert first.exit_code == second.exit_code == 0
    assert any(r.over_limit for r in fake.requests[:before])  # the first run learned...
    assert pool.learned.learned_for(fake.base_url, plan.endpoint.model).capacity == 2
    assert not any(r.over_limit for r in fake.requests[before:])  # ...the second lived by it
    assert first.limit_changes and not second.limit_changes


def test_a_deliberation_and_an_oracle_share_a_pool(fake: FakeOpenAI) -> None:
    fake.default = Reply(ttft=0.3, tokens=3)
    endpoint = resolved_endpoint(fake.base_url, 2)
    arbiter = Persona(name="arbiter", description="arbiter", system="You judge.")
    fake.script("arbiter", Reply(text='{"converged": true, "confidence": 1, "synthesis": "S."}'))
    deliberation = build_deliberation_plan(
        query="q", personas=personas(), arbiter=arbiter, endpoint=endpoint, rounds=1
    )
    pool = EndpointPool()

    async def both() -> list[int]:
        runs = [
            DeliberationRun(deliberation, EventBus(), pool=pool).execute(),
            OracleRun(oracle_plan(fake, 2), EventBus(), pool=pool).execute(),
        ]
        return [r.exit_code for r in await asyncio.gather(*runs)]

    assert asyncio.run(both()) == [0, 0]
    assert fake.peak_concurrency == 2
