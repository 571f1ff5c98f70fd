"""Issue 21: every call of a round starts at once with default flags, and what the limiter
learns (rejections, what an endpoint took, the slots it states) carries to the next run.

Each "run" is a CLI command in this process, with an endpoint pool of its own (its
limiters and learned table), as a new process: only the history carries what was learned.
What is counted comes from the fake server's own log.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from council.app.endpoints import describe_learned, learned_limits
from council.endpoint.learned import LearnedTable
from council.endpoint.limiter import EndpointLimiter
from council.engine.model import CallOutcome
from council.engine.results import RoundResult
from council.render.format import speculation_note
from tests.fake_openai import FakeOpenAI, RecordedRequest, Reply
from tests.helpers import history_rows, invoke, oracle_json

SIX = "judge,critic,skeptic,optimist,pragmatist,historian"


def sent_together(records: list[RecordedRequest]) -> bool:
    """Every request reached the server before it sent any of them its response headers:
    none waited for another to be accepted."""
    arrived = max(r.received_at for r in records)
    return all(r.responded_at is not None and r.responded_at > arrived for r in records)


def many_personas(count: int) -> str:
    personas = Path(os.environ["COUNCIL_HOME"]) / "personas"
    personas.mkdir(parents=True, exist_ok=True)
    names = [f"member-{i:02d}" for i in range(count)]
    for name in names:
        (personas / f"{name}.yaml").write_text(
            f"name: {name}\ndescription: Member {name}.\nsystem: You are {name}.\n"
        )
    return ",".join(names)


def run_requests(fake: FakeOpenAI, *args: str) -> tuple[int, dict, list[RecordedRequest]]:
    """One oracle run as a new process: its exit code, document and requests."""
    before = len(fake.requests)
    code, doc = oracle_json(fake, *args)
    return code, doc, fake.requests[before:]


def turned_away(records: list[RecordedRequest]) -> int:
    return sum(1 for r in records if r.over_limit or r.interrupted)


def test_six_personas_go_out_together_on_the_first_run_and_the_next_two(
    fake: FakeOpenAI,
) -> None:
    # A hosted API: no slot limit, response headers when the first token is ready.
    fake.default = Reply(header_delay=0.6, tokens=3)
    for _ in range(3):
        code, doc, records = run_requests(fake, "--personas", SIX, "q")
        assert code == 0, doc
        assert len(records) == 6 and sent_together(records)
        assert doc["metrics"]["limit_changes"] == []
    # What it took at once is kept; nothing was turned away, so no limit was learned.
    (row,) = history_rows("SELECT capacity, took, slots FROM endpoint_limits")
    assert (row["capacity"], row["took"], row["slots"]) == (None, 6, 0)
    assert fake.props_requests == 1  # asked once, ever: the answer (none stated) is kept


def test_every_round_of_a_speculative_deliberation_goes_out_together(fake: FakeOpenAI) -> None:
    fake.default = Reply(header_delay=0.6, tokens=3)
    for number in (1, 2, 3):
        verdict = {"converged": number == 3, "confidence": 0.9, "synthesis": f"S{number}."}
        fake.script("arbiter", Reply(text=json.dumps({**verdict, "dissent": []})), round=number)
    flags = ["--rounds", "3", "--speculative", "--json"]
    result = invoke("deliberate", "--base-url", fake.base_url, "-p", SIX, *flags, "q")
    assert result.exit_code == 0, result.output
    personas = [r for r in fake.requests if r.persona != "arbiter"]
    for number in ("1", "2", "3"):
        round_records = [r for r in personas if r.round == number]
        assert len(round_records) == 6 and sent_together(round_records), number


def test_a_four_slot_server_turning_calls_away_answers_all_and_is_lived_within_next_time(
    fake: FakeOpenAI,
) -> None:
    fake.slots, fake.over_limit, fake.slot_retry_after = 4, "429", 0.05
    fake.default = Reply(ttft=0.2, tokens=3)
    twenty = many_personas(20)
    code, doc, first = run_requests(fake, "--personas", twenty, "q")
    assert code == 0, doc
    assert len(doc["answers"]) == 20
    assert turned_away(first) > 0  # nothing was known: the default ceiling went out
    code, doc, second = run_requests(fake, "--personas", twenty, "q")
    assert code == 0 and len(doc["answers"]) == 20
    assert turned_away(second) == 0 and len(second) == 20


def test_slots_the_server_states_are_lived_within_from_the_first_run(fake: FakeOpenAI) -> None:
    fake.slots, fake.over_limit, fake.total_slots = 4, "429", 4
    fake.default = Reply(ttft=0.2, tokens=3)
    twenty = many_personas(20)
    for _ in range(2):
        code, doc, records = run_requests(fake, "--personas", twenty, "q")
        assert code == 0 and len(doc["answers"]) == 20
        assert turned_away(records) == 0 and len(records) == 20
    assert fake.props_requests == 1  # the second run knew it from the history
    (row,) = history_rows("SELECT slots, took FROM endpoint_limits")
    assert (row["slots"], row["took"]) == (4, 4)
    (kept,) = learned_limits(fake.base_url)  # as `endpoints list` and `check` show it
    assert describe_learned(kept).endswith("took 4 at once, states 4 slots")


def test_a_single_slot_server_that_ends_streams_answers_all_then_interrupts_nothing(
    fake: FakeOpenAI,
) -> None:
    fake.slots, fake.over_limit = 1, "interrupt"
    fake.default = Reply(ttft=0.2, tokens=3)
    code, doc, first = run_requests(fake, "--personas", SIX, "q")
    assert code == 0, doc
    assert {a["persona"] for a in doc["answers"]} == set(SIX.split(","))
    assert turned_away(first) > 0
    code, doc, second = run_requests(fake, "--personas", SIX, "q")
    assert code == 0 and len(doc["answers"]) == 6
    assert turned_away(second) == 0 and len(second) == 6


def test_a_limit_learned_from_a_rejection_does_not_fall_below_what_was_taken_before() -> None:
    async def scenario() -> tuple[int, int | None]:
        table = LearnedTable()
        table.learned_for("http://h/v1", "m").took = 5
        limiter = EndpointLimiter("h", "http://h/v1", "m", ceiling=8, table=table)
        tickets = [await limiter.acquire() for _ in range(8)]
        # 8 in flight, one turned away: half would be 4, but it took 5 at once before.
        limiter.release(tickets.pop(), rejected=True, reason="429 answer")
        return limiter.limit, limiter.capacity

    assert asyncio.run(scenario()) == (5, 5)


def test_calls_that_all_went_well_at_once_raise_a_capacity_learned_lower() -> None:
    async def scenario() -> tuple[int | None, int | None]:
        limiter = EndpointLimiter("h", "http://h/v1", "m", ceiling=8)
        limiter.capacity = limiter.limit = 2
        limiter._change(4, "as if probing")  # four in flight, none turned away
        tickets = [await limiter.acquire() for _ in range(4)]
        limiter.release(tickets.pop())
        return limiter.capacity, limiter.table.learned_for("http://h/v1", "m").took

    assert asyncio.run(scenario()) == (4, 4)


def test_a_probe_turned_away_goes_back_to_the_capacity_though_others_ended_well() -> None:
    # A call sent before the probe ends well while the probe is in flight: that proves
    # what was in flight when *it* went (8), not the 9 in flight now, so the probe's
    # 429 is a failed probe (back to 8), not a rejection at capacity (halved to 4).
    async def scenario() -> tuple[int, int | None, int | None]:
        limiter = EndpointLimiter("h", "http://h/v1", "m", ceiling=16)
        limiter.capacity = limiter.limit = 8
        earlier = [await limiter.acquire() for _ in range(8)]
        limiter._change(9, "probing for more room")
        probe = await limiter.acquire()
        limiter.release(earlier[-1])
        limiter.release(probe, rejected=True, reason="429 answer")
        return limiter.limit, limiter.capacity, limiter.table.learned_for("http://h/v1", "m").took

    assert asyncio.run(scenario()) == (8, 8, 8)


def test_the_footer_says_what_speculation_cost_when_it_made_the_run_slower() -> None:
    assert speculation_note(-0.52, 2.0) == "speculation cost 520 ms"
    assert speculation_note(-1.5, 2.0) == "speculation cost 1.50 s"
    assert speculation_note(0.0002, 2.0) == "speculation saved no time"
    assert speculation_note(0.5, 2.0) == "saved 500 ms (25%)"


def test_a_resumed_round_counts_only_the_calls_it_made() -> None:
    kept = CallOutcome(persona="judge", text="a", latency=3.0, reused_from="run-1")
    made = CallOutcome(persona="critic", text="b", latency=0.5)
    verdict = CallOutcome(persona="arbiter", role="arbiter", text="{}", latency=0.25)
    resumed = RoundResult(2, {"judge": kept, "critic": made}, arbiter=verdict)
    assert resumed.critical_path == 0.75
    old_verdict = CallOutcome(persona="arbiter", role="arbiter", latency=2.0, reused_from="r")
    assert RoundResult(1, {"judge": kept}, arbiter=old_verdict).critical_path == 0.0


def test_on_one_slot_the_footer_says_what_speculation_cost(fake: FakeOpenAI) -> None:
    # One slot: each round's personas wait for each other, which one at a time would not.
    fake.default = Reply(ttft=0.2, tokens=3)
    for number in (1, 2):
        verdict = {"converged": number == 2, "confidence": 0.9, "synthesis": f"S{number}."}
        fake.script("arbiter", Reply(text=json.dumps({**verdict, "dissent": []})), round=number)
    flags = ["--rounds", "2", "--speculative", "--max-concurrency", "1"]
    result = invoke("deliberate", "--base-url", fake.base_url, "-p", "judge,critic", *flags, "q")
    assert result.exit_code == 0, result.output
    (footer,) = [line for line in result.stdout.splitlines() if "sequential" in line]
    assert "speculation cost" in footer and "saved" not in footer
