"""The client's non-streamed call (`stream=False`, for `council batch`), against the fake server.

The whole answer in one `chat.completion`: the same StreamResult (ttft None), the same
validation of what the server sends, the same retries, re-sends and error kinds, and no
first-token limit (nothing comes before the whole answer).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest

from council.config.endpoint_settings import EndpointSettings
from council.endpoint.client import CallError, EndpointClient, StreamResult
from council.engine.model import CallSpec
from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import resolved_endpoint
from tests.test_hostile_server import quick_first_token


class Observer:
    """A CallObserver that keeps what it was told, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def on_start(self) -> None:
        self.seen.append(("start", None))

    def on_first_token(self, ttft: float) -> None:
        self.seen.append(("first_token", ttft))

    def on_reasoning(self, text: str) -> None:
        self.seen.append(("reasoning", text))

    def on_delta(self, text: str) -> None:
        self.seen.append(("delta", text))

    def on_retry(self, attempt: int, error: CallError, wait: float) -> None:
        self.seen.append(("retry", error.kind))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.seen]


@dataclasses.dataclass(frozen=True)
class UnstreamedSpec(CallSpec):
    """A call that says itself that it wants the whole answer (as batch's may)."""

    stream: bool = False


@dataclasses.dataclass(frozen=True)
class StreamedSpec(CallSpec):
    """A call that says itself that it wants its tokens as they come."""

    stream: bool = True


def settings_for(fake: FakeOpenAI, **changes: Any) -> EndpointSettings:
    return dataclasses.replace(resolved_endpoint(fake.base_url), **changes)


def spec(persona: str = "judge", cls: type[CallSpec] = CallSpec, **fields: Any) -> CallSpec:
    return cls(
        call_id=f"r1-{persona}",
        persona=persona,
        messages=({"role": "user", "content": "q"},),
        model="m",
        **fields,
    )


def ask(
    settings: EndpointSettings, call: CallSpec, *, stream: bool | None = False
) -> tuple[StreamResult | CallError, Observer]:
    """One call through the real client; its result (or the CallError) and what it reported."""
    observer = Observer()

    async def main() -> StreamResult | CallError:
        async with EndpointClient(settings, max_concurrency=2) as client:
            try:
                return await client.complete(call, observer, stream=stream)
            except CallError as error:
                return error

    return asyncio.run(main()), observer


def test_the_whole_answer_comes_in_one_completion(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(text="Ruling: yes, and here is why."))
    result, observer = ask(settings_for(fake), spec())
    assert isinstance(result, StreamResult), result
    assert result.text == "Ruling: yes, and here is why."
    assert result.ttft is None
    assert result.finish_reason == "stop"
    assert result.tokens_in is not None and result.tokens_out is not None
    assert result.tokens_out > 0
    assert result.retries == 0 and result.reasoning is None
    (request,) = fake.requests_for("judge")
    assert request.body is not None
    assert request.body["stream"] is False
    assert "stream_options" not in request.body  # only valid on a streamed request
    assert request.status == 200 and request.completed
    # No first token to report: the whole text at once.
    assert observer.seen == [("start", None), ("delta", "Ruling: yes, and here is why.")]


def test_a_request_may_ask_for_it_itself(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(text="Whole."))
    result, _ = ask(settings_for(fake), spec(cls=UnstreamedSpec), stream=None)
    assert isinstance(result, StreamResult) and result.text == "Whole."
    (request,) = fake.requests_for("judge")
    assert request.body is not None and request.body["stream"] is False


def test_the_default_still_streams(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(text="Streamed answer."))
    result, observer = ask(settings_for(fake), spec(), stream=None)
    assert isinstance(result, StreamResult) and result.text == "Streamed answer."
    assert result.ttft is not None
    assert "first_token" in observer.kinds()
    (request,) = fake.requests_for("judge")
    assert request.body is not None and request.body["stream"] is True


def test_a_client_made_not_to_stream_asks_every_call_whole(fake: FakeOpenAI) -> None:
    """`EndpointClient(stream=False)` (council batch's): whole answers unless a call says."""

    async def main() -> tuple[StreamResult | CallError, ...]:
        async with EndpointClient(settings_for(fake), 2, stream=False) as client:
            return (
                await client.complete(spec("judge"), Observer()),
                await client.complete(spec("critic", cls=StreamedSpec), Observer()),
            )

    whole, streamed = asyncio.run(main())
    assert isinstance(whole, StreamResult) and whole.ttft is None
    assert isinstance(streamed, StreamResult) and streamed.ttft is not None
    bodies = [r.body for r in fake.requests_for("judge") + fake.requests_for("critic")]
    assert [b["stream"] for b in bodies if b is not None] == [False, True]


@pytest.mark.parametrize("stream", [True, False])
def test_a_call_is_sent_as_the_sdk_sends_it(fake: FakeOpenAI, stream: bool) -> None:
    """Chat calls go out on the SDK client's HTTP client, with what the SDK would send."""
    settings = settings_for(fake, api_key="sk-sent", headers={"X-Title": "council"})
    result, _ = ask(settings, spec(temperature=0.5), stream=stream)
    assert isinstance(result, StreamResult), result
    (request,) = fake.requests_for("judge")
    assert request.path.endswith("/v1/chat/completions") and request.method == "POST"
    headers = request.headers
    assert headers["authorization"] == "Bearer sk-sent"
    assert headers["x-title"] == "council"  # the profile's own headers
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("AsyncOpenAI/Python")
    assert headers["x-stainless-lang"] == "python"
    assert headers["x-council-persona"] == "judge" and headers["x-council-round"] == "1"
    assert request.body is not None
    assert request.body["messages"] == [{"role": "user", "content": "q"}]
    assert (request.body["model"], request.body["temperature"]) == ("m", 0.5)


