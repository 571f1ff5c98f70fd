"""The Batch API path end to end against the fake server, and `prepare`/`collect`.

Upload, create, poll, download, map back by custom_id, split at the limits, resume
polling by id after an interruption (the fake's log shows no second batch), cancel.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from council.app.batch.api import (
    collect_outputs,
    prepare_requests,
    run_via_batch_api,
    split_custom_id,
)
from council.app.batch.items import BatchItem, read_items
from council.app.batch.output import OutputFile
from council.config.personas import Persona
from council.engine.plan import build_oracle_plan
from council.errors import EXIT_PARTIAL, EndpointError, UsageError
from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import history_rows, oracle, resolved_endpoint

JUDGE = Persona(name="judge", description="", system="You judge.", max_tokens=64)
CRITIC = Persona(name="critic", description="", system="You criticise.", temperature=0.2)


def _plan(fake: FakeOpenAI, *personas: Persona, arbiter: Persona | None = None) -> Any:
    return build_oracle_plan(
        query="",
        personas=list(personas or (JUDGE, CRITIC)),
        endpoint=resolved_endpoint(fake.base_url),
        arbiter=arbiter,
    )


def _items(count: int = 3) -> list[BatchItem]:
    ids = ["t-1", "a::b", "t-3", "t-4", "t-5"][:count]
    return [BatchItem(i, f"Question {n}?", {"team": f"x{n}"}, n) for n, i in enumerate(ids, 1)]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _run(fake: FakeOpenAI, out: Path, items: list[BatchItem] | None = None, **options: Any) -> Any:
    progress: list[str] = options.pop("progress_lines", [])
    with OutputFile(out) as writer:
        return asyncio.run(
            run_via_batch_api(
                items if items is not None else _items(),
                options.pop("plan", None) or _plan(fake),
                resolved_endpoint(fake.base_url),
                writer,
                poll_interval=0.01,
                progress=progress.append,
                identity="tickets.jsonl",
                **options,
            )
        )


async def _interrupt_while_polling(
    fake: FakeOpenAI, out: Path, first: Callable[[FakeOpenAI], bool] = lambda f: True
) -> None:
    """Start the batch, wait for `first` and for polling to begin, then Ctrl-C it."""
    with OutputFile(out) as writer:
        task = asyncio.create_task(
            run_via_batch_api(
                _items(),
                _plan(fake),
                resolved_endpoint(fake.base_url),
                writer,
                poll_interval=0.01,
                progress=lambda line: None,
                identity="tickets.jsonl",
            )
        )
        await asyncio.to_thread(fake.wait_for, lambda f: f.batches_created() == 1)
        await asyncio.to_thread(fake.wait_for, first)
        await asyncio.to_thread(
            fake.wait_for, lambda f: any(r.method == "GET" for r in f.batch_requests)
        )
        task.cancel()  # Ctrl-C while polling
        with pytest.raises(asyncio.CancelledError):
            await task


def _routes(fake: FakeOpenAI) -> list[str]:
    return [f"{r.method} {r.path.split('/')[2]}" for r in fake.batch_requests]


# -- prepare -------------------------------------------------------------------------------


def test_prepare_writes_a_line_per_persona_with_the_body_a_direct_call_sends(fake, tmp_path):
    result = oracle(fake, "-p", "judge,critic", "Is the moon made of cheese?")
    assert result.exit_code == 0, result.output
    sent = {r.persona: r.body for r in fake.requests}
    from council.config.personas import PersonaCatalog

    personas = PersonaCatalog.discover().resolve(["judge", "critic"])
    plan = _plan(fake, *personas)
    out = io.StringIO()
    item = BatchItem("q1", "Is the moon made of cheese?", {}, 1)
    assert prepare_requests([item], plan, out) == 2
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["custom_id"] for line in lines] == ["q1::judge", "q1::critic"]
    for line in lines:
        assert line["method"] == "POST" and line["url"] == "/v1/chat/completions"
        persona = split_custom_id(line["custom_id"])[1]
        direct = {k: v for k, v in sent[persona].items() if k not in ("stream", "stream_options")}
        assert line["body"] == direct
        assert "stream" not in line["body"]


def test_prepare_keeps_persona_settings_and_refuses_a_synthesis(fake):
    out = io.StringIO()
    prepare_requests(_items(1), _plan(fake), out)
    judge, critic = (json.loads(line)["body"] for line in out.getvalue().splitlines())
    assert judge["max_tokens"] == 64 and "temperature" not in judge
    assert critic["temperature"] == 0.2
    assert judge["messages"][0] == {"role": "system", "content": "You judge."}
    assert "Question 1?" in judge["messages"][1]["content"]
    with pytest.raises(UsageError, match="synthesis"):
        prepare_requests(_items(1), _plan(fake, JUDGE, arbiter=CRITIC), io.StringIO())


# -- collect -------------------------------------------------------------------------------


def _result(custom_id: str, text: str | None = None, status: int = 200, **extra: Any) -> str:
    if text is None:
        response = None
    else:
        body: Any = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "served-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
        }
        if status != 200:
            body = {"error": {"message": text, "type": "server_error"}}
        response = {"status_code": status, "request_id": "r", "body": body}
    return (
        json.dumps({"id": "vllm-1", "custom_id": custom_id, "response": response, **extra}) + "\n"
    )


def test_collect_turns_a_runner_output_into_item_lines_with_the_input_fields(tmp_path):
    source = tmp_path / "tickets.jsonl"
    source.write_text(
        "".join(
            json.dumps({"id": i, "query": f"q{i}", "team": f"team-{i}"}) + "\n"
            for i in ("t-1", "a::b", "t-3", "never-run")
        )
    )
    output = tmp_path / "outputs.jsonl"
    output.write_text(
        _result("a::b::critic", "Overloaded \x1b[2J", status=503)
        + _result("t-1::judge", "Yes.")
        + _result("a::b::judge", "No.")
        + _result("t-1::critic", "Maybe.")
        + _result("t-3::judge", None, error={"code": "invalid", "message": "bad body"})
        + _result("stranger::judge", "Who?")
        + "not json\n"
    )
    out = tmp_path / "verdicts.jsonl"
    with OutputFile(out) as writer:
        summary = collect_outputs(str(output), items_source=str(source), out=writer)
    assert (summary.ok, summary.failed, summary.missing, summary.unknown, summary.bad_lines) == (
        2,
        2,
        1,
        1,
        1,
    )
    assert summary.exit_code == EXIT_PARTIAL
    lines = {line["id"]: line for line in _lines(out)}
    assert list(lines) == ["t-1", "a::b", "t-3", "stranger"]  # input order, then the rest
    first = lines["t-1"]
    assert first["team"] == "team-t-1" and first["status"] == "ok"
    assert [(a["persona"], a["text"], a["model"]) for a in first["answers"]] == [
        ("judge", "Yes.", "served-model"),
        ("critic", "Maybe.", "served-model"),
    ]
    assert first["metrics"]["tokens_in"] == 20 and first["metrics"]["tokens_out"] == 6
    second = lines["a::b"]
    assert second["status"] == "failed"  # one persona failed: --retry-failed asks it again
    assert second["errors"] == [
        {"persona": "critic", "error_kind": "server_error", "message": "503: Overloaded"}
    ]
    assert lines["t-3"]["status"] == "failed"
    assert lines["t-3"]["errors"][0]["error_kind"] == "batch_error"
    assert lines["stranger"]["answers"][0]["text"] == "Who?"


def test_collect_without_the_input_writes_ids_only_to_a_stream(tmp_path):
    output = tmp_path / "outputs.jsonl"
    output.write_text(_result("x::judge", "Fine.") + _result("y::judge", ""))
    stream = io.StringIO()
    summary = collect_outputs(str(output), items_source=None, out=stream)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["id"], line["status"]) for line in lines] == [("x", "ok"), ("y", "failed")]
    assert lines[1]["errors"][0]["error_kind"] == "empty"
    assert set(lines[0]) == {"id", "status", "answers", "answer", "errors", "metrics"}
    assert summary.exit_code == EXIT_PARTIAL


def test_collect_of_a_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot read the batch output"):
        collect_outputs(str(tmp_path / "nope.jsonl"), items_source=None, out=io.StringIO())


# -- the Batch API ---------------------------------------------------------------------------


def test_batch_api_end_to_end_upload_create_poll_download_map_back(fake, tmp_path):
    fake.script("judge", Reply(text="Yes."), Reply(status=500), Reply(text="Fine."))
    fake.script("critic", Reply(text="Agreed."), Reply(status=400), Reply(text=""))
    out = tmp_path / "verdicts.jsonl"
    progress: list[str] = []
    summary = _run(fake, out, progress_lines=progress)
    assert (summary.created, summary.resumed, summary.items_ok, summary.items_failed) == (
        1,
        0,
        1,
        2,
    )
    assert summary.exit_code == EXIT_PARTIAL
    assert _routes(fake)[:2] == ["POST files", "POST batches"]
    assert "GET batches" in _routes(fake) and _routes(fake)[-1] == "GET files"
    # The uploaded file is exactly what `prepare` writes.
    (batch,) = fake.batches.values()
    prepared = io.StringIO()
    prepare_requests(_items(), _plan(fake), prepared)
    assert fake.file_text(batch["input_file_id"]) == prepared.getvalue()
    lines = {line["id"]: line for line in _lines(out)}
    assert lines["t-1"]["status"] == "ok" and lines["t-1"]["team"] == "x1"
    assert [a["text"] for a in lines["t-1"]["answers"]] == ["Yes.", "Agreed."]
    assert lines["a::b"]["status"] == "failed"
    assert [e["error_kind"] for e in lines["a::b"]["errors"]] == ["server_error", "bad_request"]
    assert lines["t-3"]["status"] == "failed"  # critic's answer was empty
    assert lines["t-3"]["errors"][0]["error_kind"] == "empty"
    assert lines["t-3"]["metrics"]["via"] == "batch-api"
    assert "6/6 requests done" in progress[-1] and "completed" in progress[-1]
    rows = history_rows("SELECT batch_id, status, requests FROM batch_jobs")
    assert [tuple(r) for r in rows] == [(batch["id"], "collected", 6)]


def test_batch_api_splits_above_the_request_and_size_limits(fake, tmp_path):
    fake.batch_max_requests = 4  # the fake refuses a bigger batch, as the provider would
    summary = _run(fake, tmp_path / "a.jsonl", items=_items(5), max_requests=4)
    assert summary.created == 3  # two items (4 requests) a batch; an item is never split
    sizes = sorted(b["request_counts"]["total"] for b in fake.batches.values())
    assert sizes == [2, 4, 4]
    assert summary.items_ok == 5
    fake.reset()
    one = io.StringIO()
    prepare_requests(_items(1), _plan(fake), one)
    limit = len(one.getvalue().encode()) * 3 // 2  # room for one item, not two
    fake.batch_max_bytes = limit
    summary = _run(fake, tmp_path / "b.jsonl", items=_items(3), max_bytes=limit)
    assert summary.created == 3  # one item a batch
    assert len(_lines(tmp_path / "b.jsonl")) == 3
    with pytest.raises(UsageError, match="alone is over a batch's limits"):
        _run(fake, tmp_path / "c.jsonl", items=_items(1), max_requests=1)


def test_the_same_command_after_an_interruption_polls_its_batch_instead_of_paying_twice(
    fake, tmp_path
):
    fake.batch_gate = "hold"
    out = tmp_path / "verdicts.jsonl"

    async def interrupted() -> None:
        await _interrupt_while_polling(fake, out)

    asyncio.run(interrupted())
    assert out.read_text() == ""
    fake.release("hold")
    summary = _run(fake, out)
    assert (summary.created, summary.resumed, summary.items_ok) == (0, 1, 3)
    assert fake.batches_created() == 1  # no second batch
    assert _routes(fake).count("POST files") == 1  # nor a second upload
    assert sorted(fake.batch_lines) == sorted(
        f"{i}::{p}" for i in ("t-1", "a::b", "t-3") for p in ("judge", "critic")
    )  # every request ran once
    # Once collected, the same command has nothing left to do: nothing is sent.
    before = len(fake.batch_requests)
    summary = _run(fake, out)
    assert (summary.created, summary.items_skipped) == (0, 3)
    assert len(fake.batch_requests) == before


def test_cancel_cancels_the_commands_batches_and_keeps_what_they_finished(fake, tmp_path):
    fake.batch_gate, fake.batch_hold_after = "hold", 2  # t-1's two requests run, then it waits
    out = tmp_path / "verdicts.jsonl"

    async def started() -> None:
        await _interrupt_while_polling(fake, out, lambda f: len(f.batch_lines) == 2)

    asyncio.run(started())
    summary = _run(fake, out, cancel=True)
    assert summary.cancelled == 1 and summary.created == 0
    assert any(r.path.endswith("/cancel") for r in fake.batch_requests)
    (batch,) = fake.batches.values()
    assert batch["status"] == "cancelled"
    assert [line["id"] for line in _lines(out)] == ["t-1"]  # the finished item is kept
    assert summary.items_pending == 2
    # Run again: a new batch for the two items not done, and only them.
    fake.batch_gate = None
    summary = _run(fake, out)
    assert (summary.created, summary.items_ok, summary.items_skipped) == (1, 2, 1)
    newest = list(fake.batches.values())[-1]
    asked = [
        json.loads(line)["custom_id"]
        for line in fake.file_text(newest["input_file_id"]).splitlines()
    ]
    assert asked == ["a::b::judge", "a::b::critic", "t-3::judge", "t-3::critic"]
    assert sorted(line["id"] for line in _lines(out)) == ["a::b", "t-1", "t-3"]


def test_cancel_with_no_batch_running_is_a_usage_error(fake, tmp_path):
    with pytest.raises(UsageError, match="no batch of this command"):
        _run(fake, tmp_path / "o.jsonl", cancel=True)
    assert fake.batch_requests == []


def test_a_batch_api_the_server_does_not_have_is_a_one_line_endpoint_error(fake, tmp_path):
    with FakeOpenAI() as other:
        url = other.base_url
    endpoint = resolved_endpoint(url)
    with OutputFile(tmp_path / "o.jsonl") as writer, pytest.raises(EndpointError) as caught:
        asyncio.run(run_via_batch_api(_items(1), _plan(fake), endpoint, writer, poll_interval=0.01))
    assert "Batch API" in caught.value.message


def test_items_from_a_file_flow_through_the_batch_api(fake, tmp_path):
    source = tmp_path / "tickets.csv"
    source.write_text("id,body\nA,printer on fire\nB,coffee machine\n")
    items = read_items(str(source), template="Review this ticket: {body}")
    out = tmp_path / "o.jsonl"
    summary = _run(fake, out, items=items, plan=_plan(fake, JUDGE))
    assert summary.items_ok == 2
    assert [(line["id"], line["body"]) for line in _lines(out)] == [
        ("A", "printer on fire"),
        ("B", "coffee machine"),
    ]
    (batch,) = fake.batches.values()
    asked = fake.file_text(batch["input_file_id"])
    assert "Review this ticket: printer on fire" in asked


# -- the prepare and collect commands ------------------------------------------------------------


def _tools(*args: str, input: str | None = None) -> Any:
    from typer.testing import CliRunner

    from council.cli.batch_tools import batch_tools_app

    return CliRunner().invoke(batch_tools_app, list(args), input=input, catch_exceptions=False)


def test_prepare_and_collect_commands_round_trip_without_importing_openai(fake, tmp_path):
    source = tmp_path / "tickets.jsonl"
    source.write_text('{"id": "t1", "body": "printer on fire", "team": "ops"}\n')
    requests = tmp_path / "requests.jsonl"
    outputs = tmp_path / "outputs.jsonl"
    verdicts = tmp_path / "verdicts.jsonl"
    code = (
        "import sys\n"
        "from council.cli.batch_tools import batch_tools_app\n"
        "def run(args):\n"
        "    try:\n"
        "        batch_tools_app(args)\n"
        "    except SystemExit as exit:\n"
        "        assert not exit.code, exit.code\n"
        f"run(['prepare', {str(source)!r}, '--base-url', {fake.base_url!r}, '-p', 'judge,critic',"
        f" '--template', 'Review this ticket: {{body}}', '--out', {str(requests)!r}])\n"
        # A runner answers every request (here: by hand, as vLLM's would).
        "import json\n"
        f"with open({str(requests)!r}) as r, open({str(outputs)!r}, 'w') as w:\n"
        "    for line in r:\n"
        "        cid = json.loads(line)['custom_id']\n"
        "        body = {'model': 'm', 'choices': [{'index': 0, 'message': {'role': 'assistant',"
        " 'content': 'ok ' + cid}, 'finish_reason': 'stop'}]}\n"
        "        w.write(json.dumps({'id': 'x', 'custom_id': cid, 'response':"
        " {'status_code': 200, 'body': body}, 'error': None}) + '\\n')\n"
        f"run(['collect', {str(outputs)!r}, '--input', {str(source)!r},"
        f" '--template', 'Review this ticket: {{body}}', '--out', {str(verdicts)!r}])\n"
        "assert 'openai' not in sys.modules, 'prepare or collect imported openai'\n"
    )
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "2 request lines written" in done.stderr
    assert "collected 1 ok, 0 failed" in done.stderr
    asked = [json.loads(line) for line in requests.read_text().splitlines()]
    assert [a["custom_id"] for a in asked] == ["t1::judge", "t1::critic"]
    assert "Review this ticket: printer on fire" in asked[0]["body"]["messages"][-1]["content"]
    (line,) = _lines(verdicts)
    assert (line["id"], line["team"], line["status"]) == ("t1", "ops", "ok")
    assert [a["text"] for a in line["answers"]] == ["ok t1::judge", "ok t1::critic"]
    assert fake.requests == []  # nothing was sent


def test_prepare_reads_stdin_and_writes_stdout_and_bad_input_is_one_line(fake, tmp_path):
    result = _tools("prepare", "-", "--base-url", fake.base_url, "-p", "judge", input="Why?\n")
    assert result.exit_code == 0, result.output
    (line,) = [json.loads(x) for x in result.stdout.splitlines()]
    assert line["custom_id"] == "1::judge"
    result = _tools("prepare", str(tmp_path / "missing.jsonl"), "--base-url", fake.base_url)
    assert result.exit_code == 2
    assert "council: error: cannot read the batch input" in result.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "query": "a"}\n{"id": 1, "query": "b"}\n')
    result = _tools("prepare", str(bad), "--base-url", fake.base_url, "-p", "judge", "--strict")
    assert result.exit_code == 2
    assert f'{bad}:2: duplicate id "1"' in result.stderr


def test_collect_exit_codes_follow_the_items(tmp_path):
    output = tmp_path / "outputs.jsonl"
    output.write_text(_result("a::judge", "Bad gateway", status=502))
    result = _tools("collect", str(output))
    assert result.exit_code == 1  # every item failed
    assert json.loads(result.stdout)["status"] == "failed"


def test_a_failed_poll_or_download_is_asked_again_but_a_failed_create_is_not(fake, tmp_path):
    fake.batch_failures.append(("GET /v1/batches", 503))
    fake.batch_failures.append(("GET /v1/files/", 502))  # the download, too
    out = tmp_path / "o.jsonl"
    summary = _run(fake, out, items=_items(1))
    assert summary.items_ok == 1
    assert [a["text"] for a in _lines(out)[0]["answers"]] == [
        "judge says: w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12",
        "critic says: w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12",
    ]
    statuses = [(r.path.split("/")[2], r.status) for r in fake.batch_requests if r.method == "GET"]
    assert ("batches", 503) in statuses and ("files", 502) in statuses
    fake.reset()
    # A create that failed may have been done: never sent twice by one run.
    fake.batch_failures.append(("POST /v1/batches", 500))
    with pytest.raises(EndpointError) as caught:
        _run(fake, tmp_path / "p.jsonl", items=_items(1))
    assert "run the same command again" in caught.value.one_line()
    assert fake.batches_created() == 1 and fake.batches == {}
    summary = _run(fake, tmp_path / "p.jsonl", items=_items(1))
    assert (summary.created, summary.items_ok) == (1, 1)


def test_collect_reads_standard_input_too(tmp_path):
    stdin = io.StringIO(
        _result("y::critic", "Two.") + _result("x::judge", "One.") + _result("y::judge", "Three.")
    )
    stream = io.StringIO()
    summary = collect_outputs("-", items_source=None, out=stream, stdin=stdin)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["id"], [a["text"] for a in line["answers"]]) for line in lines] == [
        ("y", ["Two.", "Three."]),
        ("x", ["One."]),
    ]
    assert summary.exit_code == 0


def test_a_batch_that_fails_validation_says_why_and_leaves_its_items_to_ask_again(fake, tmp_path):
    fake.batch_invalid = "line 1: \x1b]0;pwned\x07model not found"
    progress: list[str] = []
    out = tmp_path / "o.jsonl"
    summary = _run(fake, out, progress_lines=progress)
    assert (summary.items_ok, summary.items_failed, summary.items_pending) == (0, 0, 3)
    assert summary.exit_code == 1
    assert out.read_text() == ""
    assert any("line 1: model not found" in line for line in progress)
    assert not any("\x1b" in line for line in progress)
    fake.batch_invalid = None
    summary = _run(fake, out)  # collected (as failed): the same command asks again
    assert (summary.created, summary.items_ok) == (1, 3)


def test_batch_via_batch_api_sends_the_model_options(fake, tmp_path):
    # `-o` options go into every request line, as they go into a direct call's body.
    from tests.helpers import invoke

    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a", "query": "one?"}\n{"id": "b", "query": "two?"}\n')
    out = tmp_path / "out.jsonl"
    result = invoke(
        "batch", str(source), "--out", str(out), "--via", "batch-api", "--base-url",
        fake.base_url, "-p", "judge", "-o", "temperature", "0.3", "-o", "seed", "7",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (batch,) = fake.batches.values()
    bodies = [
        json.loads(line)["body"] for line in fake.file_text(batch["input_file_id"]).splitlines()
    ]
    assert len(bodies) == 2
    assert all(b["temperature"] == 0.3 and b["seed"] == 7 for b in bodies)
    assert [line["status"] for line in _lines(out)] == ["ok", "ok"]
