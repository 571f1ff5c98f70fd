"""Budgets: --budget-usd and --max-tokens-total reserve each call's worst case, lower
max_tokens to fit, stop a council that cannot go on (exit 3, the best answer kept)."""

from __future__ import annotations

import json
import math
import random
import threading
from typing import Any

import pytest

from council.config.prices import Price
from council.engine.budget import MIN_ANSWER_TOKENS, UNCOUNTED_MARGIN, Ask, Budget
from council.engine.fit import estimate
from tests.fake_openai import FakeOpenAI, RecordedRequest
from tests.helpers import history_rows, invoke
from tests.test_cost import IN, OUT, priced_profile
from tests.test_deliberate import verdict

PRICE = Price(IN, OUT, "profile")


def prompt_of(request: RecordedRequest) -> int:
    """The prompt's size as council estimates it before sending (engine/fit.py)."""
    assert request.body is not None
    return estimate(request.body["messages"])


def usd(prompt: int, answer: int) -> float:
    return (prompt * IN + answer * OUT) / 1e6


def run(*args: str) -> tuple[int, dict[str, Any], str]:
    result = invoke(*args, "--json")
    return result.exit_code, json.loads(result.stdout), result.stderr


def dry_prompts(*args: str) -> list[int]:
    """Each call's prompt as a budget reserves it before the server has counted one (with
    UNCOUNTED_MARGIN), from the plan a dry run prints."""
    code, doc, _ = run(*args, "--dry-run")
    assert code == 0
    return [math.ceil(estimate(call["messages"]) * UNCOUNTED_MARGIN) for call in doc["calls"]]


# -- oracle -----------------------------------------------------------------------------------


def test_a_call_that_could_overshoot_goes_with_a_lower_max_tokens(fake: FakeOpenAI) -> None:
    priced_profile(fake)
    args = ("oracle", "--endpoint", "fake", "-p", "judge", "-o", "max_tokens", "200")
    (prompt,) = dry_prompts(*args, "q")
    code, doc, _ = run(*args, "--budget-usd", repr(usd(prompt, 100)), "q")
    assert code == 0, doc
    (request,) = fake.requests
    assert request.body is not None and request.body["max_tokens"] == 100  # not 200
    assert doc["budget"]["lowered_max_tokens"] == ["r1-judge"] and not doc["budget"]["stopped"]
    assert doc["cost_usd"] <= usd(prompt, 100)


def test_personas_that_do_not_fit_are_not_started(fake: FakeOpenAI) -> None:
    priced_profile(fake)
    args = ("oracle", "--endpoint", "fake", "-p", "judge,critic,skeptic", "-o", "max_tokens", "50")
    judge, critic, skeptic = dry_prompts(*args, "q")
    # Judge and critic with 10 more answer tokens each than the least; skeptic: no room.
    budget = usd(judge + critic, 2 * (MIN_ANSWER_TOKENS + 10))
    assert usd(skeptic, MIN_ANSWER_TOKENS) > usd(0, 20)
    code, doc, stderr = run(*args, "--budget-usd", repr(budget), "q")
    assert code == 3
    assert [a["persona"] for a in doc["answers"]] == ["judge", "critic"]  # kept and shown
    assert sorted(r.persona for r in fake.requests) == ["critic", "judge"]  # skeptic: never sent
    assert [r.body["max_tokens"] for r in fake.requests if r.body] == [26, 26]
    (refused,) = doc["errors"]
    assert refused["persona"] == "skeptic" and refused["error_kind"] == "budget"
    assert refused["cost_usd"] == 0
    assert doc["budget"]["stopped"] and doc["budget"]["not_started"] == ["r1-skeptic"]
    line = [ln for ln in stderr.splitlines() if "reached" in ln]
    assert len(line) == 1 and "not started: skeptic" in line[0]
    # ...and the two that went with less room than they asked say so, with the new limit.
    assert "max_tokens lowered to 26 for r1-judge, r1-critic (from 50)" in stderr
    assert doc["cost_usd"] <= budget
    rows = history_rows("SELECT persona, status, cost_usd FROM calls WHERE persona = 'skeptic'")
    assert [(r["status"], r["cost_usd"]) for r in rows] == [("not_started", 0)]


@pytest.mark.usefixtures("one_process")
def test_a_synthesis_the_budget_cannot_hold_leaves_the_answers(fake: FakeOpenAI) -> None:
    args = ("oracle", "--base-url", fake.base_url, "-p", "judge,critic", "--synthesize")
    args += ("-o", "max_tokens", "16")
    assert invoke(*args, "q").exit_code == 0  # the server counts the prompts: no margin now
    prompts = {r.persona: prompt_of(r) for r in fake.requests}
    fake.reset()
    total = prompts["judge"] + prompts["critic"] + 2 * 16
    code, doc, stderr = run(*args, "--max-tokens-total", str(total), "q")
    assert code == 3 and [a["persona"] for a in doc["answers"]] == ["judge", "critic"]
    assert doc["answer"]["text"] is None and fake.requests_for("arbiter") == []
    assert doc["synthesis"]["error_kind"] == "budget"
    assert "not started: arbiter" in stderr and "synthesis failed" not in stderr


