"""Issue 16: `council batch`, the fan-out: one cap, the endpoint's limiter, output, resume, budgets.

Every test talks to the fake server; the items' questions are `question tN`, so the
fake's request log says which item each request was for.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from council.endpoint.limiter import PROBE_CALLS, EndpointLimiter
from council.engine.results import BatchProgress
from council.render.batch_progress import BatchProgressView
from tests.fake_openai import FakeOpenAI, RecordedRequest, Reply
from tests.helpers import council_process, history_rows, invoke, resolved_endpoint


def write_items(path: Path, count: int, start: int = 1) -> Path:
    with path.open("w") as file:
        for n in range(start, start + count):
            file.write(json.dumps({"id": f"t{n}", "query": f"question t{n}", "team": n % 3}) + "\n")
    return path


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def item_of(request: RecordedRequest) -> str:
    assert request.body is not None
    found = re.search(r"question (t\d+)", request.body["messages"][-1]["content"])
    assert found, request.body
    return found.group(1)


def batch(fake: FakeOpenAI, items: Path, out: Path | None, *args: str) -> Any:
    where = ["--out", str(out)] if out is not None else []
    return invoke("batch", str(items), "--base-url", fake.base_url, *where, *args)


def batch_process(fake: FakeOpenAI, items: Path, out: Path, *args: str) -> subprocess.Popen[str]:
    return council_process(
        "batch", str(items), "--base-url", fake.base_url, "--out", str(out), *args
    )


def lines_written(out: Path, at_least: int) -> Callable[[FakeOpenAI], bool]:
    """A wait_for predicate: the batch (council's side, not the server's) wrote that many lines."""
    return lambda fake: out.exists() and out.read_text().count("\n") >= at_least


def signal_when(
    process: subprocess.Popen[str],
    fake: FakeOpenAI,
    ready: Callable[[FakeOpenAI], bool],
    signum: int,
) -> str:
    """Send `signum` once `ready`; the process's stderr once it ended (killed if it hangs)."""
    try:
        fake.wait_for(ready, timeout=30)
        process.send_signal(signum)
        _, err = process.communicate(timeout=20)
        return err
    finally:
        process.kill()


# -- output, history, exit codes --------------------------------------------------------------


