"""`council eval`'s strategies: the plan each runs for an item, the answer it gives, its score.

    plans = StrategyPlans(council, alone)   # the council on its served endpoints
    plan = plans.plan("synthesize", item)          # an OraclePlan or a DeliberationPlan
    answer, note = answer_of("synthesize", result, alone)
    predicted, correct = score_answer(item, answer, tolerance)

A persona's name is that persona alone; `synthesize` and `deliberate` are the run's
personas with the arbiter; `vote` the personas' ballots (the item's option letters as
the choices; its answer `OracleResult.vote.winner`, a tie counts as wrong) and `rank`
their anonymous peer ranking (the answer of the persona ranked first); `escalate` is
`synthesize` asked of a first panel first (the rest only where it is in doubt).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from council.app.ask import ResolvedCouncil, deliberation_plan, oracle_plan, with_system
from council.app.batch.items import BatchItem
from council.config.personas import Persona
from council.engine.plan import DeliberationPlan, OraclePlan
from council.engine.prompts import eval_judge_prompt, eval_question
from council.engine.scoring import Tolerance, score
from council.errors import UsageError

__all__ = [
    "COUNCIL_STRATEGIES",
    "STRATEGIES",
    "EvalItem",
    "Strategy",
    "StrategyPlans",
    "answer_of",
    "choose_strategies",
    "members_of",
    "score_answer",
]


@dataclass(frozen=True)
class EvalItem:
    """One labelled item: its question, what is expected, its options, its scorer."""

    item: BatchItem
    expected: str
    choices: list[str] | None
    scorer: str

    @property
    def question(self) -> str:
        return eval_question(self.item.query, self.choices)


def choose_strategies(
    text: str | None, request: ResolvedCouncil, system: str | None
) -> tuple[list[str], dict[str, Persona]]:
    """The strategies in order, and the persona of each persona-alone strategy."""
    if text is None:
        names = [request.personas[0].name, "vote"]
    else:
        names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError("--strategies is empty", "e.g. --strategies judge,synthesize")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"--strategies lists {', '.join(twice)} twice", "give each once")
    alone: dict[str, Persona] = {}
    members = {p.name: p for p in request.personas}
    for name in names:
        if name in COUNCIL_STRATEGIES:
            continue
        if name not in members and name not in request.catalog.names():
            raise _unknown_strategy(name, [*members, *request.catalog.names()])
        persona = members.get(name) or with_system(request.member(name), system)
        if persona.endpoint and persona.endpoint not in request.endpoints:
            raise UsageError(
                f"strategy {name} uses endpoint {persona.endpoint}, "
                "which none of the run's personas uses",
                "add the persona to -p as well",
            )
        alone[name] = persona
    return names, alone


def _unknown_strategy(name: str, personas: list[str]) -> UsageError:
    """A mistyped strategy: the nearest strategy (a persona's name is one too)."""
    close = difflib.get_close_matches(name, [*COUNCIL_STRATEGIES, *personas], n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return UsageError(
        f"unknown strategy {name!r}",
        f"{hint}a strategy is {', '.join(COUNCIL_STRATEGIES)} or a persona's name "
        "('council personas list')",
    )


class StrategyPlans:
    """Each strategy's plan for an item's question, as `oracle` and `deliberate` build
    theirs (`council`: on its endpoints as served)."""

    def __init__(self, council: ResolvedCouncil, alone: dict[str, Persona]) -> None:
        self.council = council
        self.alone = alone

    def plan(self, strategy: str, item: EvalItem) -> OraclePlan | DeliberationPlan:
        if strategy in self.alone:
            return oracle_plan(
                _alone(self.council, self.alone[strategy]), item.question, synthesize=False
            )
        return STRATEGIES[strategy].plan(self.council, item)

    def judge(self, judge: Persona, item: EvalItem, answer: str) -> OraclePlan:
        prompt = eval_judge_prompt(item.item.query, item.expected, answer)
        return oracle_plan(_alone(self.council, judge), prompt, synthesize=False)


def _alone(council: ResolvedCouncil, persona: Persona) -> ResolvedCouncil:
    return dataclasses.replace(council, personas=[persona])


def answer_of(strategy: str, result: Any, alone: dict[str, Persona]) -> tuple[str | None, str]:
    """The strategy's answer text (None: none) and a note (a tie, a failure)."""
    if strategy in alone:
        outcome = result.outcomes.get(strategy)
        if outcome is None or not outcome.answered:
            return None, outcome.message if outcome is not None else "did not finish"
        return outcome.text, ""
    return STRATEGIES[strategy].answer(result)


# -- the council strategies: a new one is one entry in STRATEGIES -------------------------


@dataclass(frozen=True)
class Strategy:
    """A way for the run's council to answer an item: the plan it runs, and the answer
    (text, None: none; and a note) it gives from that plan's result."""

    plan: Callable[[ResolvedCouncil, EvalItem], OraclePlan | DeliberationPlan]
    answer: Callable[[Any], tuple[str | None, str]]


def _synthesize(council: ResolvedCouncil, item: EvalItem) -> OraclePlan:
    return oracle_plan(council, item.question, synthesize=True)


def _letters(item: EvalItem) -> tuple[str, ...]:
    """The item's option letters: a vote's choices."""
    return tuple(chr(ord("A") + i) for i in range(len(item.choices or [])))


def _vote(council: ResolvedCouncil, item: EvalItem) -> OraclePlan:
    return oracle_plan(council, item.question, synthesize=False, vote=True, choices=_letters(item))


def _rank(council: ResolvedCouncil, item: EvalItem) -> OraclePlan:
    seed = council.options.get("seed")  # a seeded review, the same for every item
    fixed = seed if isinstance(seed, int) and not isinstance(seed, bool) else 0
    return oracle_plan(council, item.question, synthesize=False, rank=True, rank_seed=fixed)


def _escalate(council: ResolvedCouncil, item: EvalItem) -> OraclePlan:
    """`synthesize`, asked of the first panel first (the preset's `escalate:`, else the
    defaults): the rest and the arbiter only where the panel is in doubt."""
    from council.app.escalate import EscalateOptions, escalate_options, escalation_for

    options = escalate_options(council.escalate) or EscalateOptions()
    seed = council.options.get("seed")
    escalation = escalation_for(
        options,
        [p.name for p in council.personas],
        seed=None if seed is None else (seed, item.question),
    )
    return oracle_plan(council, item.question, synthesize=True, escalation=escalation)


def _deliberate(council: ResolvedCouncil, item: EvalItem) -> DeliberationPlan:
    # Never speculative: an eval compares answers, and speculation changes only time.
    return deliberation_plan(council, item.question, max_wasted_tokens=None, speculative=False)


def _final_answer(none: str) -> Callable[[Any], tuple[str | None, str]]:
    """The council's one answer (`result.answer`); `none` is the note when there is none."""

    def answer(result: Any) -> tuple[str | None, str]:
        return (None, none) if result.answer is None else (result.answer, "")

    return answer


def _vote_answer(result: Any) -> tuple[str | None, str]:
    """The vote's winner; a tie is an empty answer, counted wrong."""
    vote = getattr(result, "vote", None)
    if vote is None:
        return None, "no vote"
    winner = getattr(vote, "winner", None)
    if winner is None:
        tied = ", ".join(getattr(vote, "winners", ()) or ())
        return "", f"tie ({tied}): counted wrong" if tied else "no ballots"
    return str(winner), ""


def _rank_answer(result: Any) -> tuple[str | None, str]:
    """The answer of the persona the peer ranking put first."""
    ranking = getattr(result, "ranking", None)
    order = getattr(ranking, "order", ()) if ranking is not None else ()
    top = result.outcomes.get(order[0]) if order else None
    if top is None or not top.answered:
        return None, "no ranking"
    return top.text, f"top: {order[0]}"


STRATEGIES: dict[str, Strategy] = {
    "vote": Strategy(_vote, _vote_answer),
    "rank": Strategy(_rank, _rank_answer),
    "synthesize": Strategy(_synthesize, _final_answer("no synthesis")),
    "deliberate": Strategy(_deliberate, _final_answer("no final answer")),
    "escalate": Strategy(_escalate, _final_answer("no answer")),
}
# Strategies that use the run's personas; any other name is a persona alone.
COUNCIL_STRATEGIES = tuple(STRATEGIES)


# -- each member's own answer in a council strategy's run: what the baselines read ---------


def _member(outcome: Any, name: str, answer: str | None, stopped: bool = False) -> dict[str, Any]:
    """One member's own answer and its one call's metrics (None: it gave none)."""
    status = "stopped" if stopped else "failed" if answer is None else "ok"
    metrics: dict[str, Any] = {"calls": 0 if stopped or outcome is None else 1}
    if outcome is not None:
        metrics.update(
            tokens_in=outcome.tokens_in,
            tokens_out=outcome.tokens_out,
            cost_usd=outcome.cost_usd,
            latency=round(outcome.latency, 4),
        )
    return {"persona": name, "status": status, "answer": answer, "metrics": metrics}


def _answers(plan: Any, outcomes: dict[str, Any]) -> list[dict[str, Any]]:
    """Each member's answer, in the council's order."""
    found = []
    for persona in plan.personas:
        outcome = outcomes.get(persona.name)
        text = outcome.text if outcome is not None and outcome.answered else None
        found.append(_member(outcome, persona.name, text))
    return found


def _oracle_members(result: Any) -> list[dict[str, Any]]:
    return _answers(result.plan, result.outcomes)


def _first_round_members(result: Any) -> list[dict[str, Any]]:
    """A deliberation's first round: each member's answer before it saw the others'."""
    first = result.rounds[0] if result.rounds else result.failed_round
    return _answers(result.plan, first.outcomes if first is not None else {})


def _ballot_members(result: Any) -> list[dict[str, Any]]:
    """Each member's ballot choice ("" for an abstention); a ballot the vote stopped
    once decided is no answer at all."""
    vote = getattr(result, "vote", None)
    ballots = vote.ballots if vote is not None else {}
    stopped = vote.stopped if vote is not None else ()
    found = []
    for persona in result.plan.personas:
        outcome = result.outcomes.get(persona.name)
        ballot = ballots.get(persona.name)
        answered = outcome is not None and outcome.answered
        choice = (ballot.choice or "") if ballot is not None else ("" if answered else None)
        found.append(_member(outcome, persona.name, choice, stopped=persona.name in stopped))
    return found


_MEMBERS: dict[str, Callable[[Any], list[dict[str, Any]]]] = {
    "synthesize": _oracle_members,
    "rank": _oracle_members,
    "deliberate": _first_round_members,
    "vote": _ballot_members,
}


def members_of(strategy: str, result: Any) -> list[dict[str, Any]] | None:
    """Each member's own answer in a council strategy's run (None: a persona alone, or
    a strategy whose members' answers are not read)."""
    read = _MEMBERS.get(strategy)
    return None if read is None else read(result)


def score_answer(item: EvalItem, answer: str, tolerance: Tolerance) -> tuple[Any, bool]:
    """(what the scorer read from the answer, whether it is right) for the non-judge scorers."""
    return score(item.scorer, answer, item.expected, item.choices, tolerance)