def test_reasoning_is_kept_apart_from_the_answer(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(reasoning="Let me think.", text="42"))
    result, observer = ask(settings_for(fake), spec())
    assert isinstance(result, StreamResult), result
    assert (result.text, result.reasoning) == ("42", "Let me think.")
    assert observer.kinds() == ["start", "reasoning", "delta"]


def test_no_first_token_limit_only_the_deadline(fake: FakeOpenAI) -> None:
    quick = quick_first_token(fake)  # a first-token limit of 0.5 s, a deadline of 20 s
    # 0.8 s before the first byte of the answer: a stream fails its first-token limit...
    fake.script("judge", Reply(text="Slow.", ttft=0.8))
    error, _ = ask(quick, spec(), stream=True)
    assert isinstance(error, CallError) and error.kind == "first_token_timeout", error
    # ...while the whole answer may take as long, within the call's deadline.
    fake.script("judge", Reply(text="Slow but whole.", ttft=0.8))
    result, _ = ask(quick, spec())
    assert isinstance(result, StreamResult), result
    assert result.text == "Slow but whole."
    # Past the deadline it fails as a deadline, not as a missing first token.
    fake.script("judge", Reply(text="Too slow.", ttft=3.0))
    error, _ = ask(dataclasses.replace(quick, timeout=0.6), spec())
    assert isinstance(error, CallError) and error.kind == "timeout", error


BAD_BODIES = {
    "not json": "{not json",
    "a list": "[1, 2, 3]",
    "choices of text": '{"choices": ["x"]}',
    "no choices": '{"object": "chat.completion"}',
    "message of text": '{"choices": [{"index": 0, "message": "oops"}]}',
    "content a number": '{"choices": [{"index": 0, "message": {"content": 12345}}]}',
    "finish_reason a number": (
        '{"choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": 7}]}'
    ),
}


@pytest.mark.parametrize("bad", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_a_malformed_completion_is_a_protocol_error_and_retried(fake: FakeOpenAI, bad: str) -> None:
    broken = Reply(body=bad, content_type="application/json")
    fake.script("judge", broken, Reply(text="Fine now."))
    result, observer = ask(settings_for(fake, retries=1), spec())
    assert isinstance(result, StreamResult), result
    assert result.text == "Fine now." and result.retries == 1
    assert ("retry", "protocol") in observer.seen
    assert len(fake.requests_for("judge")) == 2
    # With no retry left, the malformed answer is the call's error.
    fake.script("judge", broken)
    error, _ = ask(settings_for(fake, retries=0), spec())
    assert isinstance(error, CallError) and error.kind == "protocol", error


def test_usage_that_is_no_count_is_unknown(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(text="Counted?", usage_body={"prompt_tokens": "lots"}))
    result, _ = ask(settings_for(fake), spec())
    assert isinstance(result, StreamResult), result
    assert (result.tokens_in, result.tokens_out) == (None, None)


def test_an_error_in_a_200_body_is_a_server_error(fake: FakeOpenAI) -> None:
    body = json.dumps({"error": {"message": "model overloaded"}})
    fake.script("judge", Reply(body=body, content_type="application/json"))
    error, _ = ask(settings_for(fake, retries=0), spec())
    assert isinstance(error, CallError) and error.kind == "server_error", error
    assert "model overloaded" in error.message


def test_a_429_is_waited_out_and_sent_again(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(status=429, retry_after=0.05), Reply(text="After the wait."))
    result, _ = ask(settings_for(fake, retries=0), spec())
    assert isinstance(result, StreamResult), result
    assert result.text == "After the wait."
    assert (result.resends, result.retries) == (1, 0)
    assert [r.status for r in fake.requests_for("judge")] == [429, 200]
    assert all(r.body is not None and r.body["stream"] is False for r in fake.requests_for("judge"))


def test_a_server_error_is_retried_and_an_auth_error_is_not(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(status=500), Reply(text="Recovered."))
    result, _ = ask(settings_for(fake, retries=2), spec())
    assert isinstance(result, StreamResult) and result.retries == 1, result
    fake.reset()
    fake.script("judge", Reply(status=401), Reply(text="never asked"))
    error, _ = ask(settings_for(fake, retries=2), spec())
    assert isinstance(error, CallError) and error.kind == "auth", error
    assert len(fake.requests_for("judge")) == 1


def test_an_empty_answer_is_an_error(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(text=""))
    error, _ = ask(settings_for(fake, retries=0), spec())
    assert isinstance(error, CallError) and error.kind == "empty", error


def test_a_page_that_is_no_api_fails_at_once(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(body="<html>Log in</html>"))
    error, _ = ask(settings_for(fake, retries=2), spec())
    assert isinstance(error, CallError) and error.kind == "not_api", error
    assert len(fake.requests_for("judge")) == 1


def test_concurrent_calls_share_the_limiter(fake: FakeOpenAI) -> None:
    fake.default = Reply(ttft=0.2)
    settings = settings_for(fake, max_concurrency=2)
    calls = [spec(f"p{i}") for i in range(5)]

    async def main() -> list[StreamResult]:
        async with EndpointClient(settings, max_concurrency=2) as client:
            return await asyncio.gather(
                *(client.complete(c, Observer(), stream=False) for c in calls)
            )

    results = asyncio.run(main())
    assert [r.text.split(":")[0] for r in results] == [f"p{i} says" for i in range(5)]
    assert fake.peak_concurrency == 2