def test_nothing_affordable_still_exits_3_with_one_line(fake: FakeOpenAI) -> None:
    priced_profile(fake)
    code, doc, stderr = run(
        "oracle", "--endpoint", "fake", "-p", "judge", "--budget-usd", "1e-9", "q"
    )
    assert code == 3 and fake.requests == [] and doc["answers"] == []
    assert "--budget-usd 1e-09" in stderr and "nothing could be asked" in stderr
    assert "Traceback" not in stderr


def test_a_budget_without_a_price_is_refused_before_any_call(fake: FakeOpenAI) -> None:
    result = invoke("oracle", "--base-url", fake.base_url, "--budget-usd", "1", "q")
    assert result.exit_code == 2 and fake.requests == []
    (line,) = result.output.strip().splitlines()
    assert "no price is known for model gpt-4o-mini" in line and "price:" in line


def test_a_token_budget_needs_no_price(fake: FakeOpenAI) -> None:
    args = ("oracle", "--base-url", fake.base_url, "-p", "judge,critic", "-o", "max_tokens", "40")
    judge, critic = dry_prompts(*args, "q")
    code, doc, _ = run(*args, "--max-tokens-total", str(judge + 40 + critic // 2), "q")
    assert code == 3 and [a["persona"] for a in doc["answers"]] == ["judge"]
    assert doc["budget"]["spent_tokens"] <= judge + 40 + critic // 2


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--budget-usd", "0"),
        ("--budget-usd", "nan"),
        ("--budget-usd", "-1"),
        ("--max-tokens-total", "0"),
    ],
)
def test_a_budget_that_is_no_budget_is_a_usage_error(
    fake: FakeOpenAI, flag: str, value: str
) -> None:
    result = invoke("oracle", "--base-url", fake.base_url, flag, value, "q")
    assert result.exit_code == 2 and flag in result.output and fake.requests == []


# -- deliberation -------------------------------------------------------------------------------


def deliberation_prompts(fake: FakeOpenAI, args: tuple[str, ...]) -> dict[str, int]:
    """Each call's estimated prompt in an unbudgeted run of the same (deterministic) council.

    That run has the server count prompts: the budgeted run reserves them at their estimate.
    """
    fake.script("arbiter", verdict(False), verdict(False))
    assert invoke(*args, "q").exit_code == 0  # never converging: to the last round
    prompts = {f"{r.persona}-{r.round}": prompt_of(r) for r in fake.requests}
    fake.reset()
    return prompts


DELIBERATE = (
    "deliberate",
    "--base-url",
    "",
    "-p",
    "judge,critic",
    "--rounds",
    "2",
    "-o",
    "max_tokens",
    "30",
)


@pytest.mark.usefixtures("one_process")
def test_a_round_the_budget_cannot_hold_is_not_started(fake: FakeOpenAI) -> None:
    args = (*DELIBERATE[:2], fake.base_url, *DELIBERATE[3:])
    p = deliberation_prompts(fake, args)
    first_round = p["judge-1"] + p["critic-1"] + 2 * 30 + p["arbiter-1"] + 30
    fake.script("arbiter", verdict(False, synthesis="Round one's synthesis."))
    code, doc, stderr = run(*args, "--max-tokens-total", str(first_round), "q")
    assert code == 3 and doc["stop_reason"] == "budget"
    assert [r["round"] for r in doc["rounds"]] == [1]
    assert doc["answer"]["text"] == "Round one's synthesis."  # the last complete round's verdict
    assert not [r for r in fake.requests if r.round == "2"]  # round 2: nothing sent
    assert "round 2 was not started" in stderr and "showing the verdict of round 1" in stderr


@pytest.mark.usefixtures("one_process")
def test_a_verdict_the_budget_cannot_hold_keeps_the_rounds_answers(fake: FakeOpenAI) -> None:
    args = (*DELIBERATE[:2], fake.base_url, *DELIBERATE[3:])
    p = deliberation_prompts(fake, args)
    personas = p["judge-1"] + p["critic-1"] + 2 * 30
    code, doc, stderr = run(*args, "--max-tokens-total", str(personas), "q")
    assert code == 3 and doc["stop_reason"] == "budget"
    assert [len(r["answers"]) for r in doc["rounds"]] == [2] and doc["answer"]["text"] is None
    assert fake.requests_for("arbiter") == []
    assert "round 1's verdict was not asked" in stderr


