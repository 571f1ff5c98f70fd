"""Living within an endpoint's limits: slots, rejections, Retry-After, rate-limit headers, priority.

Against the fake server's finite modes (a slot limit answering 429 or 503, one that
ends the oldest stream when a new request arrives, one that queues; a request quota
announced in x-ratelimit-* headers). Assertions are on what the server recorded.
"""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest

from council.endpoint.limiter import EndpointLimiter
from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import invoke, keep_learned, kept_learned, oracle, oracle_json

SIX = "judge,critic,skeptic,optimist,pragmatist,historian"


def answered(doc: dict[str, Any]) -> set[str]:
    return {a["persona"] for a in doc["answers"]}


def events_of(result: Any, kind: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in result.stdout.splitlines()]
    return [e for e in events if e["type"] == kind]


@pytest.mark.parametrize("mode", ["429", "503", "interrupt", "queue"])
def test_a_server_with_fewer_slots_than_personas_answers_them_all(
    fake: FakeOpenAI, mode: str
) -> None:
    fake.slots, fake.over_limit, fake.slot_retry_after = 2, mode, 0.05
    fake.default = Reply(ttft=0.3, tokens=3)
    code, doc = oracle_json(fake, "--personas", SIX, "q")
    assert code == 0, doc
    assert answered(doc) == set(SIX.split(","))
    # Every persona went out at once: what the server turned away was re-sent, and
    # the limit learned from it.
    if mode != "queue":
        assert doc["metrics"]["limit_changes"][0]["old"] == 8
        (kept,) = kept_learned(fake.base_url)
        assert (kept.model, kept.capacity) == ("gpt-4o-mini", 2)
    # The next run (its own endpoint pool, as a new process) starts from what was kept.
    before = len(fake.requests)
    code, doc = oracle_json(fake, "--personas", SIX, "q")
    assert code == 0 and answered(doc) == set(SIX.split(","))
    assert not [r for r in fake.requests[before:] if r.over_limit or r.interrupted]


def test_a_single_slot_server_that_interrupts_streams_converges_with_every_persona(
    fake: FakeOpenAI,
) -> None:
    # The first case: today two streams end without finish_reason, exit 3.
    fake.slots, fake.over_limit = 1, "interrupt"
    fake.default = Reply(ttft=0.2, tokens=3)
    result = oracle(fake, "--personas", "judge,critic,skeptic", "--jsonl", "q")
    assert result.exit_code == 0, result.output
    finished = {e["persona"] for e in events_of(result, "call_finished")}
    assert finished == {"judge", "critic", "skeptic"}
    changes = events_of(result, "limit_changed")
    assert (changes[0]["old"], changes[-1]["new"]) == (8, 1)
    assert all("interrupted stream" in c["reason"] for c in changes)


def test_rejections_are_re_sent_without_using_up_retries(fake: FakeOpenAI) -> None:
    # Three 429s for one persona with --retries 0: re-sends, not retries.
    rejected = Reply(status=429, retry_after=0)
    fake.script("judge", rejected, rejected, rejected, Reply(text="At last."))
    code, doc = oracle_json(fake, "--personas", "judge", "--retries", "0", "q")
    assert code == 0, doc
    (answer,) = doc["answers"]
    assert (answer["text"], answer["retries"], answer["resends"]) == ("At last.", 0, 3)


def test_re_sends_are_capped_at_ten_a_call(fake: FakeOpenAI) -> None:
    fake.script("judge", *[Reply(status=429, retry_after=0)] * 12)
    code, doc = oracle_json(fake, "--personas", "judge", "--retries", "0", "q")
    assert code == 1
    assert doc["errors"][0]["error_kind"] == "rate_limited"
    assert len(fake.requests_for("judge")) == 11  # the first and ten re-sends


def test_retry_after_pauses_the_whole_endpoint_and_the_rejected_call_goes_first(
    fake: FakeOpenAI,
) -> None:
    fake.script("judge", Reply(status=429, retry_after=0.4), Reply(text="Judged."))
    code, doc = oracle_json(fake, "--personas", "judge,critic", "--max-concurrency", "1", "q")
    assert code == 0, doc
    first, *rest = fake.requests
    assert first.persona == "judge" and first.status == 429
    assert rest[0].persona == "judge"  # the re-send waits at the head of the queue
    assert first.responded_at is not None
    # Nothing at all was sent to the endpoint while it asked for a pause.
    assert all(r.received_at >= first.responded_at + 0.4 for r in rest)


def test_an_exhausted_rate_limit_header_holds_new_calls_until_its_reset(fake: FakeOpenAI) -> None:
    spent = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "400ms"}
    fake.script("judge", Reply(text="Last one this window.", headers=spent))
    code, doc = oracle_json(fake, "--personas", "judge,critic", "--max-concurrency", "1", "q")
    assert code == 0, doc
    judge, critic = fake.requests
    assert judge.persona == "judge" and judge.responded_at is not None
    assert critic.received_at >= judge.responded_at + 0.4


def test_calls_over_a_request_quota_in_headers_are_re_sent_after_its_reset(
    fake: FakeOpenAI,
) -> None:
    fake.rate_limit, fake.rate_window = 2, 0.3
    fake.default = Reply(tokens=3)
    personas = "judge,critic,skeptic,optimist,pragmatist,historian"
    code, doc = oracle_json(fake, "--personas", personas, "q")
    assert code == 0, doc
    # All went out at once, before any answer announced the quota: those over it were
    # turned away, and sent again (not retried) once it was reset.
    turned_away = [r for r in fake.requests if r.status == 429]
    assert turned_away and len(doc["answers"]) == 6
    assert sum(a["resends"] for a in doc["answers"]) == len(turned_away)
    assert sum(a["retries"] for a in doc["answers"]) == 0


