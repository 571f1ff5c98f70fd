"""The lean transport (issue 21, point 3): where it is used, and that it keeps what
httpx2's own transport does: reused connections, the SDK's errors, closed streams.

Every other endpoint test runs on it too: the fake is a plain-http local server.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import openai
import pytest

from council.endpoint.client import EndpointClient
from council.endpoint.lean_transport import LeanTransport, lean_mounts
from council.engine.calls import run_call
from council.engine.events import Event, EventBus
from council.engine.reporter import CallReporter
from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import invoke, resolved_endpoint
from tests.test_unstreamed_calls import spec

LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=16)
MESSAGES: list[Any] = [{"role": "user", "content": "q"}]
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def sdk(fake: FakeOpenAI, transport: str) -> openai.AsyncOpenAI:
    """The SDK on the lean transport, or on httpx2's own, against the fake."""
    mounts = lean_mounts(fake.base_url, LIMITS) if transport == "lean" else None
    http = httpx2.AsyncClient(limits=LIMITS, mounts=mounts)
    return openai.AsyncOpenAI(
        base_url=fake.base_url, api_key="test", max_retries=0, http_client=http
    )


def with_client(
    fake: FakeOpenAI, body: Callable[[EndpointClient, EventBus], Awaitable[Any]]
) -> Any:
    async def main() -> Any:
        async with EndpointClient(resolved_endpoint(fake.base_url), max_concurrency=4) as client:
            return await body(client, EventBus())

    return asyncio.run(main())


# -- where it is used --------------------------------------------------------------------------


