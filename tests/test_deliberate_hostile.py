"""`council deliberate` when calls break (issue 13): bad chunks, cut and unreadable verdicts,
and a Ctrl-C that arrives while a discarded speculative round is being closed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from council.config.personas import PersonaCatalog
from council.engine.deliberation import DeliberationRun
from council.engine.events import CallCancelled, Event, EventBus, RoundDiscarded
from council.engine.plan import build_deliberation_plan
from council.errors import EXIT_INTERRUPTED
from tests.fake_openai import DONE, FakeOpenAI, Reply, chunk
from tests.helpers import invoke, resolved_endpoint

PERSONAS = ("judge", "critic", "skeptic")


def verdict(converged: bool, synthesis: str = "Synthesis.", **extra: Any) -> Reply:
    data = {"converged": converged, "confidence": 0.9, "synthesis": synthesis, "dissent": []}
    return Reply(text=json.dumps(data), **extra)


def deliberate_json(fake: FakeOpenAI, *args: str) -> tuple[int, dict[str, Any], str]:
    result = invoke("deliberate", "--base-url", fake.base_url, "--json", *args)
    return result.exit_code, json.loads(result.stdout), result.stderr


def test_one_bad_chunk_in_a_round_costs_that_persona_only(fake: FakeOpenAI) -> None:
    broken = Reply(events=[chunk("Half"), {"choices": [{"delta": "oops"}]}, DONE])
    fake.script("critic", broken, broken, round=1)
    fake.script("arbiter", verdict(True))
    code, doc, stderr = deliberate_json(fake, "--retries", "1", "q")
    assert code == 3
    (first,) = doc["rounds"]
    assert sorted(a["persona"] for a in first["answers"]) == ["judge", "skeptic"]
    assert [(e["persona"], e["error_kind"]) for e in first["errors"]] == [("critic", "protocol")]
    assert doc["answer"]["text"] == "Synthesis."
    assert "critic failed in round 1 (protocol)" in stderr


def test_a_verdict_cut_at_max_tokens_is_asked_again_with_more_room(fake: FakeOpenAI) -> None:
    from council.engine.deliberation import VERDICT_ROOM  # (new in issue 13)

    cut = Reply(text='{"converged": true, "confidence": 0.9, "synth', finish_reason="length")
    fake.script("arbiter", cut, verdict(True, "Read the second time."))
    code, doc, _ = deliberate_json(fake, "--rounds", "3", "q")
    assert code == 0
    assert doc["answer"]["text"] == "Read the second time." and doc["stop_reason"] == "converged"
    first, second = fake.requests_for("arbiter")
    assert first.round == second.round == "1"  # the same round's verdict, not round 2's
    # The arbiter persona sets no max_tokens: the retry gets the floor.
    assert "max_tokens" not in first.body and second.body["max_tokens"] == VERDICT_ROOM
    assert first.body["messages"] == second.body["messages"]
    statuses = [(c["role"], c["status"], c["kept"]) for c in doc["timeline"]]
    assert ("arbiter", "retried", False) in statuses and ("arbiter", "answered", True) in statuses
    assert doc["rounds"][0]["arbiter"]["finish_reason"] == "stop"


def test_a_verdict_cut_twice_counts_as_unreadable_and_the_run_as_partial(
    fake: FakeOpenAI,
) -> None:
    cut = Reply(text='{"converged": tr', finish_reason="length")
    fake.script("arbiter", cut, cut, verdict(True))
    code, doc, stderr = deliberate_json(fake, "--rounds", "1", "q")
    assert code == 3  # the only verdict could never be read
    assert len(fake.requests_for("arbiter")) == 2  # retried once, not more
    problem = doc["rounds"][0]["verdict"]["problem"]
    assert "cut at max_tokens" in problem
    assert "could not be read" in stderr


def test_a_cut_but_readable_verdict_is_not_asked_again(fake: FakeOpenAI) -> None:
    fake.script("arbiter", verdict(True, finish_reason="length"))
    code, doc, _ = deliberate_json(fake, "q")
    assert code == 0 and len(fake.requests_for("arbiter")) == 1
    assert doc["rounds"][0]["arbiter"]["finish_reason"] == "length"


def test_verdicts_that_are_never_readable_exit_3(fake: FakeOpenAI) -> None:
    for _ in range(2):
        fake.script("arbiter", Reply(text="They mostly agree, I think."))
    code, doc, stderr = deliberate_json(fake, "--rounds", "2", "q")
    assert code == 3
    assert doc["status"] == "partial" and doc["stop_reason"] == "max_rounds"
    assert len(doc["rounds"]) == 2 and all(r["verdict"]["problem"] for r in doc["rounds"])
    assert stderr.count("could not be read") == 2


def test_one_readable_verdict_is_enough_for_exit_0(fake: FakeOpenAI) -> None:
    fake.script("arbiter", Reply(text="Unsure."), verdict(False), Reply(text="Still unsure."))
    code, doc, _ = deliberate_json(fake, "--rounds", "3", "q")
    assert code == 0 and len(doc["rounds"]) == 3


def test_ctrl_c_while_a_discarded_round_is_closing_is_honoured(fake: FakeOpenAI) -> None:
    """A Ctrl-C that lands while the speculative round's streams close is not swallowed."""
    for name in PERSONAS:
        fake.script(name, Reply(text=f"{name} round 1"), round=1)
        fake.script(name, Reply(hang=True), round=2)  # in flight when the verdict arrives
    fake.script("arbiter", verdict(True, gate="verdict"))
    catalog = PersonaCatalog.discover()
    plan = build_deliberation_plan(
        query="q",
        personas=catalog.resolve(list(PERSONAS)),
        arbiter=catalog.get("arbiter"),
        endpoint=resolved_endpoint(fake.base_url),
        speculative=True,
    )
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    run = DeliberationRun(plan, bus)

    async def main() -> None:
        me = asyncio.current_task()
        assert me is not None

        def ctrl_c_while_closing(event: Event) -> None:
            # The first superseded call is reported from inside the closing: the
            # user's Ctrl-C lands right then.
            closing = isinstance(event, CallCancelled) and event.reason == "superseded"
            if closing and me.cancelling() == 0:
                me.cancel()

        async def verdict_once_round_2_is_in_flight() -> None:
            await asyncio.to_thread(
                fake.wait_for,
                lambda f: sum(1 for r in f.requests if r.round == "2") == len(PERSONAS),
            )
            fake.release("verdict")  # the verdict that ends the council, discarding round 2

        bus.subscribe(ctrl_c_while_closing)
        releasing = asyncio.create_task(verdict_once_round_2_is_in_flight())
        try:
            await run.execute()
        finally:
            await asyncio.shield(releasing)

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())
    assert run.result.interrupted and run.result.exit_code == EXIT_INTERRUPTED
    assert run.result.stop_reason == "converged"  # what the council had, kept
    assert run.result.discarded_rounds == [2]
    assert any(isinstance(e, RoundDiscarded) for e in events)
    # Every stream of the discarded round was closed before the Ctrl-C was let through.
    cancelled = [e for e in events if isinstance(e, CallCancelled)]
    assert sorted(e.persona for e in cancelled) == sorted(PERSONAS)
    fake.wait_for(lambda f: sum(1 for r in f.disconnects if r.round == "2") == len(PERSONAS))