def test_a_capacity_learned_earlier_is_where_the_next_run_starts(fake: FakeOpenAI) -> None:
    keep_learned(fake.base_url, "gpt-4o-mini", capacity=2)
    fake.default = Reply(ttft=0.2, tokens=3)
    code, _ = oracle_json(fake, "--personas", SIX, "q")
    assert code == 0
    assert fake.peak_concurrency == 2


def test_one_slot_and_a_verdict_that_gets_one_429_converges_speculative_or_not(
    fake: FakeOpenAI,
) -> None:
    # The case: the verdict's retry queued behind the speculative round while
    # its deadline ran, and --speculative ended arbiter_failed (exit 3).
    verdict = json.dumps({"converged": True, "confidence": 0.9, "synthesis": "S.", "dissent": []})
    exits = []
    for flags in ([], ["--speculative"]):
        fake.reset()
        fake.default = Reply(ttft=0.6, tokens=3)
        fake.script("judge", Reply(tokens=3), round=1)
        fake.script("critic", Reply(tokens=3), round=1)
        fake.script("arbiter", Reply(status=429, retry_after=0), Reply(text=verdict), round=1)
        result = invoke(
            "deliberate",
            "--base-url",
            fake.base_url,
            "-p",
            "judge,critic",
            "--max-concurrency",
            "1",
            "--timeout",
            "1",
            "--rounds",
            "3",
            "--json",
            *flags,
            "q",
        )
        doc = json.loads(result.stdout)
        exits.append((result.exit_code, doc["stop_reason"], doc["answer"]["text"]))
    assert exits[0] == exits[1] == (0, "converged", "S.")


def test_the_limit_rule_halves_grows_back_and_probes() -> None:
    async def scenario() -> list[int]:
        limiter = EndpointLimiter("h", "http://h/v1", "m", ceiling=8)
        seen = []
        tickets = [await limiter.acquire() for _ in range(8)]
        limiter.release(tickets.pop(), rejected=True, reason="429 answer")
        seen.append(limiter.limit)  # 8 in flight: min(8 // 2, 7) = 4, known capacity 4
        limiter.release(tickets.pop(), rejected=True, reason="429 answer")
        seen.append(limiter.limit)  # sent before the change: counted once
        for ticket in tickets:
            limiter.release(ticket)
        limiter.capacity = 8  # as if more room had been seen: grows by one per 2 x limit
        for _ in range(2 * 4):
            limiter.release(await limiter.acquire())
        seen.append(limiter.limit)
        limiter.capacity, limiter.calls_since_probe = 5, 0  # at capacity: a probe after 100
        for _ in range(99):
            limiter.release(await limiter.acquire())
        seen.append(limiter.limit)
        limiter.release(await limiter.acquire())
        seen.append(limiter.limit)
        probe = await limiter.acquire()
        limiter.release(probe, rejected=True, reason="429 answer")  # a failed probe
        seen.append(limiter.limit)
        return seen

    assert asyncio.run(scenario()) == [4, 4, 5, 5, 6, 5]


def test_the_footer_and_the_live_view_say_when_and_why_the_limit_changed(
    fake: FakeOpenAI,
) -> None:
    fake.slots, fake.over_limit = 1, "interrupt"
    fake.default = Reply(ttft=0.2, tokens=3)
    result = oracle(fake, "--personas", "judge,critic", "q")
    assert result.exit_code == 0, result.output
    host = fake.base_url.split("/")[2]
    assert f"{host}: 1 call at a time after 1 interrupted stream" in result.output

    from rich.console import Console

    from council.engine.events import LimitChanged
    from council.render.live import LiveView, RoundsLiveView

    change = LimitChanged(run_id="r", host=host, old=8, new=2, reason="2 429 answers")
    for view in (LiveView(Console(file=io.StringIO()), ["judge"]), RoundsLiveView(Console(), 3)):
        view.handle(change)
        console = Console(file=io.StringIO(), width=120)
        console.print(view.render())
        assert f"{host}: 2 calls at a time after 2 429 answers" in console.file.getvalue()


def test_history_and_stats_keep_queued_time_resends_and_limit_changes(fake: FakeOpenAI) -> None:
    from tests.helpers import history_rows

    fake.slots, fake.over_limit = 1, "interrupt"
    fake.default = Reply(ttft=0.2, tokens=3)
    assert oracle(fake, "--personas", "judge,critic", "q").exit_code == 0
    calls = history_rows("SELECT persona, queued, resends FROM calls")
    assert sum(c["resends"] for c in calls) == 1
    assert all(c["queued"] is not None for c in calls)
    assert sum(c["queued"] for c in calls) > 0  # one slot: the one turned away waited
    (run,) = history_rows("SELECT limit_changes FROM runs")
    (change,) = json.loads(run["limit_changes"])
    assert (change["old"], change["new"]) == (8, 1)
    report = json.loads(invoke("stats", "--json").stdout)
    assert sum(g["queued"] for g in report["groups"]) > 0
    assert sum(g["resends"] for g in report["groups"]) == 1
    table = invoke("stats").stdout.splitlines()
    header = table[1].split()
    assert "re-sent" in header and "queued" in header  # the text table shows them too
    column = header.index("re-sent") - 1  # "queued p95" is two words
    rows = [line for line in table[2:] if not line.startswith(("deliberations:", "suggestion:"))]
    assert sum(int(line.split()[column]) for line in rows) >= 1