def test_a_plain_http_endpoint_with_no_proxy_gets_the_lean_transport(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    ((pattern, transport),) = lean_mounts(fake.base_url, LIMITS).items()
    assert pattern == f"http://127.0.0.1:{fake.port}"
    assert isinstance(transport, LeanTransport)
    (pattern,) = lean_mounts("http://localhost/v1", LIMITS)
    assert pattern == "http://localhost"
    # A proxy set, but not for this host.
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    for exempt in ("127.0.0.1", "*", "other.example, 127.0.0.1"):
        monkeypatch.setenv("NO_PROXY", exempt)
        assert lean_mounts(fake.base_url, LIMITS), exempt


def test_https_and_proxied_endpoints_keep_httpx2s_transport(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert lean_mounts("https://api.openai.com/v1", LIMITS) == {}
    assert lean_mounts("https://127.0.0.1:8443/v1", LIMITS) == {}
    for variable in ("HTTP_PROXY", "ALL_PROXY", "http_proxy"):
        with monkeypatch.context() as env:
            env.setenv(variable, "http://proxy.example:3128")
            assert lean_mounts(fake.base_url, LIMITS) == {}, variable
            # NO_PROXY rules that only httpx2 reads as this host: the proxy stays.
            env.setenv("NO_PROXY", "127.0.0.0/8,.example")
            assert lean_mounts(fake.base_url, LIMITS) == {}, variable


def test_a_proxied_endpoints_call_goes_through_the_proxy(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAI() as proxy:  # answers what it is sent, as a caching proxy would
        proxy.default = Reply(text="Via the proxy.")
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        result = invoke("oracle", "--base-url", fake.base_url, "--personas", "judge", "q")
        assert result.exit_code == 0, result.output
        assert "Via the proxy." in result.stdout
        assert [r.persona for r in proxy.requests] == ["judge"]
        assert fake.requests == []
        # Exempted by NO_PROXY: straight to the endpoint, on the lean transport.
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        result = invoke("oracle", "--base-url", fake.base_url, "--personas", "judge", "q")
        assert result.exit_code == 0, result.output
        assert [r.persona for r in fake.requests] == ["judge"]
        assert len(proxy.requests) == 1


# -- what it keeps -----------------------------------------------------------------------------


def test_calls_one_after_another_reuse_one_connection(fake: FakeOpenAI) -> None:
    async def three(client: EndpointClient, bus: EventBus) -> list[bool]:
        answered = []
        for persona in ("judge", "critic", "skeptic"):
            reporter = CallReporter("run", bus, spec(persona))
            await run_call(client, reporter)
            answered.append(reporter.outcome.answered)
        return answered

    assert with_client(fake, three) == [True, True, True]
    chats = fake.requests
    assert [r.persona for r in chats] == ["judge", "critic", "skeptic"]
    assert len({r.connection for r in chats}) == 1
    assert all(r.completed and not r.disconnected for r in chats)


def test_calls_at_once_each_get_a_connection_and_keep_it(fake: FakeOpenAI) -> None:
    fake.default = Reply(ttft=0.2)

    async def twice(client: EndpointClient, bus: EventBus) -> None:
        for _ in range(2):
            reporters = [CallReporter("run", bus, spec(p)) for p in ("judge", "critic")]
            await asyncio.gather(*(run_call(client, r) for r in reporters))
            assert all(r.outcome.answered for r in reporters)

    with_client(fake, twice)
    first, second = fake.requests[:2], fake.requests[2:]
    assert first[0].connection != first[1].connection
    assert {r.connection for r in second} == {r.connection for r in first}


def test_an_idle_connection_the_server_closed_is_not_reused(fake: FakeOpenAI) -> None:
    fake.keep_alive_timeout = 0.5  # as llama-server closes one after 5 s

    async def two(client: EndpointClient, bus: EventBus) -> list[tuple[bool, int]]:
        events: list[Event] = []
        bus.subscribe(events.append)
        first = CallReporter("run", bus, spec("judge"))
        await run_call(client, first)
        # Every connection it had (the first call's, a probe's) closed by the server.
        closed = lambda f: f.idle_closed == f.connections_accepted  # noqa: E731
        await asyncio.to_thread(fake.wait_for, closed)
        second = CallReporter("run", bus, spec("critic"))
        await run_call(client, second)
        assert [e.kind for e in events if "retr" in e.kind or "resen" in e.kind] == []
        return [(r.outcome.answered, r.outcome.retries) for r in (first, second)]

    assert with_client(fake, two) == [(True, 0), (True, 0)]
    judge, critic = fake.requests  # nothing failed, nothing asked again
    assert judge.connection != critic.connection
    assert judge.completed and critic.completed


@pytest.mark.parametrize("transport", ["lean", "httpx2"])
def test_a_broken_chunk_raises_the_sdks_connection_error(fake: FakeOpenAI, transport: str) -> None:
    fake.script(None, Reply(text="one two three four", bad_chunk_after=2))
    received: list[str] = []

    async def run() -> None:
        async with sdk(fake, transport) as client:
            stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")

    with pytest.raises(openai.APIConnectionError) as caught:
        asyncio.run(run())
    assert isinstance(caught.value.__cause__, httpx2.RemoteProtocolError)
    assert received == ["one ", "two "]


def test_a_broken_chunk_fails_the_attempt_and_the_retry_answers(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(text="one two three four", bad_chunk_after=2), Reply(text="Whole."))
    result = invoke("oracle", "--base-url", fake.base_url, "--personas", "judge", "--json", "q")
    assert result.exit_code == 0, result.output
    assert '"Whole."' in result.stdout
    first, second = fake.requests
    assert not first.completed and second.completed
    assert first.connection != second.connection  # the broken one was not kept


@pytest.mark.parametrize("transport", ["lean", "httpx2"])
def test_a_refused_connection_is_the_sdks_connection_error(
    fake: FakeOpenAI, transport: str
) -> None:
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    mounts = {f"http://127.0.0.1:{port}": LeanTransport(LIMITS)} if transport == "lean" else None

    async def run() -> None:
        async with openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{port}/v1",
            api_key="test",
            max_retries=0,
            http_client=httpx2.AsyncClient(mounts=mounts),
        ) as client:
            await client.chat.completions.create(model="m", messages=MESSAGES)

    with pytest.raises(openai.APIConnectionError) as caught:
        asyncio.run(run())
    assert isinstance(caught.value.__cause__, httpx2.ConnectError)


@pytest.mark.parametrize("transport", ["lean", "httpx2"])
def test_no_first_byte_in_time_is_the_sdks_timeout(fake: FakeOpenAI, transport: str) -> None:
    fake.script(None, Reply(hang=True))

    async def run() -> None:
        async with sdk(fake, transport) as client:
            await client.chat.completions.create(
                model="m", messages=MESSAGES, stream=True, timeout=httpx2.Timeout(5, read=0.2)
            )

    with pytest.raises(openai.APITimeoutError) as caught:
        asyncio.run(run())
    assert isinstance(caught.value.__cause__, httpx2.ReadTimeout)
    fake.wait_for(lambda f: len(f.disconnects) == 1)  # and the connection was closed


def test_a_request_waits_for_a_free_connection_up_to_the_pool_timeout(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(gate="held"))
    limits = httpx2.Limits(max_connections=1, max_keepalive_connections=1)

    async def run() -> None:
        body = {"model": "m", "messages": MESSAGES}
        async with httpx2.AsyncClient(transport=LeanTransport(limits)) as client:
            url = f"{fake.base_url}/chat/completions"
            held = asyncio.create_task(
                client.post(url, json=body, headers={"X-Council-Persona": "judge"})
            )
            await asyncio.to_thread(fake.wait_for, lambda f: len(f.requests) == 1)
            with pytest.raises(httpx2.PoolTimeout):
                await client.post(url, json=body, timeout=httpx2.Timeout(5, pool=0.1))
            fake.release("held")
            assert (await held).status_code == 200
            # The slot is free again, and the connection kept.
            assert (await client.post(url, json=body)).status_code == 200

    asyncio.run(run())
    first, second = fake.requests
    assert first.connection == second.connection


def test_a_stream_closed_early_closes_its_connection(fake: FakeOpenAI) -> None:
    fake.default = Reply(tokens=50, token_delay=0.01)

    async def run() -> list[str]:
        async with sdk(fake, "lean") as client:
            stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            received = []
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content)
                if len(received) == 3:
                    break
            await stream.close()
            await asyncio.to_thread(fake.wait_for, lambda f: len(f.disconnects) == 1)
            # The next request opens a new connection and is answered.
            await client.chat.completions.create(model="m", messages=MESSAGES)
            return received

    assert len(asyncio.run(run())) == 3
    first, second = fake.requests
    assert first.disconnected and not first.completed
    assert second.completed and second.connection != first.connection


def test_a_cancelled_call_closes_its_connection(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(text="one two three four", hang_after=2))

    async def cancel_midway(client: EndpointClient, bus: EventBus) -> bool:
        reporter = CallReporter("run", bus, spec("judge"))
        task = asyncio.create_task(run_call(client, reporter))
        await asyncio.to_thread(
            fake.wait_for, lambda f: bool(f.requests) and f.requests[0].tokens_sent == 2
        )
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.to_thread(fake.wait_for, lambda f: len(f.disconnects) == 1)
        after = CallReporter("run", bus, spec("critic"))
        await run_call(client, after)
        return after.outcome.answered

    assert with_client(fake, cancel_midway)
    judge, critic = fake.requests
    assert judge.disconnected and not judge.completed
    assert critic.completed and critic.connection != judge.connection
    assert fake.in_flight == 0
