"""What a jury is asked, case by case, and its verdict read back from the engine's results.

    request = jury_of(resolve_council(flags, values))   # the preset's `jury:`, if it has one
    case = JuryCase("Which database?", answer="Use Postgres.", criteria=("correct",))
    plans = case_plans(request, case)     # one plan (rubric); two (a pair: one per order)
    verdict = case_verdict(case, plans, results, pool="majority", pass_score=3.5)

Shared by `council judge` (one case), `council judge --items` (a case per line) and
`council eval --scorer jury` (a case per answer, graded against the item's expected
one). A rubric case is one oracle plan whose calls ask for JSON grades; a pair is two
vote plans (`A`, `B`, `tie`, no early stop), the second with the answers swapped, run
in turn by the caller. Nothing here runs a plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from council.app.ask import ResolvedCouncil, oracle_plan
from council.config.settings import profile_endpoint
from council.engine.jury import (
    PAIR_CHOICES,
    JurorVerdict,
    JuryVerdict,
    pair_prompt,
    pair_verdict,
    pool_jury,
    read_grades,
    rubric_prompt,
    rubric_response_format,
)
from council.engine.plan import OraclePlan
from council.engine.results import OracleResult

__all__ = ["JuryCase", "case_plans", "case_verdict", "jury_of"]


@dataclass(frozen=True)
class JuryCase:
    """One thing a jury judges: an answer against criteria (and a reference), or a pair."""

    question: str
    answer: str | None = None
    criteria: tuple[str, ...] = ()
    pair: tuple[str, str] | None = None
    reference: str | None = None  # the answer known to be right (eval's expected)

    @property
    def kind(self) -> str:
        return "pair" if self.pair is not None else "rubric"


def jury_of(request: ResolvedCouncil) -> ResolvedCouncil:
    """The council whose members are the jury: the preset's `jury:` when it has one (and
    no -p or -m chose the members), else the council's own personas.

    The jury's endpoint profiles are looked up here, not when the preset is read: the
    preset's other commands must not need their keys."""
    if not request.jury:
        return request
    settings = request.settings
    endpoints = dict(request.endpoints)
    for juror in request.jury:
        if juror.endpoint and juror.endpoint not in endpoints:
            endpoints[juror.endpoint] = profile_endpoint(
                juror.endpoint,
                request.user,
                settings.endpoint,
                source=f"juror {juror.name}",
                require_key=True,
            )
    return dataclasses.replace(request, personas=list(request.jury), endpoints=endpoints)


def case_plans(request: ResolvedCouncil, case: JuryCase) -> list[OraclePlan]:
    """The plans that ask every juror: one for a rubric, one per order for a pair."""
    if case.pair is not None:
        first, second = case.pair
        voting = {
            "synthesize": False,
            "vote": True,
            "choices": PAIR_CHOICES,
            "vote_early_stop": False,
        }
        return [
            oracle_plan(request, pair_prompt(case.question, first, second), **voting),
            oracle_plan(request, pair_prompt(case.question, second, first), **voting),
        ]
    assert case.answer is not None
    prompt = rubric_prompt(case.question, case.answer, case.criteria, case.reference)
    plan = oracle_plan(request, prompt, synthesize=False)
    asked = rubric_response_format()
    calls = tuple(dataclasses.replace(c, response_format=asked) for c in plan.calls)
    return [dataclasses.replace(plan, calls=calls)]


def case_verdict(
    case: JuryCase,
    plans: Sequence[OraclePlan],
    results: Sequence[OracleResult | None],
    pool: str,
    pass_score: float,
) -> JuryVerdict:
    """The jury's verdict on `case` from its plans' results (None: a plan that never ran)."""
    if case.pair is not None:
        return _pair(plans[0], results, pool, case.pair)
    (result,) = results
    jurors = []
    for persona in plans[0].personas:
        outcome = result.outcomes.get(persona.name) if result is not None else None
        if outcome is None or not outcome.answered:
            why = outcome.message if outcome is not None else "did not finish"
            jurors.append(JurorVerdict(persona.name, None, problem=why))
        else:
            jurors.append(read_grades(persona.name, outcome.text, len(case.criteria), pass_score))
    return pool_jury("rubric", jurors, pool, pass_score, case.criteria)


def _pair(
    plan: OraclePlan,
    results: Sequence[OracleResult | None],
    pool: str,
    pair: tuple[str, str],
) -> JuryVerdict:
    jurors = []
    for persona in plan.personas:
        ballots = [r.vote.ballots.get(persona.name) if r and r.vote else None for r in results]
        juror = pair_verdict(persona.name, *ballots)
        if juror.verdict is None:
            failed = [r.outcomes.get(persona.name) if r else None for r in results]
            why = next((o.message for o in failed if o is not None and not o.answered), None)
            juror = dataclasses.replace(juror, problem=why or juror.problem)
        jurors.append(juror)
    # The bias report (engine/bias.py) reads the answers' lengths and the jurors' models.
    models = {p.name: plan.where(p.name)[0] for p in plan.personas}
    lengths = (len(pair[0].strip()), len(pair[1].strip()))
    return pool_jury("pair", jurors, pool, lengths=lengths, models=models)
