"""Anonymous peer ranking: who sees which answers under which label, reading a ranking, Borda.

Each reviewer sees the other members' answers, never its own (models favour
their own answers), labelled "Response A", "Response B", ... in an order
shuffled separately for each reviewer (judges favour positions). The shuffles
come from a seeded RNG, so a seed gives the same labels every time.

Aggregation is a Borda count. A reviewer that ranked k responses gives the one
at place p (0 = best) `(k - 1 - p) / (k - 1) * (n - 2)` points, where n is the
number of answers reviewed: a full ranking of the n - 1 others gives the
classic n - 2, n - 3, ..., 0, and a shorter one is stretched to the same scale
(a single ranked response gets n - 2). Responses a reviewer left out get 0. A
persona's points are the sum over its reviewers.
"""

from __future__ import annotations

import asyncio
import random
import re
import string
from collections.abc import Mapping, Sequence
from typing import Protocol

from council.engine.bias import BiasReport, bias_report, place_shares
from council.engine.clients import EndpointClients
from council.engine.model import CallOutcome, CallSpec, RankingResult
from council.engine.plan import OraclePlan
from council.engine.replies import json_objects
from council.engine.results import OracleResult

__all__ = [
    "ReviewRun",
    "borda",
    "labels",
    "ranking_result",
    "read_ranking",
    "run_reviews",
    "shuffled_for",
]

# Fewer answers than this leaves nothing to rank: each reviewer would see one.
MIN_ANSWERS = 3

_FINAL = re.compile(r"final\s+ranking\s*:?", re.IGNORECASE)
_RESPONSE = re.compile(r"\bresponse\s+([A-Z])\b", re.IGNORECASE)
_NUMBERED = re.compile(r"^\s*\d+\s*[.)]\s*\W*([A-Z])\b", re.MULTILINE)
_CHAIN = re.compile(r"\b([A-Z])\b(?:\s*[>,]\s*\b([A-Z])\b)+")


