"""The public Python API (`from council import Council`) against the fake server: ask,
deliberate, stream and their async twins; the `--json` document; the history; a run
cancelled from outside closes its streams; nothing written to the terminal."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from council import Council
from council.errors import EndpointError, UsageError
from tests.fake_openai import Reply
from tests.helpers import history_db_path, history_rows, invoke

# Fields that differ between two runs of the same script: ids, clocks, durations.
VOLATILE = {"run_id", "wall", "sum_of_calls", "latency", "ttft", "queued", "saved"}
VOLATILE |= {"sequential_estimate", "started_at", "finished_at", "at", "time"}


def _steady(value: Any) -> Any:
    """A document without what differs between two runs of the same script."""
    if isinstance(value, dict):
        return {k: _steady(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_steady(v) for v in value]
    return value


def _council(fake: Any, *personas: str, **arguments: Any) -> Council:
    return Council(
        personas=list(personas or ("judge", "critic")),
        base_url=fake.base_url,
        model="m",
        **arguments,
    )


def test_the_one_line_from_the_issue_works_in_a_fresh_process(fake, capfd):
    line = (
        "from council import Council; print(Council(personas=['judge','critic'], "
        f"base_url={fake.base_url!r}, model='m').ask('q').answer)"
    )
    done = subprocess.run(
        [sys.executable, "-c", line], capture_output=True, text=True, timeout=60, env=os.environ
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "arbiter says: w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12\n"
    assert done.stderr == ""  # nothing on the terminal
    assert sorted(r.persona for r in fake.requests) == ["arbiter", "critic", "judge"]


def test_import_council_loads_neither_the_api_nor_openai():
    script = (
        "import sys, council; print(sorted(m for m in sys.modules "
        "if m in ('openai', 'httpx', 'rich') or m.startswith('council.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_ask_answers_with_the_members_answers_usage_and_history(fake, capfd):
    result = _council(fake).ask("Is it safe?")
    assert result.answer.text == "arbiter says: w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12"
    assert result.answer.persona == "arbiter"
    assert result.answer.details["missing"] == []
    assert [a.persona for a in result.answers] == ["judge", "critic"]
    assert result.answers[0].text.startswith("judge says:")
    assert result.exit_code == 0 and result.status == "ok"
    assert result.usage["calls"] == 3
    sent = sum(r.tokens_sent for r in fake.requests)
    assert result.tokens_out == sent
    rows = history_rows("SELECT id, command, status FROM runs")
    assert [(r["id"], r["command"], r["status"]) for r in rows] == [(result.run_id, "api", "ok")]
    assert capfd.readouterr() == ("", "")


def test_history_false_records_nothing_and_command_names_the_run(fake):
    assert _council(fake, history=False).ask("q").run_id is None
    assert not history_db_path().exists()
    served = _council(fake, command="serve").ask("q")
    rows = history_rows("SELECT id, command FROM runs")
    assert [(r["id"], r["command"]) for r in rows] == [(served.run_id, "serve")]


def test_to_dict_is_the_cli_json_document_of_the_same_run(fake):
    fake.script("critic", Reply(status=500, error_message="boom"))
    cli = invoke(
        "oracle", "--json", "-s", "-p", "judge,critic", "--base-url", fake.base_url,
        "--model", "m", "--retries", "0", "q",
    )  # fmt: skip
    document = json.loads(cli.stdout)
    fake.reset()
    fake.script("critic", Reply(status=500, error_message="boom"))
    result = _council(fake, retries=0).ask("q", synthesize=True)
    assert result.exit_code == cli.exit_code == 3
    assert _steady(result.to_dict()) == _steady(document)
    assert result.to_dict()["errors"][0]["persona"] == "critic"


def test_deliberate_speculative_counts_the_cancelled_work(fake):
    # Round 3 starts while round 2's verdict is asked; the verdict converges, so
    # round 3 is cancelled: its tokens count in the usage, not in the answer.
    fake.script("judge", Reply(hang_after=2), round=3)
    fake.script("critic", Reply(hang_after=2), round=3)
    result = _council(fake).deliberate("q", rounds=3, speculative=True)
    document = result.to_dict()
    assert document["settings"]["speculative"] is True
    assert document["stop_reason"] == "converged"
    assert result.answer.text is not None and result.answer.details["round"] == 2
    assert [a.persona for a in result.answers] == ["judge", "critic"]
    assert result.usage["calls"] == len(document["timeline"])
    discarded = [c for c in document["timeline"] if not c["kept"]]
    assert discarded and result.usage["calls"] > sum(c["kept"] for c in document["timeline"])
    assert {r.persona for r in fake.disconnects} >= {"judge", "critic"}


def test_async_twins_run_side_by_side_on_one_loop(fake):
    council = _council(fake)

    async def both() -> tuple[Any, Any]:
        return await asyncio.gather(council.aask("q"), council.adeliberate("q", rounds=2))

    asked, deliberated = asyncio.run(both())
    assert asked.to_dict()["command"] == "oracle"
    assert deliberated.to_dict()["command"] == "deliberate"
    assert asked.answer.text and deliberated.answer.text
    assert asked.run_id != deliberated.run_id


def test_stream_gives_every_event_the_arbiters_deltas_and_the_result(fake):
    council = _council(fake)

    async def read() -> tuple[list[Any], Any]:
        stream = council.stream("q")
        events = [event async for event in stream]
        return events, stream.result

    events, result = asyncio.run(read())
    kinds = [e.kind for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    written = "".join(e.text for e in events if e.kind == "text_delta" and e.role == "arbiter")
    assert written == result.answer.text
    assert {e.persona for e in events if e.kind == "text_delta"} == {"judge", "critic", "arbiter"}


def test_leaving_a_stream_cancels_every_call_of_the_run(fake):
    for persona in ("judge", "critic"):
        fake.script(persona, Reply(hang_after=1))
    council = _council(fake)

    async def leave() -> None:
        async for event in council.stream("q"):
            if event.kind == "text_delta":
                break
        # The loop is free: the stream's iterator is closed, and the run with it.
        await asyncio.to_thread(fake.wait_for, lambda f: len(f.disconnects) == 2, 10)

    asyncio.run(leave())
    assert {r.persona for r in fake.disconnects} == {"judge", "critic"}
    assert not any(r.persona == "arbiter" for r in fake.requests)
    rows = history_rows("SELECT status FROM runs")
    assert [r["status"] for r in rows] == ["interrupted"]


def test_cancelling_the_task_running_aask_cancels_the_run(fake):
    for persona in ("judge", "critic"):
        fake.script(persona, Reply(hang=True))
    council = _council(fake)

    async def cancel() -> None:
        task = asyncio.create_task(council.aask("q"))
        await asyncio.to_thread(fake.wait_for, lambda f: f.in_flight == 2, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Every stream is closed by the time the cancellation comes back.
        await asyncio.to_thread(fake.wait_for, lambda f: len(f.disconnects) == 2, 10)

    asyncio.run(cancel())
    rows = history_rows("SELECT status FROM runs")
    assert [r["status"] for r in rows] == ["interrupted"]


def test_system_options_and_conversation_reach_every_member(fake):
    council = _council(fake, system="Answer in French.", options={"temperature": 0.2})
    conversation = [
        {"role": "user", "content": "Which database?"},
        {"role": "assistant", "content": "Postgres."},
    ]
    council.ask("And for the cache?", conversation=conversation, system="Be terse.",
                options={"seed": 7}, synthesize=False)  # fmt: skip
    assert sorted(r.persona for r in fake.requests) == ["critic", "judge"]
    for request in fake.requests:
        body = request.body
        system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
        assert system.endswith("Answer in French.\n\nBe terse.")
        assert body["temperature"] == 0.2 and body["seed"] == 7
        assert user.index("Which database?") < user.index("Postgres.")
        assert user.index("Postgres.") < user.index("And for the cache?")


def test_errors_are_the_error_tree(fake, capfd):
    with pytest.raises(UsageError, match="council sets model itself"):
        _council(fake, options={"model": "x"})
    with pytest.raises(UsageError, match="conversation turn 1"):
        _council(fake).ask("q", conversation=[{"role": "tool", "content": "x"}])
    with pytest.raises(UsageError, match="--vote and --rank"):
        _council(fake, "judge", "critic", "skeptic").ask("q", vote=True, rank=True)
    for persona in ("judge", "critic"):
        fake.script(persona, Reply(status=404, error_message="no such model"))
    with pytest.raises(EndpointError, match="all 2 personas failed"):
        _council(fake, retries=0).ask("q")
    assert capfd.readouterr() == ("", "")


def test_from_preset_and_api_key(fake, monkeypatch):
    council = Council.from_preset("review", base_url=fake.base_url, model="m", api_key="sk-x1")
    assert council.personas == ["critic", "security", "minimalist", "pragmatist"]
    council.ask("q", synthesize=False)
    keys = {r.headers.get("authorization") for r in fake.requests}
    assert keys == {"Bearer sk-x1"}