def test_every_item_gets_one_line_and_the_batch_is_one_run_in_history(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    items, out = write_items(tmp_path / "items.jsonl", 12), tmp_path / "out.jsonl"
    result = batch(fake, items, out, "-p", "judge,critic", "--synthesize")
    assert result.exit_code == 0, result.output
    lines = lines_of(out)
    assert sorted(line["id"] for line in lines) == sorted(f"t{n}" for n in range(1, 13))
    first = next(line for line in lines if line["id"] == "t1")
    assert (first["status"], first["team"], first["errors"]) == ("ok", 1, [])
    assert [a["persona"] for a in first["answers"]] == ["judge", "critic"]
    assert first["answer"]["text"].startswith("arbiter says")
    assert first["metrics"]["calls"] == 3 and first["metrics"]["tokens_out"] > 0
    assert "12 done, 0 failed, 0 skipped" in result.stderr
    # Nobody reads a batch's tokens as they come: every call asked for its whole answer.
    assert len(fake.requests) == 36
    assert all(r.body is not None and r.body.get("stream") is False for r in fake.requests)
    assert all("stream_options" not in (r.body or {}) for r in fake.requests)

    (run,) = history_rows("SELECT * FROM runs")
    assert (run["command"], run["status"]) == ("batch", "ok")
    calls = history_rows("SELECT call_id FROM calls WHERE run_id = ?", run["id"])
    assert len(calls) == 36 == len({c["call_id"] for c in calls})
    assert "t7/r1-critic" in {c["call_id"] for c in calls}
    stats = invoke("stats", "--json")
    groups = {g["name"]: g for g in json.loads(stats.stdout)["groups"]}
    assert groups["judge"]["calls"] == 12


def test_exit_3_when_some_items_failed_1_when_all_did(fake: FakeOpenAI, tmp_path: Path) -> None:
    items = write_items(tmp_path / "items.jsonl", 6)
    fake.script("judge", Reply(status=400, error_message="no such thing"))
    some = batch(fake, items, tmp_path / "some.jsonl", "-p", "judge")
    assert some.exit_code == 3, some.output
    statuses = Counter(line["status"] for line in lines_of(tmp_path / "some.jsonl"))
    assert statuses == {"ok": 5, "failed": 1}
    (failed,) = [x for x in lines_of(tmp_path / "some.jsonl") if x["status"] == "failed"]
    assert failed["errors"][0]["error_kind"] == "bad_request"

    fake.default = Reply(status=400)
    every = batch(fake, items, tmp_path / "all.jsonl", "-p", "judge")
    assert every.exit_code == 1, every.output
    assert {line["status"] for line in lines_of(tmp_path / "all.jsonl")} == {"failed"}


def test_failed_items_are_kept_unless_retry_failed_asks_them_again(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    items, out = write_items(tmp_path / "items.jsonl", 5), tmp_path / "out.jsonl"
    fake.script("judge", Reply(status=400))
    assert batch(fake, items, out, "-p", "judge").exit_code == 3
    (failed,) = [x["id"] for x in lines_of(out) if x["status"] == "failed"]
    fake.reset()

    kept = batch(fake, items, out, "-p", "judge")
    assert kept.exit_code == 3, kept.output  # the failed line is still there
    assert fake.requests == []
    assert "5 skipped (1 failed earlier" in kept.stderr

    redone = batch(fake, items, out, "-p", "judge", "--retry-failed")
    assert redone.exit_code == 0, redone.output
    assert [item_of(r) for r in fake.requests] == [failed]
    lines = lines_of(out)
    assert len(lines) == 5 and {x["status"] for x in lines} == {"ok"}  # replaced, not added


def test_deliberate_mode_writes_the_deliberations_answer(fake: FakeOpenAI, tmp_path: Path) -> None:
    items, out = write_items(tmp_path / "items.jsonl", 3), tmp_path / "out.jsonl"
    verdict = json.dumps({"converged": True, "confidence": 0.9, "synthesis": "Agreed: yes."})
    fake.script("arbiter", *[Reply(text=verdict)] * 3)
    result = batch(fake, items, out, "-p", "judge,critic", "--mode", "deliberate")
    assert result.exit_code == 0, result.output
    for line in lines_of(out):
        assert line["answer"]["text"] == "Agreed: yes." and line["answer"]["round"] == 1
        assert line["metrics"]["calls"] == 3


def test_speculative_deliberations_discard_their_extra_round_and_stay_ok(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    items, out = write_items(tmp_path / "items.jsonl", 3), tmp_path / "out.jsonl"
    verdict = json.dumps({"converged": True, "confidence": 0.9, "synthesis": "Agreed."})
    fake.script("arbiter", *[Reply(text=verdict, ttft=0.2)] * 3)
    for name in ("judge", "critic"):  # the speculative round 2: answered or cut short
        fake.script(name, *[Reply(ttft=0.1)] * 3, round=2)
    args = ["-p", "judge,critic", "--mode", "deliberate", "--speculative", "--rounds", "2"]
    result = batch(fake, items, out, *args)
    assert result.exit_code == 0, result.output
    lines = lines_of(out)
    assert {x["status"] for x in lines} == {"ok"} and len(lines) == 3
    assert all(x["errors"] == [] and x["answer"]["text"] == "Agreed." for x in lines)
    # Round 1 and its verdict are kept; what the speculative round 2 did is not, item by item.
    calls = history_rows("SELECT call_id, round, kept FROM calls")
    assert len([c for c in calls if c["round"] == 1 and c["kept"]]) == 9
    assert [c["call_id"] for c in calls if c["round"] == 2 and c["kept"]] == []


def test_a_bad_line_under_strict_ends_the_batch_in_one_line_exit_2(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    items, out = write_items(tmp_path / "items.jsonl", 3), tmp_path / "out.jsonl"
    with items.open("a") as file:
        file.write("{not json\n")
    write_items(tmp_path / "more.jsonl", 2, start=4)
    with items.open("a") as file:
        file.write((tmp_path / "more.jsonl").read_text())
    strict = batch(fake, items, out, "-p", "judge", "--strict")
    assert strict.exit_code == 2, strict.output
    assert f"{items}:4" in strict.stderr and "Traceback" not in strict.stderr
    (run,) = history_rows("SELECT status, exit_code FROM runs")
    assert (run["status"], run["exit_code"]) == ("failed", 2)
    lenient = batch(fake, items, tmp_path / "lenient.jsonl", "-p", "judge")
    assert lenient.exit_code == 0, lenient.output
    assert f"{items}:4" in lenient.stderr  # reported, and skipped
    assert len(lines_of(tmp_path / "lenient.jsonl")) == 5


# -- one cap and the endpoint's limiter -------------------------------------------------------


def test_calls_in_flight_never_exceed_max_concurrency(fake: FakeOpenAI, tmp_path: Path) -> None:
    items, out = write_items(tmp_path / "items.jsonl", 40), tmp_path / "out.jsonl"
    fake.default = Reply(ttft=0.02, tokens=3)
    result = batch(fake, items, out, "-p", "judge,critic,skeptic", "--max-concurrency", "4")
    assert result.exit_code == 0, result.output
    assert len(fake.requests) == 120
    assert fake.peak_concurrency == 4  # used to the full, never beyond


def test_items_are_read_only_as_room_frees_up(fake: FakeOpenAI) -> None:
    from council.config.personas import PersonaCatalog
    from council.engine.batch import BatchJob, BatchRun
    from council.engine.events import EventBus
    from council.engine.plan import build_oracle_plan

    endpoint = resolved_endpoint(fake.base_url, max_concurrency=2)
    judge = PersonaCatalog.discover().resolve(["judge"])

    def plan(query: str) -> Any:
        return build_oracle_plan(query=query, personas=judge, endpoint=endpoint)

    pulled = []

    def jobs() -> Any:  # an input as long as you like
        for n in range(1, 10_001):
            pulled.append(n)
            yield BatchJob(n - 1, f"t{n}", plan(f"question t{n}"))

    fake.default = Reply(gate="hold")
    ended = []
    run = BatchRun(plan(""), EventBus(), on_item=ended.append, items_at_once=2, max_tokens_total=1)
    worker = threading.Thread(target=lambda: asyncio.run(run.execute(jobs())))
    worker.start()
    try:
        fake.wait_for(lambda f: len(f.requests) == 2)
        assert len(pulled) <= 3  # two running, at most one waiting for room: never the input
    finally:
        fake.release("hold")
        worker.join(20)
    # The budget (1 token) was spent by the first items: none started after them.
    assert len(ended) == 2 and run.progress.stopped_by == "--max-tokens-total"
    assert len(fake.requests) == 2


def test_429s_narrow_the_limit_and_success_widens_it_again(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    items, out = write_items(tmp_path / "items.jsonl", 90), tmp_path / "out.jsonl"
    fake.slots, fake.over_limit, fake.slot_retry_after = 3, "429", 0.05
    fake.default = Reply(ttft=0.01, tokens=3)
    result = batch(fake, items, out, "-p", "judge,critic", "--max-concurrency", "8")
    assert result.exit_code == 0, result.output
    assert {line["status"] for line in lines_of(out)} == {"ok"}  # slowed, never failed
    turned_away = [r for r in fake.requests if r.over_limit]
    answered = [r for r in fake.requests if r.status == 200]
    assert len(answered) == 180
    assert 1 <= len(turned_away) <= 18  # the first burst, then a probe now and then
    (run,) = history_rows("SELECT limit_changes FROM runs")
    changes = json.loads(run["limit_changes"])
    # Narrowed on the 429s (to the 3 slots or below), then widened again after answers.
    assert changes[0]["old"] == 8 and "429" in changes[0]["reason"]
    lowest = min(range(len(changes)), key=lambda i: changes[i]["new"])
    assert changes[lowest]["new"] <= 3
    assert any(c["new"] > c["old"] for c in changes[lowest:])


# -- ordered output, whole lines, resume -----------------------------------------------------


@pytest.mark.parametrize("ordered", [True, False], ids=["ordered", "as-finished"])
def test_ordered_keeps_input_order_when_the_first_item_ends_last(
    fake: FakeOpenAI, tmp_path: Path, ordered: bool
) -> None:
    items, out = write_items(tmp_path / "items.jsonl", 8), tmp_path / "out.jsonl"
    fake.script("judge", Reply(gate="first"))  # the first request the server gets is held
    args = ["-p", "judge", "--max-concurrency", "4", *(["--ordered"] if ordered else [])]
    process = batch_process(fake, items, out, *args)
    try:
        fake.wait_for(lambda f: sum(r.completed for r in f.requests) == 7, timeout=20)
        if not ordered:  # the other seven lines are out before the held item ends
            fake.wait_for(lines_written(out, 7))
        held = item_of(fake.requests[0])
        fake.release("first")
        _, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 0, err
    ids = [line["id"] for line in lines_of(out)]
    if ordered:
        assert ids == [f"t{n}" for n in range(1, 9)]
    else:
        assert ids[-1] == held and sorted(ids) == sorted(f"t{n}" for n in range(1, 9))


def test_every_line_is_whole_after_a_kill_and_the_rerun_completes(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    items, out = write_items(tmp_path / "items.jsonl", 150), tmp_path / "out.jsonl"
    fake.default = Reply(ttft=0.01, tokens=40)
    process = batch_process(fake, items, out, "-p", "judge,critic", "--max-concurrency", "4")
    signal_when(process, fake, lines_written(out, 30), signal.SIGKILL)
    written = lines_of(out)  # every line parses: none was torn
    assert 30 <= len(written) < 150
    again = batch(fake, items, out, "-p", "judge,critic", "--max-concurrency", "4")
    assert again.exit_code == 0, again.output
    final = lines_of(out)
    assert sorted(x["id"] for x in final) == sorted(f"t{n}" for n in range(1, 151))


def test_resume_after_ctrl_c_asks_no_item_twice_and_loses_none(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    items, out = write_items(tmp_path / "items.jsonl", 40), tmp_path / "out.jsonl"
    fake.default = Reply(ttft=0.02, tokens=3)
    args = ["-p", "judge,critic", "--max-concurrency", "3"]
    process = batch_process(fake, items, out, *args)
    err = signal_when(
        process, fake, lambda f: sum(r.completed for r in f.requests) >= 20, signal.SIGINT
    )
    assert process.returncode == 130, err
    assert "the same command resumes it" in err
    first = {line["id"] for line in lines_of(out)}
    assert first and all(line["status"] == "ok" for line in lines_of(out))
    first_run = list(fake.requests)
    (run,) = history_rows("SELECT status, exit_code FROM runs")
    assert (run["status"], run["exit_code"]) == ("interrupted", 130)

    again = batch(fake, items, out, *args)
    assert again.exit_code == 0, again.output
    second_run = fake.requests[len(first_run) :]
    asked_again = {item_of(r) for r in second_run}
    assert not asked_again & first  # no finished item asked twice
    # Every item that was not finished is asked whole (both personas) exactly once.
    per_item = Counter(item_of(r) for r in second_run if r.status == 200)
    assert set(per_item.values()) == {2}
    lines = lines_of(out)
    assert sorted(x["id"] for x in lines) == sorted(f"t{n}" for n in range(1, 41))
    assert f"{40 - len(first)} done, 0 failed, {len(first)} skipped" in again.stderr


def test_sigterm_stops_the_batch_as_ctrl_c_does_with_143(fake: FakeOpenAI, tmp_path: Path) -> None:
    items, out = write_items(tmp_path / "items.jsonl", 30), tmp_path / "out.jsonl"
    fake.default = Reply(ttft=0.02, tokens=3)
    process = batch_process(fake, items, out, "-p", "judge", "--max-concurrency", "2")
    err = signal_when(process, fake, lines_written(out, 5), signal.SIGTERM)
    assert process.returncode == 143, err
    assert "stopped by SIGTERM" in err
    written = lines_of(out)
    assert 5 <= len(written) < 30 and {x["status"] for x in written} == {"ok"}


# -- budgets and dry run -----------------------------------------------------------------------


def test_max_items_stops_starting_items(fake: FakeOpenAI, tmp_path: Path) -> None:
    items, out = write_items(tmp_path / "items.jsonl", 20), tmp_path / "out.jsonl"
    result = batch(fake, items, out, "-p", "judge", "--max-items", "5", "--json")
    assert result.exit_code == 0, result.output
    assert len(lines_of(out)) == 5 and len(fake.requests) == 5
    assert "stopped starting items at --max-items" in result.stderr
    summary = json.loads(result.stdout)
    assert (summary["done"], summary["stopped_by"], summary["exit_code"]) == (5, "--max-items", 0)
    (run,) = history_rows("SELECT id FROM runs")
    shown = invoke("show", run["id"])
    assert shown.exit_code == 0 and "5 done, 0 failed" in shown.stdout


def test_max_tokens_total_stops_starting_items_once_reached(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    items, out = write_items(tmp_path / "items.jsonl", 20), tmp_path / "out.jsonl"
    args = ["-p", "judge", "--max-concurrency", "1", "--max-tokens-total", "1000"]
    result = batch(fake, items, out, *args)
    assert result.exit_code == 0, result.output
    spent = [x["metrics"]["tokens_in"] + x["metrics"]["tokens_out"] for x in lines_of(out)]
    # One item at a time: items start until the total reaches the budget, then none.
    assert sum(spent[:-1]) < 1000 <= sum(spent)
    assert len(fake.requests) == len(spent) < 20
    assert "stopped starting items at --max-tokens-total" in result.stderr


def test_dry_run_counts_and_estimates_sends_nothing_and_imports_no_openai(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    items = write_items(tmp_path / "items.jsonl", 7)
    code = (
        "import sys\n"
        "from council.cli import app\n"
        "try:\n"
        f"    app(['batch', {str(items)!r}, '--base-url', {fake.base_url!r}, '--dry-run', "
        "'--json', '-p', 'judge,critic', '-s'])\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "assert 'openai' not in sys.modules, 'batch --dry-run imported openai'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["items"], summary["calls_at_most"]) == (7, 21)
    assert summary["estimated_input_tokens_first_round"] > 0
    assert fake.requests == []


def test_out_is_required_without_dry_run(fake: FakeOpenAI, tmp_path: Path) -> None:
    items = write_items(tmp_path / "items.jsonl", 2)
    result = batch(fake, items, None, "-p", "judge")
    assert result.exit_code == 2
    assert "needs --out" in result.stderr
    assert fake.requests == []


# -- the progress view ----------------------------------------------------------------------


def test_plain_progress_is_a_line_every_tenth_not_a_line_per_item() -> None:
    progress = BatchProgress(total=200, limit=8, ceiling=8)
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=False, width=200)
    with BatchProgressView(console, progress) as view:
        for n in range(200):
            progress.done, progress.tokens_in = n + 1, 100 * (n + 1)
            view.item_ended()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10  # every 10 % of 200 items, none more (well under 5 s)
    assert lines[-1].startswith("council: batch 200/200 items (0 failed)")
    assert "0/8 calls at once" in lines[-1] and "20,000 tokens in" in lines[-1]


def test_the_terminal_progress_bar_shows_the_numbers() -> None:
    progress = BatchProgress(total=50, done=20, failed=5, limit=4, ceiling=8)
    progress.sample = lambda: (3, 4)
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=160)
    with BatchProgressView(console, progress) as view:
        assert view.live is not None
        view.item_ended()  # no plain line in a terminal
        view.live.refresh()
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())
    assert "25/50 items (5 failed)" in shown and "3/4 calls at once" in shown


def test_a_terminal_gets_the_live_bar_with_the_current_limit(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    items, out = write_items(tmp_path / "items.jsonl", 6), tmp_path / "out.jsonl"
    fake.default = Reply(gate="go")
    leader, follower = pty.openpty()
    args = ["batch", str(items), "--base-url", fake.base_url, "--out", str(out)]
    process = subprocess.Popen(
        [sys.executable, "-m", "council.cli", *args, "-p", "judge", "--max-concurrency", "2"],
        stdout=subprocess.DEVNULL,
        stderr=follower,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(follower)
    shown = b""
    try:
        fake.wait_for(lambda f: len(f.requests) == 2, timeout=20)
        # The bar redraws 4 times a second; a frame drawn before the calls got their
        # slots (the endpoint's /props asked first) says 0/2: wait for a later one.
        while b"2/2 calls at once" not in re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", shown):
            ready, _, _ = select.select([leader], [], [], 10)
            assert ready, shown[-300:]
            shown += os.read(leader, 65536)
        fake.release("go")
        assert process.wait(timeout=20) == 0
    finally:
        process.kill()
        os.close(leader)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown.decode(errors="replace"))
    assert "0/6 items (0 failed)" in text and "2/2 calls at once" in text
    assert len(lines_of(out)) == 6


# -- the limiter over a long batch ------------------------------------------------------------


def test_a_probe_turned_away_pauses_nothing_and_the_next_probe_waits_twice_as_long() -> None:
    async def scenario() -> tuple[list[int], float]:
        limiter = EndpointLimiter("h", "http://h/v1", "m", ceiling=8)
        limiter.limit = limiter.capacity = 4
        seen = []
        for _ in range(PROBE_CALLS):
            limiter.release(await limiter.acquire())
        seen.append(limiter.limit)  # probing: 5
        probe = await limiter.acquire()
        limiter.pause(1.0)  # the Retry-After of its 429, as the client applies it
        limiter.release(probe, rejected=True, reason="429 answer")
        seen.append(limiter.limit)  # back to 4, and not paused
        paused = limiter.paused_until
        for _ in range(PROBE_CALLS):
            limiter.release(await limiter.acquire())
        seen.append(limiter.limit)  # still 4: the next probe waits 2 x PROBE_CALLS
        for _ in range(PROBE_CALLS):
            limiter.release(await limiter.acquire())
        seen.append(limiter.limit)
        return seen, paused

    seen, paused = asyncio.run(scenario())
    assert seen == [5, 4, 4, 5]
    assert paused <= time.monotonic()


def test_one_budget_usd_for_the_whole_batch_stops_starting_items(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    from tests.test_cost import priced_profile

    priced_profile(fake)  # $1,000 and $2,000 per million tokens in and out
    items = write_items(tmp_path / "items.jsonl", 8)
    out = tmp_path / "out.jsonl"
    result = invoke(
        "batch", str(items), "--endpoint", "fake", "-p", "judge", "--out", str(out),
        "--max-concurrency", "1", "-o", "max_tokens", "50", "--budget-usd", "1.0",
    )  # fmt: skip
    asked = len(fake.requests)
    assert 0 < asked < 8, result.output  # the budget ran out part way
    assert "--budget-usd" in result.stderr
    lines = lines_of(out)
    assert lines[0]["status"] == "ok" and lines[-1]["errors"][0]["error_kind"] == "budget"
    spent = sum(line["metrics"]["cost_usd"] or 0 for line in lines)
    assert 0 < spent <= 1.0  # every call was reserved against the one shared budget


def test_a_batch_budget_without_a_price_is_refused_before_any_item(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    items = write_items(tmp_path / "items.jsonl", 2)
    result = batch(fake, items, tmp_path / "out.jsonl", "-p", "judge", "--budget-usd", "1")
    assert result.exit_code == 2 and "no price is known" in result.stderr
    assert not fake.requests
