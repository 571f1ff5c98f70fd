"""Issue 27 points 7 and 10: batch lines carry their question; batch-API runs you can see."""

from __future__ import annotations

import asyncio
import json
import shlex
from pathlib import Path
from typing import Any

from council.app.batch.api import poll_waits, run_via_batch_api
from council.app.batch.items import BatchItem
from council.app.batch.output import OutputFile
from council.config.personas import Persona
from council.engine.plan import build_oracle_plan
from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import council_process, history_rows, interrupt_when, invoke, resolved_endpoint


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


ROWS = [{"id": f"t{n}", "query": f"question t{n}", "team": n} for n in (1, 2, 3)]


# -- point 10: every --out line carries its question -------------------------------------------


def test_every_line_carries_its_question_unless_no_query(fake: FakeOpenAI, tmp_path: Path) -> None:
    items = _write(tmp_path / "items.jsonl", ROWS)
    out = tmp_path / "out.jsonl"
    result = invoke(
        "batch", str(items), "--base-url", fake.base_url, "-p", "judge", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    lines = {line["id"]: line for line in _lines(out)}
    assert {i: line["query"] for i, line in lines.items()} == {
        "t1": "question t1",
        "t2": "question t2",
        "t3": "question t3",
    }
    assert list(lines["t1"])[:3] == ["id", "query", "team"]  # read first, before the answers
    bare = tmp_path / "bare.jsonl"
    args = ("--base-url", fake.base_url, "-p", "judge", "--no-query", "--out", str(bare))
    assert invoke("batch", str(items), *args).exit_code == 0
    assert all("query" not in line and line["team"] for line in _lines(bare))


def test_a_templated_line_carries_the_question_as_asked(fake: FakeOpenAI, tmp_path: Path) -> None:
    items = tmp_path / "tickets.csv"
    items.write_text("id,body\nA,printer on fire\n")
    out = tmp_path / "out.jsonl"
    result = invoke(
        "batch",
        str(items),
        "--base-url",
        fake.base_url,
        "-p",
        "judge",
        "--template",
        "Review this ticket: {body}",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    (line,) = _lines(out)
    assert (line["query"], line["body"]) == (
        "Review this ticket: printer on fire",
        "printer on fire",
    )
    asked = fake.requests[-1].body
    assert asked is not None and line["query"] in asked["messages"][-1]["content"]


def _batch_api(fake: FakeOpenAI, out: Path, **options: Any) -> Any:
    plan = build_oracle_plan(
        query="",
        personas=[Persona(name="judge", description="", system="You judge.")],
        endpoint=resolved_endpoint(fake.base_url),
    )
    items = [BatchItem(r["id"], r["query"], {"team": r["team"]}, n) for n, r in enumerate(ROWS, 1)]
    with OutputFile(out) as writer:
        return asyncio.run(
            run_via_batch_api(
                items,
                plan,
                resolved_endpoint(fake.base_url),
                writer,
                poll_interval=0.01,
                progress=lambda line: None,
                identity=str(out),
                **options,
            )
        )


def test_batch_api_lines_carry_their_question_too(fake: FakeOpenAI, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    assert _batch_api(fake, out).items_ok == 3
    assert sorted(line["query"] for line in _lines(out)) == [r["query"] for r in ROWS]
    bare = tmp_path / "bare.jsonl"
    assert _batch_api(fake, bare, with_query=False).items_ok == 3
    assert all("query" not in line for line in _lines(bare))


# -- point 7: batch-API runs you can see ---------------------------------------------------------


def _api_batch(fake: FakeOpenAI, items: Path, out: Path, *args: str) -> list[str]:
    return [
        "batch",
        str(items),
        "--via",
        "batch-api",
        "--base-url",
        fake.base_url,
        "-p",
        "judge,critic",
        "--out",
        str(out),
        *args,
    ]


def test_a_batch_api_run_is_in_history_and_stats_and_ends_with_a_summary(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    items, out = _write(tmp_path / "items.jsonl", ROWS), tmp_path / "out.jsonl"
    result = invoke(*_api_batch(fake, items, out, "--poll-interval", "0.01"))
    assert result.exit_code == 0, result.output
    (batch_id,) = fake.batches
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith("council: batch-api: 3 done, 0 failed, 0 skipped")
    assert f"1 provider batch (1 created, 0 polled again): {batch_id}" in summary
    (run,) = history_rows("SELECT * FROM runs")
    assert (run["command"], run["status"], run["exit_code"]) == ("batch", "ok", 0)
    calls = history_rows("SELECT * FROM calls WHERE run_id = ? ORDER BY call_id", run["id"])
    assert [c["call_id"] for c in calls][:2] == ["t1/r1-critic", "t1/r1-judge"]
    assert len(calls) == 6 and {c["status"] for c in calls} == {"answered"}
    assert all(c["latency"] is None and c["tokens_out"] for c in calls)  # unknown, not 0
    (job,) = history_rows("SELECT run_id FROM batch_jobs")
    assert job["run_id"] == run["id"]
    stats = invoke("stats", "--json")
    groups = {g["name"]: g for g in json.loads(stats.stdout)["groups"]}
    assert groups["judge"]["calls"] == 3 and groups["critic"]["calls"] == 3
    listed = json.loads(invoke("history", "--json").stdout)
    assert [(r["id"], r["command"], r["status"]) for r in listed] == [(run["id"], "batch", "ok")]


def test_a_failed_call_of_a_batch_api_run_is_recorded_as_failed(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    fake.script("critic", Reply(status=400, error_message="too long"))
    items, out = _write(tmp_path / "items.jsonl", ROWS[:1]), tmp_path / "out.jsonl"
    result = invoke(*_api_batch(fake, items, out, "--poll-interval", "0.01"))
    assert result.exit_code == 1, result.output
    assert "0 done, 1 failed" in result.stderr
    (run,) = history_rows("SELECT * FROM runs")
    assert run["status"] == "failed"
    (failed,) = history_rows("SELECT * FROM calls WHERE status = 'failed'")
    assert (failed["persona"], failed["error_kind"]) == ("critic", "bad_request")


def test_polls_start_short_and_back_off_to_a_cap() -> None:
    waits = poll_waits(1.0)
    assert [next(waits) for _ in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]
    longer = poll_waits(60.0)
    assert [next(longer) for _ in range(3)] == [60, 60, 60]  # as given when over the cap


def test_poll_interval_is_checked(fake: FakeOpenAI, tmp_path: Path) -> None:
    items, out = _write(tmp_path / "items.jsonl", ROWS), tmp_path / "out.jsonl"
    result = invoke(*_api_batch(fake, items, out, "--poll-interval", "0"))
    assert result.exit_code == 2 and "expected seconds above 0" in result.stderr
    direct = ["batch", str(items), "--base-url", fake.base_url, "--out", str(out)]
    result = invoke(*direct, "--poll-interval", "5")
    assert result.exit_code == 2 and "goes with --via batch-api" in result.stderr
    assert not fake.requests and not fake.batches


def test_ctrl_c_says_the_provider_goes_on_and_how_to_cancel_it(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    fake.batch_gate = "go"  # the batch stays in progress until released
    items, out = _write(tmp_path / "items.jsonl", ROWS), tmp_path / "out.jsonl"
    args = _api_batch(fake, items, out, "--poll-interval", "0.05")
    process = council_process(*args)
    _, err = interrupt_when(
        process, fake, lambda f: any(r.method == "GET" for r in f.batch_requests)
    )
    assert process.returncode == 130, err
    (batch_id,) = fake.batches
    assert f"the provider goes on with 1 provider batch ({batch_id})" in err
    (line,) = [x for x in err.splitlines() if "to cancel them at the provider:" in x]
    cancel = shlex.split(line.split("to cancel them at the provider: ", 1)[1])
    assert cancel[0] == "council" and cancel[-1] == "--cancel"
    assert cancel[1:-1] == args
    (run,) = history_rows("SELECT * FROM runs")
    assert (run["command"], run["status"], run["exit_code"]) == ("batch", "interrupted", 130)
    # The printed command cancels the batch at the provider.
    result = invoke(*cancel[1:])
    fake.release("go")
    assert fake.batches[batch_id]["status"] in ("cancelling", "cancelled"), result.output
    assert any(r.path.endswith("/cancel") for r in fake.batch_requests)
