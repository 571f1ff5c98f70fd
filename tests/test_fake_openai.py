"""The fake OpenAI-compatible server, checked with the real openai client and raw HTTP."""

from __future__ import annotations

import asyncio
import http.client
import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.fake_openai import DONE, FakeOpenAI, Reply, chunk

ROOT = Path(__file__).resolve().parents[1]
SERVER = [sys.executable, "-m", "tests.fake_openai"]
MESSAGES: list[Any] = [
    {"role": "system", "content": "x" * 40},
    {"role": "user", "content": "y" * 9},
]  # 49 characters: 12 prompt tokens


def client_for(fake: FakeOpenAI) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0)


def persona_headers(persona: str | None, round_: str | None = None) -> dict[str, str]:
    headers = {} if persona is None else {"X-Council-Persona": persona}
    if round_ is not None:
        headers["X-Council-Round"] = round_
    return headers


async def ask(
    client: openai.AsyncOpenAI,
    persona: str | None = None,
    round_: str | None = None,
    **kwargs: Any,
) -> str:
    """One streamed chat completion; returns the text."""
    stream = await client.chat.completions.create(
        model="fake-model",
        messages=MESSAGES,
        stream=True,
        extra_headers=persona_headers(persona, round_),
        **kwargs,
    )
    return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])