@pytest.mark.usefixtures("one_process")
def test_speculation_never_takes_the_budget_its_verdict_needs(fake: FakeOpenAI) -> None:
    args = (*DELIBERATE[:2], fake.base_url, *DELIBERATE[3:], "--speculative")
    p = deliberation_prompts(fake, args)
    first_round = p["judge-1"] + p["critic-1"] + 2 * 30 + p["arbiter-1"] + 30
    fake.script("arbiter", verdict(False, synthesis="Round one's synthesis."))
    code, doc, _ = run(*args, "--max-tokens-total", str(first_round), "q")
    # Round 2 could not start beside verdict 1, nor after it: verdict 1 was still asked.
    assert code == 3 and doc["stop_reason"] == "budget"
    assert doc["answer"]["text"] == "Round one's synthesis."
    assert not [r for r in fake.requests if r.round == "2"]
    assert doc["budget"]["not_started"] == ["r2-judge", "r2-critic"]  # noted once
    assert doc["discarded_rounds"] == []


# -- the budget itself ----------------------------------------------------------------------------


def test_reserve_all_or_none_takes_nothing_when_one_does_not_fit() -> None:
    budget = Budget(tokens=100)
    asks = [Ask(prompt=40, room=10, price=None), Ask(prompt=70, room=10, price=None)]
    assert budget.reserve_all(asks, ["a", "b"], all_or_none=True) == [None, None]
    assert budget.reserved_tokens == 0 and budget.refused == ["a", "b"]
    granted = budget.reserve_all(asks, ["a", "b"], all_or_none=False)
    assert granted[0] is not None and granted[1] is None and granted[0].max_tokens == 10


def test_reservations_lower_every_room_alike() -> None:
    budget = Budget(usd=usd(200, 100))
    asks = [Ask(prompt=100, room=500, price=PRICE), Ask(prompt=100, room=500, price=PRICE)]
    granted = budget.reserve_all(asks, ["a", "b"], all_or_none=True)
    assert [g.max_tokens for g in granted if g] == [50, 50]


def test_settling_gives_back_what_a_call_did_not_use() -> None:
    budget = Budget(usd=usd(100, 100))
    first = budget.reserve(Ask(prompt=100, room=100, price=PRICE), "a")
    assert first is not None and budget.reserve(Ask(100, 100, PRICE), "b") is None
    budget.settle(first, cost_usd=usd(50, 10), tokens=60)
    assert budget.spent_usd == pytest.approx(usd(50, 10)) and budget.reserved_usd == 0
    assert budget.reserve(Ask(prompt=20, room=100, price=PRICE), "c") is not None


def test_a_budget_shared_by_threads_is_never_overspent() -> None:
    """A batch shares one budget: reserve and settle from many threads at once."""
    budget = Budget(usd=5.0, tokens=200_000)
    rng = random.Random(17)
    plans = [[(rng.randint(10, 500), rng.randint(16, 800)) for _ in range(200)] for _ in range(8)]

    def worker(calls: list[tuple[int, int]]) -> None:
        for prompt, room in calls:
            granted = budget.reserve(Ask(prompt, room, PRICE), "x")
            if granted is not None:
                used = granted.max_tokens // 2
                budget.settle(granted, cost_usd=usd(prompt, used), tokens=prompt + used)

    threads = [threading.Thread(target=worker, args=(p,)) for p in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert budget.spent_usd <= 5.0 + 1e-9 and budget.spent_tokens <= 200_000
    assert budget.reserved_usd == pytest.approx(0, abs=1e-9) and budget.reserved_tokens == 0
    assert budget.refused  # it did run out


def test_runs_sharing_one_budget_spend_it_together(fake: FakeOpenAI) -> None:
    """A batch gives every item's engine the same Budget: together they stay within it."""
    import asyncio
    import dataclasses

    from council.config.personas import PersonaCatalog
    from council.engine.events import EventBus
    from council.engine.oracle import OracleRun
    from council.engine.plan import build_oracle_plan
    from tests.helpers import resolved_endpoint

    endpoint = dataclasses.replace(
        resolved_endpoint(fake.base_url), price={"input": IN, "output": OUT}
    )
    personas = PersonaCatalog.discover().resolve(["judge", "critic"])
    plans = [
        build_oracle_plan(
            query=f"q{i}", personas=personas, endpoint=endpoint, options={"max_tokens": 40}
        )
        for i in range(6)
    ]
    shared = Budget(usd=4 * usd(400, 40))  # room for about four of the twelve calls

    async def batch() -> list[Any]:
        runs = [OracleRun(plan, EventBus(), budget=shared) for plan in plans]
        return await asyncio.gather(*(run.execute() for run in runs))

    results = asyncio.run(batch())
    spent = sum(r.cost_usd or 0 for r in results)
    assert spent == pytest.approx(shared.spent_usd) and spent <= shared.usd
    assert shared.reserved_usd == pytest.approx(0, abs=1e-12)
    answered = sum(len(r.answers) for r in results)
    assert 0 < answered < 12 and len(fake.requests) == answered
    assert all(r.budget is shared for r in results)
