"""`council eval`'s strategies: the plan each runs for an item, the answer it gives, its score.

    plans = StrategyPlans(request, alone, (endpoint, endpoints))
    plan = plans.plan("synthesize", item)          # an OraclePlan or a DeliberationPlan
    answer, note = answer_of("synthesize", result, alone)
    predicted, correct = score_answer(item, answer, tolerance)

A persona's name is that persona alone; `synthesize` and `deliberate` are the run's
personas with the arbiter; `vote` the personas' ballots (the item's option letters as
the choices; its answer `OracleResult.vote.winner`, a tie counts as wrong) and `rank`
their anonymous peer ranking (the answer of the persona ranked first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from council.app.ask import AskRequest, with_defaults, with_system
from council.app.batch_input import BatchItem
from council.config.personas import Persona
from council.engine.plan import (
    DeliberationPlan,
    OraclePlan,
    build_deliberation_plan,
    build_oracle_plan,
)
from council.engine.prompts import eval_judge_prompt, eval_question
from council.engine.scoring import (
    Tolerance,
    choice_letter,
    exact,
    expected_letter,
    number_in,
    number_matches,
    regex_matches,
)
from council.errors import UsageError

__all__ = [
    "COUNCIL_STRATEGIES",
    "EvalItem",
    "StrategyPlans",
    "answer_of",
    "choose_strategies",
    "score_answer",
]

# Strategies that use the run's personas; any other name is a persona alone.
COUNCIL_STRATEGIES = ("vote", "rank", "synthesize", "deliberate")
# The strategies answered by the voting engine (OracleResult.vote / .ranking).
_VOTING = ("vote", "rank")


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
    text: str | None, request: AskRequest, system: str | None
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
        persona = members.get(name) or with_system(
            with_defaults(request.catalog.get(name), request.settings), system
        )
        if persona.endpoint and persona.endpoint not in request.endpoints:
            raise UsageError(
                f"strategy {name} uses endpoint {persona.endpoint}, "
                "which none of the run's personas uses",
                "add the persona to -p as well",
            )
        alone[name] = persona
    return names, alone


class StrategyPlans:
    """Each strategy's plan for an item's question (endpoints already served)."""

    def __init__(self, request: AskRequest, alone: dict[str, Persona], endpoints: Any) -> None:
        self.request = request
        self.alone = alone
        self.endpoint, self.endpoints = endpoints

    def _oracle(self, question: str, personas: list[Persona], **extra: Any) -> OraclePlan:
        return build_oracle_plan(
            query=question,
            personas=personas,
            endpoint=self.endpoint,
            endpoints=self.endpoints,
            options=self.request.options,
            **extra,
        )

    def plan(self, strategy: str, item: EvalItem) -> OraclePlan | DeliberationPlan:
        request, question = self.request, item.question
        if strategy in self.alone:
            return self._oracle(question, [self.alone[strategy]])
        if strategy == "synthesize":
            return self._oracle(
                question,
                request.personas,
                arbiter=request.arbiter,
                arbiter_fallback=request.arbiter_fallback,
            )
        if strategy in _VOTING:
            # vote: the options' letters are the ballot's choices; rank: a seeded review.
            letters = tuple(chr(ord("A") + i) for i in range(len(item.choices or [])))
            if strategy == "vote":
                return self._oracle(question, request.personas, vote=True, choices=letters)
            seed = request.options.get("seed")
            return self._oracle(
                question,
                request.personas,
                rank=True,
                rank_seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else 0,
            )
        settings = request.settings
        return build_deliberation_plan(
            query=question,
            personas=request.personas,
            arbiter=request.arbiter,
            arbiter_fallback=request.arbiter_fallback,
            endpoints=self.endpoints,
            endpoint=self.endpoint,
            rounds=int(settings.get("rounds")),
            threshold=float(settings.get("threshold")),
            speculative=False,
            options=request.options,
        )

    def judge(self, judge: Persona, item: EvalItem, answer: str) -> OraclePlan:
        prompt = eval_judge_prompt(item.item.query, item.expected, answer)
        return self._oracle(prompt, [judge])


def answer_of(strategy: str, result: Any, alone: dict[str, Persona]) -> tuple[str | None, str]:
    """The strategy's answer text (None: none) and a note (a tie, a failure)."""
    if strategy in alone:
        outcome = result.outcomes.get(strategy)
        if outcome is None or not outcome.answered:
            return None, outcome.message if outcome is not None else "did not finish"
        return outcome.text, ""
    if strategy == "vote":
        vote = getattr(result, "vote", None)
        if vote is None:
            return None, "no vote"
        winner = getattr(vote, "winner", None)
        if winner is None:
            tied = ", ".join(getattr(vote, "winners", ()) or ())
            return "", f"tie ({tied}): counted wrong" if tied else "no ballots"
        return str(winner), ""
    if strategy == "rank":
        ranking = getattr(result, "ranking", None)
        order = getattr(ranking, "order", ()) if ranking is not None else ()
        top = result.outcomes.get(order[0]) if order else None
        if top is None or not top.answered:
            return None, "no ranking"
        return top.text, f"top: {order[0]}"
    answer = result.answer
    if answer is None:
        return None, "no synthesis" if strategy == "synthesize" else "no final answer"
    return answer, ""


def score_answer(item: EvalItem, answer: str, tolerance: Tolerance) -> tuple[Any, bool]:
    """(what the scorer read from the answer, whether it is right) for the non-judge scorers."""
    if item.scorer == "choice":
        assert item.choices is not None
        got = choice_letter(answer, item.choices)
        return got, got is not None and got == expected_letter(item.expected, item.choices)
    if item.scorer == "regex":
        return None, regex_matches(answer, item.expected)
    if item.scorer == "number":
        return number_in(answer), number_matches(answer, item.expected, tolerance)
    return _final_line(answer), exact(answer, item.expected)


def _final_line(answer: str) -> str:
    lines = [line.strip() for line in answer.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""