def control(fake: FakeOpenAI, method: str, path: str, payload: object = None) -> tuple[int, Any]:
    """Call the control API over HTTP, as another process would."""
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    try:
        body = None if payload is None else json.dumps(payload)
        conn.request(method, path, body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def raw_exchange(fake: FakeOpenAI, request: bytes) -> bytes:
    """Send one raw request and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while data := sock.recv(65536):
            received += data
    return received


def stream_chunks(fake: FakeOpenAI) -> list[Any]:
    """One streaming call through the real SDK, asking for usage; every chunk it yields."""

    async def run() -> list[Any]:
        async with client_for(fake) as client:
            stream = await client.chat.completions.create(
                model="fake-model",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
            return [chunk async for chunk in stream]

    return asyncio.run(run())


def server_process(*args: str) -> subprocess.Popen[str]:
    """`python -m tests.fake_openai ARGS` as a real process, pipes for its output."""
    return subprocess.Popen(
        [*SERVER, *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_streamed_content_and_usage_round_trip_through_the_sdk(fake: FakeOpenAI) -> None:
    fake.script(None, Reply(text="Keep the Go service,\nfor now."))

    chunks = stream_chunks(fake)
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(c.choices[0].delta.content for c in content) == "Keep the Go service,\nfor now."
    assert [c.choices[0].delta.content for c in content][:2] == ["Keep ", "the "]
    assert content[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in content[1:])
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (12, 6, 18)

    (record,) = fake.requests
    assert record.status == 200 and record.completed and not record.disconnected
    assert record.tokens_sent == 6
    assert record.body is not None and record.body["stream_options"] == {"include_usage": True}
    assert record.persona is None and record.round is None
    assert record.headers["authorization"] == "Bearer test"
    assert record.responded_at is not None and record.first_token_at is not None
    assert record.finished_at is not None
    assert record.received_at <= record.responded_at <= record.first_token_at
    assert record.first_token_at <= record.finished_at
    assert fake.in_flight == 0


@pytest.mark.parametrize("switch", ["reply", "server"])
def test_usage_is_left_out_when_switched_off(fake: FakeOpenAI, switch: str) -> None:
    if switch == "reply":
        fake.default = Reply(tokens=3, usage=False)
    else:
        fake.default = Reply(tokens=3)
        fake.send_usage = False

    chunks = stream_chunks(fake)
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "model says: w1 w2 w3"


def test_non_streaming_completion_has_the_default_text_and_usage(fake: FakeOpenAI) -> None:
    fake.default = Reply(tokens=3)

    async def run() -> Any:
        async with client_for(fake) as client:
            return await client.chat.completions.create(
                model="some-model", messages=MESSAGES, extra_headers=persona_headers("judge")
            )

    completion = asyncio.run(run())
    assert completion.object == "chat.completion"
    assert completion.model == "some-model"
    assert completion.choices[0].message.content == "judge says: w1 w2 w3"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 5)
    assert fake.requests[0].tokens_sent == 5 and fake.requests[0].completed


def test_models_are_listed(fake: FakeOpenAI) -> None:
    async def run() -> list[str]:
        async with client_for(fake) as client:
            return [model.id async for model in client.models.list()]

    assert asyncio.run(run()) == ["fake-model"]
    assert fake.requests == []  # only chat completions are recorded


def test_slots_are_stated_in_props_as_llama_server_states_them(fake: FakeOpenAI) -> None:
    props_url = fake.base_url.removesuffix("/v1") + "/props"
    with pytest.raises(urllib.error.HTTPError):  # states nothing: no /props, as OpenAI
        urllib.request.urlopen(props_url, timeout=5)
    control(fake, "POST", "/_fake/settings", {"total_slots": 4})
    with urllib.request.urlopen(props_url, timeout=5) as response:
        props = json.loads(response.read())
    assert props["total_slots"] == 4
    assert props["default_generation_settings"]["n_ctx"] > 0
    assert fake.props_requests == 2


def test_response_headers_can_be_held_back(fake: FakeOpenAI) -> None:
    fake.default = Reply(header_delay=0.3, tokens=2)

    async def run() -> None:
        async with client_for(fake) as client:
            await ask(client, "judge")

    asyncio.run(run())
    (record,) = fake.requests
    assert record.responded_at is not None and record.completed
    assert record.responded_at - record.received_at >= 0.3


def test_429_carries_retry_after_to_the_sdk(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(status=429, retry_after=0.25, error_message="Slow down."))

    async def run() -> None:
        async with client_for(fake) as client:
            await ask(client, "judge")

    with pytest.raises(openai.RateLimitError) as caught:
        asyncio.run(run())
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "0.25"
    assert "Slow down." in str(caught.value)
    assert isinstance(caught.value.body, dict) and caught.value.body["message"] == "Slow down."
    (record,) = fake.requests
    assert record.status == 429 and record.completed and record.tokens_sent == 0


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, openai.BadRequestError), (401, openai.AuthenticationError), (503, openai.APIError)],
)
def test_error_statuses_reach_the_sdk_as_their_exceptions(
    fake: FakeOpenAI, status: int, error: type[Exception]
) -> None:
    fake.default = Reply(status=status)

    async def run() -> None:
        async with client_for(fake) as client:
            await ask(client)

    with pytest.raises(error):
        asyncio.run(run())
    assert [r.status for r in fake.requests] == [status]


def test_a_hung_request_cancelled_by_the_client_is_a_disconnect(fake: FakeOpenAI) -> None:
    fake.script("critic", Reply(hang=True))

    async def run() -> None:
        async with client_for(fake) as client:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ask(client, "critic"), timeout=0.2)
            fake.wait_for(lambda f: len(f.disconnects) == 1)

    asyncio.run(run())
    (record,) = fake.disconnects
    assert record.persona == "critic"
    assert record.disconnected and not record.completed
    assert record.responded_at is None and record.status is None
    assert record.disconnected_at is not None and record.disconnected_at >= record.received_at
    assert record.finished_at == record.disconnected_at
    assert fake.in_flight == 0
    stats = fake.stats()
    assert stats["disconnects"] == [{"persona": "critic", "at": record.disconnected_at}]


def test_closing_a_stream_midway_is_a_disconnect(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(tokens=50, token_delay=0.02))

    async def run() -> list[str]:
        async with client_for(fake) as client:
            stream = await client.chat.completions.create(
                model="fake-model",
                messages=MESSAGES,
                stream=True,
                extra_headers=persona_headers("judge"),
            )
            received = []
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content)
                if len(received) == 3:
                    break
            await stream.close()
            fake.wait_for(lambda f: len(f.disconnects) == 1)
            return received

    assert asyncio.run(run()) == ["judge ", "says: ", "w1 "]
    (record,) = fake.disconnects
    assert record.status == 200 and not record.completed
    assert 3 <= record.tokens_sent < 52
    assert fake.in_flight == 0


def test_drop_after_breaks_the_clients_iteration(fake: FakeOpenAI) -> None:
    fake.script(None, Reply(text="one two three four five", drop_after=2))
    received: list[str] = []

    async def run() -> None:
        async with client_for(fake) as client:
            stream = await client.chat.completions.create(
                model="fake-model", messages=MESSAGES, stream=True
            )
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")

    with pytest.raises(openai.APIConnectionError):
        asyncio.run(run())
    assert received == ["one ", "two "]
    (record,) = fake.requests
    assert record.tokens_sent == 2 and record.finished_at is not None
    assert not record.completed and not record.disconnected
    assert fake.in_flight == 0


def test_peak_concurrency_counts_overlapping_requests(fake: FakeOpenAI) -> None:
    fake.default = Reply(ttft=0.3, tokens=2)

    async def run() -> list[str]:
        async with client_for(fake) as client:
            return await asyncio.gather(*(ask(client, f"p{i}") for i in range(5)))

    assert asyncio.run(run()) == [f"p{i} says: w1 w2" for i in range(5)]
    assert fake.peak_concurrency == 5
    assert fake.in_flight == 0
    fake.reset()
    assert fake.peak_concurrency == 0 and fake.requests == []


def test_more_than_a_hundred_concurrent_streams(fake: FakeOpenAI) -> None:
    fake.default = Reply(ttft=1.0, token_delay=0.01, tokens=5)

    async def run() -> list[str]:
        async with client_for(fake) as client:
            return await asyncio.gather(*(ask(client, f"p{i}") for i in range(120)))

    assert asyncio.run(run()) == [f"p{i} says: w1 w2 w3 w4 w5" for i in range(120)]
    assert fake.peak_concurrency == 120
    assert all(r.completed for r in fake.requests)


def test_replies_are_scripted_per_persona(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(text="First ruling."), Reply(text="Second ruling."))
    fake.script(None, Reply(text="For anyone."))

    async def run() -> list[str]:
        async with client_for(fake) as client:
            order = ["critic", "judge", "critic", "judge", None, "judge"]
            return [await ask(client, persona) for persona in order]

    assert asyncio.run(run()) == [
        "For anyone.",  # the critic has no queue of its own
        "First ruling.",
        "critic says: w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12",
        "Second ruling.",
        "model says: w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12",
        "judge says: w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12",
    ]
    assert [r.index for r in fake.requests] == list(range(6))
    assert len(fake.requests_for("judge")) == 3
    assert len(fake.requests_for("critic")) == 2


def test_replies_scripted_for_a_round_go_only_to_that_round(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(text="Round two ruling."), round=2)
    fake.script("judge", Reply(text="Any round."))
    status, _ = control(
        fake, "POST", "/_fake/script", {"persona": "judge", "round": 3, "replies": [{"text": "3"}]}
    )
    assert status == 200

    async def run() -> list[str]:
        async with client_for(fake) as client:
            return [await ask(client, "judge", r) for r in ("3", "2", "1", "2")]

    assert asyncio.run(run()) == [
        "3",
        "Round two ruling.",
        "Any round.",
        "judge says: w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12",
    ]


def test_a_gated_reply_waits_for_release_and_hang_after_streams_then_hangs(
    fake: FakeOpenAI,
) -> None:
    fake.script("judge", Reply(text="Held.", gate="verdict"))
    fake.script("critic", Reply(tokens=5, hang_after=2))

    async def run() -> tuple[str, list[str]]:
        async with client_for(fake) as client:
            held = asyncio.create_task(ask(client, "judge"))
            stream = await client.chat.completions.create(
                model="fake-model",
                messages=MESSAGES,
                stream=True,
                extra_headers=persona_headers("critic"),
            )
            pieces: list[str] = []
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    pieces.append(chunk.choices[0].delta.content)
                if len(pieces) == 2:
                    break  # the third never comes: the stream hangs
            await stream.close()
            await asyncio.to_thread(fake.wait_for, lambda f: len(f.requests_for("judge")) == 1)
            assert not held.done()
            assert control(fake, "POST", "/_fake/release", {"gate": "verdict"})[0] == 200
            return await held, pieces

    text, pieces = asyncio.run(run())
    assert text == "Held."
    assert pieces == ["critic ", "says: "]
    fake.wait_for(lambda f: len(f.disconnects) == 1)
    (critic,) = fake.requests_for("critic")
    assert critic.tokens_sent == 2 and critic.disconnected and not critic.completed


def test_persona_and_round_headers_are_recorded(fake: FakeOpenAI) -> None:
    async def run() -> None:
        async with client_for(fake) as client:
            await client.chat.completions.create(
                model="fake-model",
                messages=MESSAGES,
                extra_headers=persona_headers("judge", round_="2"),
            )

    asyncio.run(run())
    (record,) = fake.requests_for("judge")
    assert record.round == "2"
    assert record.headers["x-council-persona"] == "judge"
    assert record.to_dict()["persona"] == "judge"


@pytest.mark.parametrize(
    ("flag", "argument"),
    [
        ("reject_stream_options", {"stream_options": {"include_usage": True}}),
        ("reject_response_format", {"response_format": {"type": "json_object"}}),
    ],
)
def test_rejected_arguments_get_a_400(
    fake: FakeOpenAI, flag: str, argument: dict[str, Any]
) -> None:
    setattr(fake, flag, True)
    fake.script(None, Reply(text="Still here."))

    async def run() -> str:
        async with client_for(fake) as client:
            with pytest.raises(openai.BadRequestError) as caught:
                await ask(client, **argument)
            key = next(iter(argument))
            # Shaped like OpenAI's: the field is named in the structured `param`.
            assert f"Unknown parameter: '{key}'" in str(caught.value)
            assert caught.value.body["param"] == key
            assert caught.value.body["code"] == "unknown_parameter"
            return await ask(client)  # the scripted reply was not used up

    assert asyncio.run(run()) == "Still here."
    assert [r.status for r in fake.requests] == [400, 200]


def test_control_api_over_http(fake: FakeOpenAI) -> None:
    assert control(fake, "POST", "/_fake/default", {"tokens": 2}) == (200, {"ok": True})
    assert fake.default == Reply(tokens=2)
    replies = [{"text": "Over HTTP."}, {"status": 503, "error_message": "busy"}]
    status, _ = control(fake, "POST", "/_fake/script", {"persona": "critic", "replies": replies})
    assert status == 200
    status, _ = control(fake, "POST", "/_fake/settings", {"send_usage": False})
    assert status == 200 and fake.send_usage is False

    async def run() -> list[str]:
        async with client_for(fake) as client:
            first = await ask(client, "critic")
            with pytest.raises(openai.InternalServerError):
                await ask(client, "critic")
            return [first, await ask(client, "judge")]

    assert asyncio.run(run()) == ["Over HTTP.", "judge says: w1 w2"]
    status, stats = control(fake, "GET", "/_fake/stats")
    assert status == 200
    assert stats["requests"] == 3
    assert stats["peak_concurrency"] == 1 and stats["in_flight"] == 0
    assert stats["disconnects"] == []
    assert [r["status"] for r in stats["records"]] == [200, 503, 200]
    assert [r["persona"] for r in stats["records"]] == ["critic", "critic", "judge"]
    assert stats["records"][0]["body"]["messages"] == MESSAGES

    status, error = control(fake, "POST", "/_fake/default", {"no_such_field": 1})
    assert status == 400 and "no_such_field" in error["error"]["message"]
    assert control(fake, "GET", "/_fake/nothing")[0] == 404
    assert control(fake, "POST", "/_fake/reset") == (200, {"ok": True})
    assert control(fake, "GET", "/_fake/stats")[1]["requests"] == 0
    assert fake.requests == [] and fake.default == Reply() and fake.send_usage is True


def test_keep_alive_reuses_one_connection(fake: FakeOpenAI) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    body = json.dumps({"model": "m", "messages": MESSAGES, "stream": True})
    try:
        conn.request("POST", "/v1/chat/completions", body, persona_headers("judge"))
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Transfer-Encoding") == "chunked"
        assert response.getheader("Content-Type", "").startswith("text/event-stream")
        events = response.read().decode().split("\n\n")
        sock = conn.sock
        conn.request("GET", "/v1/models")
        models = json.loads(conn.getresponse().read())
        assert conn.sock is sock is not None  # same socket, still open
    finally:
        conn.close()
    assert events[-2:] == ["data: [DONE]", ""]
    assert json.loads(events[0].removeprefix("data: "))["object"] == "chat.completion.chunk"
    assert models == {
        "object": "list",
        "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}],
    }


def test_connection_close_is_honoured_and_the_stream_is_chunked(fake: FakeOpenAI) -> None:
    fake.default = Reply(text="a b")
    body = json.dumps({"model": "m", "messages": MESSAGES, "stream": True}).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    head, _, rest = raw_exchange(fake, request).partition(b"\r\n\r\n")  # to EOF: closed
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nConnection: close" in head and b"\r\nTransfer-Encoding: chunked" in head
    payloads = []
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        payloads.append(rest[:size])
        assert rest[size : size + 2] == b"\r\n"
        rest = rest[size + 2 :]
        if size == 0:
            break
    assert rest == b""
    assert payloads[-2:] == [b"data: [DONE]\n\n", b""]
    assert len(payloads) == 5  # two tokens, the stop chunk, [DONE], the terminator
    assert fake.requests[0].completed


def test_a_malformed_request_gets_a_400_and_a_closed_connection(fake: FakeOpenAI) -> None:
    response = raw_exchange(fake, b"NONSENSE\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 400 ")


def test_wait_for_times_out_with_a_description(fake: FakeOpenAI) -> None:
    with pytest.raises(AssertionError, match=r"still false after 0\.05s.*0 requests"):
        fake.wait_for(lambda f: len(f.requests) > 0, timeout=0.05)


def test_a_second_server_runs_side_by_side() -> None:
    with FakeOpenAI(default=Reply(tokens=1)) as other:
        assert other.port > 0
        with urllib.request.urlopen(f"{other.base_url}/models", timeout=5) as response:
            assert json.loads(response.read())["data"][0]["id"] == "fake-model"
        other.reset()
        assert other.default == Reply(tokens=1)  # reset goes back to the constructor's default


@pytest.mark.parametrize("code", [0, 3])
def test_run_mode_gives_the_child_the_url_and_its_exit_code(code: int) -> None:
    child = (
        "import os, sys, urllib.request\n"
        "url = os.environ['COUNCIL_BASE_URL']\n"
        "print(url)\n"
        "print(urllib.request.urlopen(url + '/models').read().decode())\n"
        f"sys.exit({code})\n"
    )
    result = subprocess.run(
        [*SERVER, "--run", sys.executable, "-c", child],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == code, result.stderr
    url, models = result.stdout.splitlines()
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    assert json.loads(models)["data"][0]["id"] == "fake-model"
    assert f"fake OpenAI server on {url}" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_mode_forwards_sigint_to_the_child() -> None:
    child = (
        "import signal, sys\n"
        "signal.signal(signal.SIGINT, lambda *_: sys.exit(7))\n"
        "print('ready', flush=True)\n"
        "signal.pause()\n"
    )
    proc = server_process("--run", sys.executable, "-c", child)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 7, err
    assert "Traceback" not in err


def test_foreground_server_writes_the_ready_file_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    proc = server_process("--port", "0", "--tokens", "2", "--ready-file", str(ready))
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("fake OpenAI server on http://127.0.0.1:")
        url = line.split()[-1]
        assert ready.read_text().strip() == url
        request = urllib.request.Request(
            f"{url}/chat/completions",
            data=json.dumps({"model": "m", "messages": MESSAGES}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            reply = json.loads(response.read())
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert reply["choices"][0]["message"]["content"] == "model says: w1 w2"
    assert proc.returncode == 0, err
    assert "POST /v1/chat/completions" in err  # not --quiet: requests are logged
    assert "Traceback" not in err


# -- odd and hostile servers (issue 13) -----------------------------------------------------


def raw_chat(
    fake: FakeOpenAI, persona: str, *, stream: bool = True, usage: bool = True
) -> tuple[int, dict[str, str], bytes]:
    """One chat completion over plain HTTP: status, headers (lower case), the body's bytes."""
    body: dict[str, Any] = {"model": "m", "messages": MESSAGES, "stream": stream}
    if usage:
        body["stream_options"] = {"include_usage": True}
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    try:
        conn.request(
            "POST", "/v1/chat/completions", json.dumps(body), {"X-Council-Persona": persona}
        )
        response = conn.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, response.read()
    finally:
        conn.close()


def sse_data(body: bytes) -> list[Any]:
    """The `data:` payloads of an event stream, JSON decoded ([DONE] kept as is)."""
    payloads = [line[6:] for line in body.decode().split("\n") if line.startswith("data: ")]
    return [p if p == "[DONE]" else json.loads(p) for p in payloads]


def test_scripted_events_go_out_verbatim(fake: FakeOpenAI) -> None:
    events = [chunk("Hi"), "data: {not json\n\n", [1, 2, 3], ": comment\n\n", DONE]
    fake.script("judge", Reply(events=events))
    status, headers, body = raw_chat(fake, "judge")
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    expected = (
        b"data: " + json.dumps(chunk("Hi"), separators=(",", ":")).encode() + b"\n\n"
        b"data: {not json\n\ndata: [1,2,3]\n\n: comment\n\ndata: [DONE]\n\n"
    )
    assert body == expected
    fake.wait_for(lambda f: f.requests[0].completed)  # recorded just after the last byte


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_reasoning_streams_before_the_answer(fake: FakeOpenAI, key: str) -> None:
    fake.script("judge", Reply(reasoning="Think first.", reasoning_key=key, text="Then answer."))
    _, _, body = raw_chat(fake, "judge")
    chunks = sse_data(body)
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1] if c != "[DONE]" and c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": None, key: "Think "}
    assert "".join(d.get(key) or "" for d in deltas) == "Think first."
    assert "".join(d.get("content") or "" for d in deltas) == "Then answer."
    last_thought = max(i for i, d in enumerate(deltas) if d.get(key))
    assert all(not d.get("content") for d in deltas[: last_thought + 1])
    usage = chunks[-2]["usage"]
    assert usage["completion_tokens"] == 4  # two words of reasoning, two of answer


