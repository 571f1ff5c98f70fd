"""`council serve` when things go wrong: each error status, keys, disconnects, SIGTERM.

A real server process against the fake upstream, driven by the openai SDK (and httpx
where the SDK would hide what is tested: a body too large, a client that leaves).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator

import httpx2 as httpx
import openai
import pytest

from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import history_rows
from tests.serve_helpers import Served, council_serve

QUESTION = [{"role": "user", "content": "Ship on Friday?"}]
MEMBERS = ("judge", "critic", "skeptic")
UPSTREAM_KEY = "sk-upstream-secret-0123456789abcdef"


def client(served: Served, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key=key, max_retries=0)


def chat_body(model: str = "council", stream: bool = False) -> dict[str, object]:
    return {"model": model, "messages": QUESTION, "stream": stream}


@pytest.fixture
def served(fake: FakeOpenAI) -> Iterator[Served]:
    with council_serve("--base-url", fake.base_url, "--retries", "0") as server:
        yield server


def test_an_unknown_model_is_404(served: Served) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client(served).chat.completions.create(model="no-such-council", messages=QUESTION)
    assert caught.value.code == "model_not_found"
    assert "GET /v1/models" in caught.value.message
    # Any other path is a 404 of the same shape; a wrong method, a 405.
    missing = httpx.get(f"{served.base_url}/completions", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = httpx.get(f"{served.base_url}/chat/completions", timeout=10)
    assert wrong.status_code == 405 and "GET" in wrong.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"model": "council"}, "'messages'"),
        ({"model": "council", "messages": [{"role": "assistant", "content": "hi"}]}, "last"),
        ({"model": "council", "messages": QUESTION, "temperature": "hot"}, "'temperature'"),
        ({"messages": QUESTION}, "'model'"),
    ],
)
def test_a_bad_request_is_400_saying_what(
    served: Served, fake: FakeOpenAI, body: dict[str, object], said: str
) -> None:
    response = httpx.post(f"{served.base_url}/chat/completions", json=body, timeout=10)
    assert response.status_code == 400
    assert said in response.json()["error"]["message"]
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert fake.requests == []


def test_a_body_not_json_is_400(served: Served) -> None:
    response = httpx.post(f"{served.base_url}/chat/completions", content=b"{nope", timeout=10)
    assert response.status_code == 400


def test_a_body_over_the_cap_is_413_and_nothing_is_asked(fake: FakeOpenAI) -> None:
    big = [{"role": "user", "content": "x" * 4096}]
    with council_serve("--base-url", fake.base_url, "--max-body-kb", "2") as served:
        url = f"{served.base_url}/chat/completions"
        response = httpx.post(url, json={"model": "council", "messages": big}, timeout=10)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"

        # Without a Content-Length (chunked), the cap holds as the body arrives.
        def chunks() -> Iterator[bytes]:
            yield json.dumps({"model": "council", "messages": big}).encode()

        response = httpx.post(url, content=chunks(), timeout=10)
        assert response.status_code == 413
        # A body within the cap goes through.
        answer = client(served).chat.completions.create(model="council", messages=QUESTION)
        assert answer.choices[0].message.content
    assert len(fake.requests) == 4


def test_every_member_failing_is_502_quoting_them_without_the_key(fake: FakeOpenAI) -> None:
    message = f"Incorrect API key provided: {UPSTREAM_KEY}"
    fake.default = Reply(status=401, error_message=message)
    env = {"OPENAI_API_KEY": UPSTREAM_KEY}
    with council_serve("--base-url", fake.base_url, "--retries", "0", env=env) as served:
        with pytest.raises(openai.APIStatusError) as caught:
            client(served).chat.completions.create(model="council", messages=QUESTION)
        assert caught.value.status_code == 502
        text = caught.value.response.text
        assert UPSTREAM_KEY not in text
        for persona in MEMBERS:
            assert f"{persona} (auth)" in text
        # Streamed, the same error is the stream's last event.
        with pytest.raises(openai.APIError) as streamed:
            for _ in client(served).chat.completions.create(
                model="council", messages=QUESTION, stream=True
            ):
                pass
        assert "every member failed" in str(streamed.value)
        assert UPSTREAM_KEY not in str(streamed.value)
    assert all(r.headers.get("authorization") == f"Bearer {UPSTREAM_KEY}" for r in fake.requests)


def test_a_council_past_the_deadline_is_504_and_its_calls_are_closed(fake: FakeOpenAI) -> None:
    fake.default = Reply(hang=True)
    with council_serve("--base-url", fake.base_url, "--deadline", "1") as served:
        with pytest.raises(openai.APIStatusError) as caught:
            client(served).chat.completions.create(model="council", messages=QUESTION)
        assert caught.value.status_code == 504
        assert "--deadline" in caught.value.message
        fake.wait_for(lambda f: len(f.disconnects) == 3, timeout=10)


def test_a_full_queue_is_429(fake: FakeOpenAI) -> None:
    fake.default = Reply(gate="go")
    args = ("--base-url", fake.base_url, "--max-runs", "1", "--max-queue", "0")
    with council_serve(*args) as served:
        first: list[object] = []
        thread = threading.Thread(
            target=lambda: first.append(
                client(served).chat.completions.create(model="council", messages=QUESTION)
            )
        )
        thread.start()
        fake.wait_for(lambda f: len(f.requests) == 3, timeout=20)
        with pytest.raises(openai.RateLimitError) as caught:
            client(served).chat.completions.create(model="council", messages=QUESTION)
        assert caught.value.response.headers["retry-after"] == "1"
        fake.release("go")
        thread.join(timeout=20)
        assert len(first) == 1


def test_a_client_that_goes_away_cancels_every_call_of_its_council(fake: FakeOpenAI) -> None:
    fake.default = Reply(hang_after=2)
    with council_serve("--base-url", fake.base_url) as served:
        url = f"{served.base_url}/chat/completions"
        with httpx.stream("POST", url, json=chat_body(stream=True), timeout=20) as response:
            assert response.status_code == 200
            fake.wait_for(lambda f: sum(r.tokens_sent for r in f.requests) == 6, timeout=20)
        # The client closed its connection: the three streams upstream close with it.
        fake.wait_for(lambda f: len(f.disconnects) == 3, timeout=10)
        # Nothing more is asked: no synthesis of answers that never came.
        assert {r.persona for r in fake.requests} == set(MEMBERS)
        assert len(fake.requests) == 3
        assert served.stop() == 0
    assert len(fake.requests) == 3
    rows = history_rows("SELECT command, status FROM runs")
    assert [r["command"] for r in rows] == ["serve"]
    assert rows[0]["status"] != "running"


def test_a_whole_completion_whose_client_leaves_is_cancelled_too(fake: FakeOpenAI) -> None:
    fake.default = Reply(hang=True)
    with council_serve("--base-url", fake.base_url) as served:
        url = f"{served.base_url}/chat/completions"
        done = threading.Event()

        def ask() -> None:
            # The client gives up after a second: its connection closes.
            with contextlib.suppress(httpx.ReadTimeout):
                httpx.post(url, json=chat_body(), timeout=httpx.Timeout(30, read=1.0))
            done.set()

        threading.Thread(target=ask, daemon=True).start()
        fake.wait_for(lambda f: len(f.requests) == 3, timeout=20)
        assert done.wait(20)
        fake.wait_for(lambda f: len(f.disconnects) == 3, timeout=10)


def test_a_non_loopback_bind_needs_a_key_and_checks_it(fake: FakeOpenAI) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "council.cli", "serve", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1
    assert "--api-key-env" in refused.stderr and "Traceback" not in refused.stderr

    key = "serve-key-0123456789"
    args = ("--host", "0.0.0.0", "--api-key-env", "SERVE_KEY", "--base-url", fake.base_url)
    with council_serve(*args, env={"SERVE_KEY": key}) as served:
        local = served.base_url.replace("0.0.0.0", "127.0.0.1")
        reached = Served(served.process, local, served.lines)
        for wrong in ("nope", key + "x", ""):
            with pytest.raises(openai.AuthenticationError) as caught:
                client(reached, wrong or "x").models.list()
            assert caught.value.code == "invalid_api_key"
        response = httpx.get(f"{local}/models", timeout=10)
        assert response.status_code == 401
        answer = client(reached, key).chat.completions.create(model="council", messages=QUESTION)
        assert answer.choices[0].message.content
        assert key not in json.dumps(answer.model_dump())
    # Requests turned away never reached the upstream.
    assert len(fake.requests) == 4


def test_without_the_key_variable_set_it_says_so_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "council.cli", "serve", "--api-key-env", "NO_SUCH_VAR_SET"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "NO_SUCH_VAR_SET" in result.stderr


def test_sigterm_lets_a_running_council_finish_within_the_grace_period(fake: FakeOpenAI) -> None:
    fake.default = Reply(gate="go")
    with council_serve("--base-url", fake.base_url, "--grace", "30") as served:
        answers: list[str] = []
        thread = threading.Thread(
            target=lambda: answers.append(
                client(served)
                .chat.completions.create(model="council", messages=QUESTION)
                .choices[0]
                .message.content
                or ""
            )
        )
        thread.start()
        fake.wait_for(lambda f: len(f.requests) == 3, timeout=20)
        served.process.send_signal(15)
        served.wait_for_line("stopping; 1 council running")
        fake.release("go")
        thread.join(timeout=30)
        assert served.process.wait(timeout=30) == 0
    assert answers and answers[0].startswith("arbiter says")
    rows = history_rows("SELECT status FROM runs")
    assert [r["status"] for r in rows] == ["ok"]


def test_sigterm_past_the_grace_period_cancels_records_and_exits_0(fake: FakeOpenAI) -> None:
    fake.default = Reply(hang_after=1)
    with council_serve("--base-url", fake.base_url, "--grace", "0") as served:
        url = f"{served.base_url}/chat/completions"
        with httpx.stream("POST", url, json=chat_body(stream=True), timeout=20) as response:
            fake.wait_for(lambda f: sum(r.tokens_sent for r in f.requests) == 3, timeout=20)
            served.process.send_signal(15)
            with pytest.raises(httpx.HTTPError):
                for _ in response.iter_lines():
                    pass
        assert served.process.wait(timeout=30) == 0
    fake.wait_for(lambda f: len(f.disconnects) == 3, timeout=10)
    rows = history_rows("SELECT command, status FROM runs")
    assert [r["command"] for r in rows] == ["serve"]
    assert rows[0]["status"] not in ("running", "ok")


def test_ctrl_c_stops_an_idle_server_with_130(fake: FakeOpenAI) -> None:
    with council_serve("--base-url", fake.base_url) as served:
        served.process.send_signal(2)
        assert served.process.wait(timeout=30) == 130
        assert "stopping; 0 councils running" in served.stderr()
        assert "Traceback" not in served.stderr()
