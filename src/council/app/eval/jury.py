"""`council eval --scorer jury`: a jury grades each answer against the item's expected one,
and the eval reports how far the jury agrees with the labels (Cohen's kappa).

What the jury grades: the strategy's answer to the item's question (with its options),
against the item's `expected` answer shown as the reference, on one criterion ("agrees
with the reference answer", 1-5), approving or rejecting it (`engine/jury.py`'s rubric
case with a reference). Approved counts as correct; rejected or undecided as wrong.

The jurors: the preset's `jury:` when it has one, else the run's personas (-p, -m).

The labels: the same answer scored plainly against `expected`, by the item's own
`scorer` field when it names one that asks nobody (exact, choice, regex, number), else
`choice` for an item with choices and `exact` for one without. Where the labels can
say what is right, the kappa says whether the jury can be trusted where they cannot.
Cohen's kappa is over the answers the jury ruled on (approve or reject), all
strategies pooled, and per strategy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from council.app.ask import ResolvedCouncil
from council.app.eval.setup import member_setup, scored_plainly
from council.app.eval.strategies import EvalItem
from council.app.jury_cases import JuryCase, case_plans, case_verdict
from council.app.usage import Usage
from council.engine.agreement_stats import cohen_kappa
from council.engine.jury import APPROVE, REFERENCE_CRITERIA, REJECT
from council.engine.plan import OraclePlan
from council.engine.scoring import SCORER_REGISTRY, Tolerance, check_expected

__all__ = ["JURY", "jury_agreement", "jury_score", "jury_setup", "label_item"]

JURY = "jury"
# Majority of the jurors' verdicts; a juror's own verdict follows its score where unsaid.
POOL, PASS_SCORE = "majority", 3.5

Run = Callable[[OraclePlan], Awaitable[tuple[Any, Usage]]]


def jury_setup(jury: ResolvedCouncil, request: Any) -> list[dict[str, Any]]:
    """The jurors as a line records them: a change re-scores stored answers."""
    return [member_setup(p, request) for p in jury.personas]


def label_item(item: EvalItem) -> EvalItem:
    """The item as its labels score it: its own plain scorer, else choice or exact."""
    own = item.item.fields.get("scorer")
    fallback = "choice" if item.choices else "exact"
    if own not in SCORER_REGISTRY or SCORER_REGISTRY[own].asks_model:
        return dataclasses.replace(item, scorer=fallback)
    # Its own scorer must be able to score it (choices for choice, a valid regex...).
    usable = check_expected(own, item.expected, item.choices) is None
    return dataclasses.replace(item, scorer=own if usable else fallback)


async def jury_score(
    jury: ResolvedCouncil,
    item: EvalItem,
    answer: str,
    run: Run,
    tolerance: Tolerance,
    metrics: dict[str, Any],
) -> tuple[str, bool, dict[str, Any]]:
    """(predicted, correct, the line's jury fields): the jury's verdict on one answer.

    The jury's calls are counted in `metrics` as the judge's are (`judge_*`).
    """
    case = JuryCase(item.question, answer=answer, criteria=REFERENCE_CRITERIA)
    case = dataclasses.replace(case, reference=item.expected)
    plans = case_plans(jury, case)
    results, calls, tokens_in, tokens_out, costs = [], 0, 0, 0, []
    for plan in plans:
        result, meter = await run(plan)
        results.append(result)
        calls += meter.calls
        tokens_in += meter.tokens_in or 0
        tokens_out += meter.tokens_out or 0
        costs.append(meter.cost_usd)
    metrics.update(
        judge_calls=calls,
        judge_tokens_in=tokens_in,
        judge_tokens_out=tokens_out,
        judge_cost_usd=None if None in costs else sum(c or 0 for c in costs),
    )
    verdict = case_verdict(case, plans, results, POOL, PASS_SCORE)
    _, label, _ = scored_plainly(label_item(item), answer, "", tolerance)
    fields = {
        "jury": {
            "verdict": verdict.verdict,
            "agreement": verdict.to_dict()["agreement"],
            "jurors": [{"juror": j.juror, "verdict": j.verdict} for j in verdict.jurors],
        },
        "label_correct": label,
    }
    return verdict.verdict, verdict.verdict == APPROVE, fields


def _kappa(pairs: list[tuple[bool, bool]]) -> dict[str, Any]:
    value = cohen_kappa([j for j, _ in pairs], [label for _, label in pairs]) if pairs else None
    return {"value": None if value is None else round(value, 4), "n": len(pairs)}


def jury_agreement(lines: list[dict[str, Any]], strategies: list[str]) -> dict[str, Any] | None:
    """Cohen's kappa of the jury's verdicts against the labels (None: no jury line)."""
    ruled: dict[str, list[tuple[bool, bool]]] = {s: [] for s in strategies}
    any_jury = False
    for line in lines:
        jury = line.get("jury")
        if line.get("scorer") != JURY or not isinstance(jury, dict):
            continue
        any_jury = True
        label = line.get("label_correct")
        if jury.get("verdict") in (APPROVE, REJECT) and isinstance(label, bool):
            pair = (jury["verdict"] == APPROVE, label)
            ruled.setdefault(str(line.get("strategy")), []).append(pair)
    if not any_jury:
        return None
    pooled = [pair for pairs in ruled.values() for pair in pairs]
    return {
        "statistic": "cohen_kappa",
        "against": "labels",
        **_kappa(pooled),
        "strategies": {name: _kappa(pairs) for name, pairs in ruled.items()},
    }