def test_finish_reasons_and_usage_are_as_scripted(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(text="Cut", finish_reason="length"))
    fake.script("critic", Reply(text="Open", finish_reason=None, usage_body={"x": -1}))
    fake.script("skeptic", Reply(text=""))
    judge = sse_data(raw_chat(fake, "judge")[2])
    assert [c["choices"][0]["finish_reason"] for c in judge[:-2]] == [None, "length"]
    critic = sse_data(raw_chat(fake, "critic")[2])
    assert all(c["choices"][0]["finish_reason"] is None for c in critic[:-2])
    assert critic[-2]["usage"] == {"x": -1} and critic[-1] == "[DONE]"
    skeptic = sse_data(raw_chat(fake, "skeptic")[2])  # an empty answer: only the finish
    assert [c["choices"][0] for c in skeptic[:-2]] == [
        {"index": 0, "delta": {"role": "assistant"}, "logprobs": None, "finish_reason": "stop"}
    ]


def test_a_streamed_request_can_get_a_plain_json_completion(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(plain_json=True, text="At once.", reasoning="Hm."))
    status, headers, body = raw_chat(fake, "judge")
    assert status == 200 and headers["content-type"] == "application/json"
    data = json.loads(body)
    assert data["object"] == "chat.completion"
    message = data["choices"][0]["message"]
    assert (message["content"], message["reasoning_content"]) == ("At once.", "Hm.")
    assert data["choices"][0]["finish_reason"] == "stop" and data["usage"]["completion_tokens"] == 3