def labels(count: int) -> list[str]:
    """ "A", "B", ... for `count` responses (26 at most, then "AA", "AB", ...)."""
    letters = string.ascii_uppercase
    return [letters[i] if i < 26 else letters[i // 26 - 1] + letters[i % 26] for i in range(count)]


def shuffled_for(reviewer: str, others: Sequence[str], seed: int) -> list[str]:
    """The order `reviewer` sees the `others`' answers in: its own shuffle of the seed."""
    order = list(others)
    random.Random(f"{seed}:{reviewer}").shuffle(order)
    return order


def _letters_in(text: str) -> list[str]:
    found = [m.upper() for m in _RESPONSE.findall(text)]
    if found:
        return found
    chain = _CHAIN.search(text)
    if chain:
        return [c.upper() for c in re.findall(r"\b([A-Z])\b", chain.group(0))]
    return [m.upper() for m in _NUMBERED.findall(text)]


def _from_json(reply: str) -> list[str]:
    for data in json_objects(reply):
        ranking = next((v for k, v in data.items() if str(k).lower() == "ranking"), None)
        if isinstance(ranking, list):
            return [str(item) for item in ranking]
    return []


def read_ranking(reply: str, valid: Sequence[str]) -> list[str]:
    """The labels `reply` ranks, best first: after "FINAL RANKING:", from a JSON
    `{"ranking": [...]}`, a numbered list or "C > A > B"; each once, only `valid` ones."""
    final = list(_FINAL.finditer(reply))
    region = reply[final[-1].end() :] if final else reply
    items = [x for item in _from_json(reply) for x in _letters_in(item) or [item.strip()]]
    found = items or _letters_in(region) or (_letters_in(reply) if final else [])
    ranked: list[str] = []
    allowed = set(valid)
    for label in (f.upper() for f in found):
        if label in allowed and label not in ranked:
            ranked.append(label)
    return ranked


def borda(rankings: Mapping[str, Sequence[str]], reviewed: Sequence[str]) -> dict[str, float]:
    """Borda points per persona of `reviewed` (the module docstring has the formula)."""
    n = len(reviewed)
    points = {name: 0.0 for name in reviewed}
    for ranked in rankings.values():
        k = len(ranked)
        for place, name in enumerate(ranked):
            if name in points:
                share = 1.0 if k == 1 else (k - 1 - place) / (k - 1)
                points[name] += share * max(0, n - 2)
    return points


def ranking_result(
    rankings: Mapping[str, Sequence[str]],
    reviewed: Sequence[str],
    shown: Mapping[str, Sequence[str]],
    seed: int | None,
) -> RankingResult:
    """The aggregate: points, the order (most points first, ties in plan order), each review."""
    points = borda(rankings, reviewed)
    position = {name: i for i, name in enumerate(reviewed)}
    order = sorted(reviewed, key=lambda name: (-points[name], position[name]))
    return RankingResult(
        borda=points,
        order=tuple(order),
        per_reviewer={name: tuple(r) for name, r in rankings.items()},
        shown={name: tuple(s) for name, s in shown.items()},
        seed=seed,
    )


class ReviewRun(Protocol):
    """What peer review needs of the run that asks (an OracleRun): its plan, its result
    (the answers to review; the reviews land there as calls end), and a call run."""

    @property
    def plan(self) -> OraclePlan: ...
    @property
    def result(self) -> OracleResult: ...
    async def call(self, client: EndpointClients, call: CallSpec) -> None: ...


async def run_reviews(run: ReviewRun, clients: EndpointClients) -> None:
    """Each persona that answered ranks the others' answers (round 2, role "reviewer"),
    all at once; the aggregate goes to `run.result.ranking`. Fewer than MIN_ANSWERS
    answers: nothing to rank, no call.

    The bias checks (round 3, role "check") go at the same time, so they add no wait:
    a seeded sample of `rank_position_checks` reviewers ranks again in the reverse
    order, and a `rank_self_check_rate` share ranks every answer, its own included
    (a shadow review). Their figures go to `run.result.bias`; the ranking never counts them.
    """
    plan, result = run.plan, run.result
    texts = {a.persona: a.text for a in result.answers}
    names = list(texts)
    if len(names) < MIN_ANSWERS:
        return
    seed = plan.rank_seed if plan.rank_seed is not None else 0
    personas = {p.name: p for p in plan.personas}
    shown = {r: shuffled_for(r, [n for n in names if n != r], seed) for r in names}
    checks = _checks(plan, names, shown, seed)
    async with asyncio.TaskGroup() as group:
        for reviewer, order in shown.items():
            call = plan.review_call(personas[reviewer], _responses(order, texts))
            group.create_task(run.call(clients, call))
        for (kind, reviewer), order in checks.items():
            call = plan.review_call(personas[reviewer], _responses(order, texts), check=kind)
            group.create_task(run.call(clients, call))
    rankings: dict[str, tuple[str, ...]] = {}
    for reviewer, order in shown.items():
        ranked = _ranked(result.reviews.get(reviewer), order)
        if ranked is not None:
            rankings[reviewer] = ranked
    result.ranking = ranking_result(rankings, names, shown, plan.rank_seed)
    result.bias = _bias(plan, result, rankings, checks, texts)


def _responses(order: Sequence[str], texts: Mapping[str, str]) -> list[tuple[str, str]]:
    return list(zip(labels(len(order)), (texts[n] for n in order), strict=True))


def _ranked(outcome: CallOutcome | None, order: Sequence[str]) -> tuple[str, ...] | None:
    """The personas a review ranks, best first; None when the call did not answer."""
    if outcome is None or not outcome.answered:
        return None
    by_label = dict(zip(labels(len(order)), order, strict=True))
    return tuple(by_label[label] for label in read_ranking(outcome.text, list(by_label)))


def _checks(
    plan: OraclePlan, names: list[str], shown: Mapping[str, Sequence[str]], seed: int
) -> dict[tuple[str, str], list[str]]:
    """The bias checks to ask, (kind, reviewer) -> the order its answers are shown in.

    Seeded like the shuffles, so a seed re-asks the same reviewers."""
    checks: dict[tuple[str, str], list[str]] = {}
    count = min(max(plan.rank_position_checks, 0), len(names))
    for reviewer in random.Random(f"{seed}:reversed").sample(names, count):
        checks[("reversed", reviewer)] = list(reversed(shown[reviewer]))
    if plan.rank_self_check_rate > 0:
        draw = random.Random(f"{seed}:self")
        for reviewer in names:
            if draw.random() < plan.rank_self_check_rate:
                checks[("self", reviewer)] = shuffled_for(f"{reviewer}:self", names, seed)
    return checks


def _bias(
    plan: OraclePlan,
    result: OracleResult,
    rankings: Mapping[str, Sequence[str]],
    checks: Mapping[tuple[str, str], Sequence[str]],
    texts: Mapping[str, str],
) -> BiasReport:
    consistent: dict[str, bool] = {}
    self_first: dict[str, tuple[bool, float]] = {}
    for (kind, reviewer), order in checks.items():
        ranked = _ranked(result.checks.get(f"r3-{kind}-{reviewer}"), order)
        if not ranked:
            continue  # not answered or not read: not measured
        if kind == "self":
            self_first[reviewer] = (ranked[0] == reviewer, 1 / len(order))
        elif rankings.get(reviewer):
            consistent[reviewer] = ranked[0] == rankings[reviewer][0]
    return bias_report(
        {reviewer: place_shares(ranked) for reviewer, ranked in rankings.items() if ranked},
        {name: len(text.strip()) for name, text in texts.items()},
        consistent=consistent,
        self_first=self_first,
        models={name: plan.where(name)[0] for name in texts},
    )
