"""Does a budget hold? 100 councils with random budgets against the fake server.

The fake OpenAI-compatible server runs in its own process (benchmarks/fake_process.py),
keeps to each request's max_tokens as a real server does, and reports usage (a token
is 2 to 4 characters of prompt, at random, and a word of answer: denser than council's
estimate of 3 characters at times, so that prompts cost more than was reserved for them).
council's engines run in-process,
each run a random council (a seeded RNG): oracle (with or without a synthesis) or
deliberation (sequential or speculative), random max_tokens, answer lengths and
prices, and a random budget from 5 % to 120 % of the plan's worst case, in USD
(--budget-usd) or in tokens (--max-tokens-total).

For each run it reports what was spent against the budget, the overshoot (spent over
the budget, 0 when within) and one call's estimation error (the most any single call
cost over what was reserved for it: its prompt took more tokens than estimated).
Target: no run overshoots by more than one call's estimation error.

    python benchmarks/budget_bench.py              # 100 runs, seed 17
    python benchmarks/budget_bench.py --runs 20 --seed 3
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_process import control, resolved_settings, start_server

PERSONAS = ["judge", "critic", "skeptic", "pragmatist"]
QUESTIONS = [
    "Should we rewrite the billing service in Rust?",
    "Is a four-day week good for a small support team? Weigh the risks and the gains.",
    "Monorepo or not, for six services and three teams?",
]


def _one_run(base_url: str, rng: random.Random, index: int) -> dict[str, Any]:
    from council.engine.cost import worst_case_usd
    from council.engine.deliberation import DeliberationRun
    from council.engine.events import EventBus
    from council.engine.oracle import OracleRun
    from council.engine.plan import build_deliberation_plan, build_oracle_plan

    # Each council as its own command: nothing learned about the server carries over
    # (its tokenizer changes from run to run here, as a real server's does not): each
    # run makes a pool of its own.
    loaded = resolved_settings(base_url, max_concurrency=8)
    catalog = loaded.catalog
    price_in = round(rng.uniform(0.1, 20.0), 3)
    price = {"input": price_in, "output": round(price_in * rng.uniform(2, 5), 3)}
    endpoint = dataclasses.replace(loaded.settings.endpoint, price=price)
    personas = catalog.resolve(rng.sample(PERSONAS, rng.randint(2, 4)))
    options = {"max_tokens": rng.randint(20, 300)}
    control(base_url, "/_fake/default", {"tokens": rng.randint(5, 400)})
    # A tokenizer denser than council's estimate (3 characters a token) at times: the
    # prompt then costs more than was reserved for it, which is the estimation error.
    density = rng.choice([4.0, 3.0, 2.5, 2.0])
    control(base_url, "/_fake/settings", {"usage_chars_per_token": density})
    question = rng.choice(QUESTIONS)
    deliberate = rng.random() < 0.5
    common: dict[str, Any] = {
        "query": question,
        "personas": personas,
        "endpoint": endpoint,
        "options": options,
    }
    if deliberate:
        plan: Any = build_deliberation_plan(
            **common,
            arbiter=catalog.get("arbiter"),
            rounds=rng.randint(2, 3),
            speculative=rng.random() < 0.5,
        )
        mode = "deliberate" + (" --speculative" if plan.speculative else "")
    else:
        synthesize = rng.random() < 0.5
        plan = build_oracle_plan(**common, arbiter=catalog.get("arbiter") if synthesize else None)
        mode = "oracle" + (" --synthesize" if synthesize else "")
    worst = worst_case_usd(plan)
    assert worst is not None
    share = rng.uniform(0.05, 1.2)
    in_usd = rng.random() < 0.6
    if in_usd:
        plan = dataclasses.replace(plan, budget_usd=worst * share)
    else:  # the same share of the worst case, in tokens
        tokens = worst * 1e6 / ((price["input"] + price["output"]) / 2)
        plan = dataclasses.replace(plan, max_tokens_total=max(1, int(tokens * share)))
    engine = DeliberationRun(plan, EventBus()) if deliberate else OracleRun(plan, EventBus())
    result = asyncio.run(engine.execute())
    budget = result.budget
    assert budget is not None
    if in_usd:
        limit, spent, error = budget.usd, result.cost_usd or 0.0, budget.worst_excess_usd
    else:
        limit, spent, error = budget.tokens, budget.spent_tokens, budget.worst_excess_tokens
    assert limit is not None
    overshoot = max(0.0, spent - limit)
    return {
        "run": index,
        "mode": mode,
        "unit": "USD" if in_usd else "tokens",
        "budget": limit,
        "spent": spent,
        "share_spent": spent / limit,
        "overshoot": overshoot,
        "one_call_error": max(0.0, error),
        "beyond": overshoot > max(0.0, error) + 1e-12,
        "stopped": budget.stopped,
        "lowered": len(budget.lowered),
        "exit_code": result.exit_code,
    }


def measure(runs: int = 100, seed: int = 17) -> list[dict[str, Any]]:
    """`runs` random councils under random budgets; one dict per run (see the module doc)."""
    rng = random.Random(seed)
    before = os.environ.get("COUNCIL_HOME")
    with tempfile.TemporaryDirectory() as workdir:
        # The built-in personas only, nothing of the caller's config (restored after).
        os.environ["COUNCIL_HOME"] = str(Path(workdir) / "home")
        server, base_url = start_server(Path(workdir))
        try:
            control(base_url, "/_fake/settings", {"honour_max_tokens": True})
            return [_one_run(base_url, rng, i) for i in range(1, runs + 1)]
        finally:
            server.terminate()
            server.wait(timeout=10)
            if before is None:
                os.environ.pop("COUNCIL_HOME", None)
            else:
                os.environ["COUNCIL_HOME"] = before


def _amount(value: float, unit: str) -> str:
    return f"${value:.6f}" if unit == "USD" else f"{value:,.0f} tok"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    rows = measure(args.runs, args.seed)
    print(
        f"{'run':>3}  {'council':<24} {'budget':>14} {'spent':>14} {'spent %':>7} "
        f"{'overshoot':>14} {'1-call error':>14} {'stopped':>7} {'lowered':>7}"
    )
    for row in rows:
        unit = row["unit"]
        print(
            f"{row['run']:>3}  {row['mode']:<24} {_amount(row['budget'], unit):>14} "
            f"{_amount(row['spent'], unit):>14} {row['share_spent'] * 100:>6.1f}% "
            f"{_amount(row['overshoot'], unit):>14} {_amount(row['one_call_error'], unit):>14} "
            f"{'yes' if row['stopped'] else '':>7} {row['lowered']:>7}"
        )
    beyond = [r for r in rows if r["beyond"]]
    over = [r for r in rows if r["overshoot"] > 0]
    worst = max(rows, key=lambda r: r["overshoot"] / r["budget"])
    print()
    print(
        f"{len(rows)} runs: {len(over)} over their budget at all; max overshoot "
        f"{worst['overshoot'] / worst['budget'] * 100:.3f}% of its budget "
        f"(run {worst['run']}, {_amount(worst['overshoot'], worst['unit'])}); "
        f"beyond one call's estimation error: {len(beyond)} (target 0); "
        f"stopped by the budget: {sum(r['stopped'] for r in rows)}; "
        f"spent at most {max(r['share_spent'] for r in rows) * 100:.1f}% of a budget"
    )
    return 0 if not beyond else 1


if __name__ == "__main__":
    raise SystemExit(main())