def test_a_raw_body_goes_out_with_its_content_type(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(body="<html>Log in</html>"))
    fake.script("critic", Reply(body="plain", content_type="text/plain"))
    status, headers, body = raw_chat(fake, "judge")
    assert (status, headers["content-type"], body) == (
        200,
        "text/html; charset=utf-8",
        b"<html>Log in</html>",
    )
    assert raw_chat(fake, "critic")[1]["content-type"] == "text/plain"


def test_error_fields_and_any_retry_after_are_sent_as_scripted(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(status=429, retry_after="nan"))
    fake.script(
        "critic",
        Reply(status=400, error_message="No.", error_param="response_format", error_code="x"),
    )
    fake.script("skeptic", Reply(status=422, error_body={"detail": [{"loc": ["body", "n"]}]}))
    status, headers, _ = raw_chat(fake, "judge")
    assert (status, headers["retry-after"]) == (429, "nan")
    status, _, body = raw_chat(fake, "critic")
    assert json.loads(body)["error"] == {
        "message": "No.",
        "type": "invalid_request_error",
        "param": "response_format",
        "code": "x",
    }
    status, _, body = raw_chat(fake, "skeptic")
    assert (status, json.loads(body)) == (422, {"detail": [{"loc": ["body", "n"]}]})


CONTROL_TEXT = (
    "  indented\x1b]52;c;cGF5bG9hZA==\x07 title\x1b]0;pwned\x07 "
    "\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\ \x1b[2J\x1b[1A\x1b[2K "
    "half \ud83d end\n"
)


