"""`council serve` as a real process, driven by the openai SDK (sync and async, streamed and
not) against the fake upstream: answers, usage sums, progress, history, conversations."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fake_openai import FakeOpenAI, Reply, _prompt_tokens
from tests.helpers import history_rows, invoke
from tests.serve_helpers import Served, council_serve

QUESTION = [{"role": "user", "content": "Ship on Friday?"}]
ARBITER_TEXT = "arbiter says: w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12"


@pytest.fixture
def served(fake: FakeOpenAI) -> Iterator[Served]:
    with council_serve("--base-url", fake.base_url) as server:
        yield server


def client(served: Served, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key="unused", max_retries=0, **options)


def upstream_usage(fake: FakeOpenAI) -> tuple[int, int]:
    """Prompt tokens the fake reported (in the usage of each stream it finished) and the
    answer tokens it sent, over every request: a call cancelled part-way counts what it
    streamed (its prompt's count never came)."""
    prompt = sum(_prompt_tokens(r.body or {}) for r in fake.requests if r.completed)
    completion = sum(r.tokens_sent for r in fake.requests)
    return prompt, completion


def test_models_lists_council_and_every_preset(served: Served) -> None:
    ids = [m.id for m in client(served).models.list()]
    assert ids[0] == "council"
    assert {"review", "decision", "brainstorm", "red-team"} <= set(ids)
    assert client(served).models.retrieve("review").id == "review"
    with pytest.raises(openai.NotFoundError):
        client(served).models.retrieve("no-such-council")


def test_a_whole_completion_sums_every_call_and_carries_the_council(
    served: Served, fake: FakeOpenAI
) -> None:
    answer = client(served).chat.completions.create(model="council", messages=QUESTION)
    assert answer.choices[0].message.content == ARBITER_TEXT
    assert answer.choices[0].finish_reason == "stop"
    # judge, critic, skeptic and the synthesis: four calls, every token counted.
    assert len(fake.requests) == 4
    prompt, completion = upstream_usage(fake)
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (prompt, completion)
    assert answer.usage.total_tokens == prompt + completion
    council = answer.model_extra["council"]
    assert [a["persona"] for a in council["answers"]] == ["judge", "critic", "skeptic"]
    assert council["verdict"]["text"] == ARBITER_TEXT
    assert council["failures"] == []
    rows = history_rows("SELECT id, command, status FROM runs")
    assert [(r["id"], r["command"]) for r in rows] == [(council["run_id"], "serve")]
    # `council stats` covers the server's runs as any other.
    stats = invoke("stats")
    assert stats.exit_code == 0 and stats.stdout.startswith("1 run")
    assert all(persona in stats.stdout for persona in ("judge", "critic", "skeptic", "arbiter"))


def test_a_stream_sends_progress_as_reasoning_then_the_synthesis_as_content(
    served: Served, fake: FakeOpenAI
) -> None:
    stream = client(served).chat.completions.create(model="council", messages=QUESTION, stream=True)
    content, reasoning, last = [], [], None
    for chunk in stream:
        last = chunk
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        content.append(delta.content or "")
        reasoning.append((delta.model_extra or {}).get("reasoning_content") or "")
    assert "".join(content) == ARBITER_TEXT
    progress = "".join(reasoning)
    for persona in ("judge", "critic", "skeptic"):
        assert f"{persona} answered" in progress
    assert "arbiter is writing the synthesis" in progress
    assert last is not None and last.choices[0].finish_reason == "stop"
    prompt, completion = upstream_usage(fake)
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (prompt, completion)
    assert last.model_extra["council"]["verdict"]["text"] == ARBITER_TEXT


def test_a_preset_that_deliberates_streams_its_rounds_and_final_verdict(
    served: Served, fake: FakeOpenAI
) -> None:
    async def ask() -> tuple[str, str, Any]:
        async with openai.AsyncOpenAI(
            base_url=served.base_url, api_key="unused", max_retries=0
        ) as aclient:
            stream = await aclient.chat.completions.create(
                model="review", messages=QUESTION, stream=True
            )
            content, reasoning, last = "", "", None
            async for chunk in stream:
                last = chunk
                delta = chunk.choices[0].delta
                content += delta.content or ""
                reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
            return content, reasoning, last

    content, reasoning, last = asyncio.run(ask())
    # The fake's verdict converges in round 2: its synthesis is the answer.
    assert content == ARBITER_TEXT
    assert "round 2 started" in reasoning
    assert "round 2 verdict: converged" in reasoning
    assert last.model_extra["council"]["mode"] == "deliberate"
    assert last.model_extra["council"]["verdict"]["converged"] is True
    prompt, completion = upstream_usage(fake)
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (prompt, completion)
    rows = history_rows("SELECT command, preset FROM runs")
    assert [(r["command"], r["preset"]) for r in rows] == [("serve", "review")]


def test_async_whole_completion_passes_system_conversation_and_options(
    served: Served, fake: FakeOpenAI
) -> None:
    async def ask() -> Any:
        async with openai.AsyncOpenAI(
            base_url=served.base_url, api_key="unused", max_retries=0
        ) as aclient:
            return await aclient.chat.completions.create(
                model="council",
                messages=[
                    {"role": "system", "content": "Answer in French."},
                    {"role": "user", "content": "Is Rust fast?"},
                    {"role": "assistant", "content": "Yes, very."},
                    {"role": "user", "content": "And safe?"},
                ],
                temperature=0.25,
                max_tokens=300,
            )

    answer = asyncio.run(ask())
    assert answer.choices[0].message.content == ARBITER_TEXT
    members = [r for r in fake.requests if r.persona in ("judge", "critic", "skeptic")]
    assert len(members) == 3
    for request in members:
        body = request.body or {}
        system, user = body["messages"][0], body["messages"][-1]
        assert system["role"] == "system" and system["content"].endswith("Answer in French.")
        assert '<message role="user">\nIs Rust fast?\n</message>' in user["content"]
        assert '<message role="assistant">\nYes, very.\n</message>' in user["content"]
        assert user["content"].rstrip().endswith("And safe?")
        assert body["temperature"] == 0.25
        assert body["max_tokens"] == 300


def test_usage_counts_the_speculative_round_a_verdict_cancelled(
    served: Served, fake: FakeOpenAI
) -> None:
    members = ("critic", "security", "minimalist", "pragmatist")  # the review preset
    verdict = {"converged": True, "confidence": 0.95, "synthesis": "Ship it.", "dissent": []}
    # Round 1's verdict takes a while and ends the council; round 2, started speculatively
    # meanwhile, is streaming slowly and is cancelled by it.
    fake.script("arbiter", Reply(text=json.dumps(verdict), header_delay=0.5), round=1)
    for persona in members:
        fake.script(persona, Reply(tokens=400, token_delay=0.02), round=2)
    answer = client(served).chat.completions.create(model="review", messages=QUESTION)
    assert answer.choices[0].message.content == "Ship it."
    cancelled = [r for r in fake.requests if r.round == "2"]
    assert len(cancelled) == 4 and not any(r.completed for r in cancelled)
    fake.wait_for(lambda f: all(r.disconnected for r in f.requests if r.round == "2"))
    finished = sum(r.tokens_sent for r in fake.requests if r.completed)
    streamed = sum(r.tokens_sent for r in cancelled)
    assert streamed > 0
    assert answer.usage is not None
    # The cancelled calls' tokens are in: more than the finished calls' alone, and no
    # more than the fake sent in all.
    assert finished < answer.usage.completion_tokens <= finished + streamed


def test_council_serve_serves_the_mcp_tools_at_slash_mcp(fake: FakeOpenAI, served: Served) -> None:
    """The MCP tools, mounted by `council serve` itself: the SDK's streamable HTTP client
    lists them and asks a council through them, on the server's upstream."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    url = served.base_url.removesuffix("/v1") + "/mcp"

    async def main() -> tuple[set[str], Any]:
        async with (
            streamable_http_client(url) as (read, write),
            ClientSession(read, write) as session,
        ):
            await asyncio.wait_for(session.initialize(), 30)
            tools = await asyncio.wait_for(session.list_tools(), 30)
            result = await asyncio.wait_for(
                session.call_tool("ask", {"question": "Over /mcp?", "personas": ["judge"]}), 60
            )
            return {t.name for t in tools.tools}, result

    names, result = asyncio.run(main())
    assert {"ask", "deliberate", "presets", "recent_runs", "show_run"} <= names
    assert not result.is_error
    assert result.structured_content is not None and result.structured_content["run_id"]
    asked = [r for r in fake.requests if r.persona == "judge"]
    assert asked and "Over /mcp?" in json.dumps(asked[0].body)
    rows = history_rows("SELECT command FROM runs")
    assert [r["command"] for r in rows] == ["mcp"]
