"""Property: whatever a server streams, every call ends in exactly one outcome (issue 13).

Arbitrary sequences of events (well shaped chunks with malformed lines, wrong types,
junk usage and early ends among them) go through the real client and engine to the
fake server, beside a calm call: no exception escapes, and each call ends once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from council.endpoint.client import EndpointClient
from council.engine.calls import run_call
from council.engine.events import CallEnded, Event, EventBus
from council.engine.model import CallSpec
from council.engine.reporter import CallReporter
from tests.fake_openai import DONE, FakeOpenAI, Reply, chunk
from tests.helpers import resolved_endpoint
from tests.stream_strategies import streams

SURROGATE = re.compile("[\ud800-\udfff]")
KINDS = {"protocol", "truncated", "empty", "server_error", "connection", "timeout", "not_api"}


@pytest.fixture
def quick_endpoint(fake_server: FakeOpenAI) -> Any:
    return dataclasses.replace(resolved_endpoint(fake_server.base_url), retries=0, timeout=10.0)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(events=streams(), finish=st.sampled_from([True, True, True, False]))
def test_every_call_ends_in_exactly_one_outcome_whatever_is_streamed(
    fake_server: FakeOpenAI, quick_endpoint: Any, events: list[Any], finish: bool
) -> None:
    fake = fake_server
    fake.reset()
    script = [*events, *([chunk(finish="stop"), DONE] if finish else [])]
    fake.script("hostile", Reply(events=script))
    bus = EventBus()
    ended: list[Event] = []
    bus.subscribe(lambda e: ended.append(e) if isinstance(e, CallEnded) else None)
    message = ({"role": "user", "content": "q"},)
    hostile, calm = (
        CallReporter("run", bus, CallSpec(call_id=name, persona=name, messages=message, model="m"))
        for name in ("hostile", "calm")
    )

    async def main() -> None:
        async with (
            EndpointClient(quick_endpoint, max_concurrency=2) as client,
            asyncio.TaskGroup() as group,  # an exception escaping a call fails the test
        ):
            group.create_task(run_call(client, hostile))
            group.create_task(run_call(client, calm))

    asyncio.run(main())
    assert sorted(e.persona for e in ended) == ["calm", "hostile"]  # one outcome each
    assert calm.outcome is not None and calm.outcome.answered
    outcome = hostile.outcome
    assert outcome is not None
    event(outcome.error_kind or "answered")  # --hypothesis-show-statistics: the mix
    if outcome.answered:
        assert outcome.text.strip() and not SURROGATE.search(outcome.text)
        assert outcome.tokens_out is None or outcome.tokens_out >= 0
    else:
        assert outcome.error_kind in KINDS, outcome.message
        assert outcome.message


def test_an_answer_without_a_finish_reason_then_eof_is_not_silently_accepted(
    fake: FakeOpenAI, quick_endpoint: Any
) -> None:
    fake.script("hostile", Reply(events=[chunk("partial")]))  # no finish, no [DONE]
    bus = EventBus()
    call = CallSpec(
        call_id="h", persona="hostile", messages=({"role": "user", "content": "q"},), model="m"
    )
    reporter = CallReporter("run", bus, call)

    async def main() -> None:
        async with EndpointClient(quick_endpoint, max_concurrency=1) as client:
            await run_call(client, reporter)

    asyncio.run(main())
    assert reporter.outcome is not None and reporter.outcome.error_kind == "truncated"