def test_any_text_passes_through_intact(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(text=CONTROL_TEXT), Reply(text=CONTROL_TEXT, plain_json=True))

    async def run() -> tuple[str, str]:
        async with client_for(fake) as client:
            streamed = await ask(client, "judge")
            whole = await client.chat.completions.create(
                model="m", messages=MESSAGES, extra_headers=persona_headers("judge")
            )
            return streamed, whole.choices[0].message.content or ""

    assert asyncio.run(run()) == (CONTROL_TEXT, CONTROL_TEXT)


def test_hostile_modes_over_the_control_api(fake: FakeOpenAI) -> None:
    replies = [
        {"events": [chunk("a"), "data: {oops\n\n", "data: [DONE]\n\n"]},
        {"text": "x", "finish_reason": None, "usage_body": {"prompt_tokens": "lots"}},
        {"reasoning": "hm", "reasoning_key": "reasoning", "plain_json": True},
        {"body": "<p>portal</p>"},
        {"status": 429, "retry_after": "-3", "error_param": "p", "error_code": "c"},
    ]
    assert (
        control(fake, "POST", "/_fake/script", {"persona": "judge", "replies": replies})[0] == 200
    )
    assert b"data: {oops" in raw_chat(fake, "judge")[2]
    assert sse_data(raw_chat(fake, "judge")[2])[-2]["usage"] == {"prompt_tokens": "lots"}
    message = json.loads(raw_chat(fake, "judge")[2])["choices"][0]["message"]
    assert message["reasoning"] == "hm"
    assert raw_chat(fake, "judge")[2] == b"<p>portal</p>"
    status, headers, body = raw_chat(fake, "judge")
    assert (status, headers["retry-after"], json.loads(body)["error"]["param"]) == (429, "-3", "p")
