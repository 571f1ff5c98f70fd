"""Running an escalating oracle: the first panel, its decision, then the rest if in doubt.

The decision itself (what "agree" and "confidence" mean) is `escalation.py`'s; this
module makes the calls, in the oracle's run, so that one run has one id, one set of
events and one history record however far it escalated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from council.engine.ballots import choice_key, read_ballot
from council.engine.clients import EndpointClients
from council.engine.escalation import Escalation, EscalationResult, decide
from council.engine.model import Ballot, CallOutcome, CallSpec
from council.engine.plan import OraclePlan
from council.engine.results import OracleResult
from council.engine.vote import tally_of

__all__ = ["PanelRun", "majority_choice", "panel_decision", "run_panel_first", "shadow_compared"]


class PanelRun(Protocol):
    """What escalating needs of the run (an OracleRun): its plan, its result, and some
    of its persona calls asked at once (ballots with --vote)."""

    @property
    def plan(self) -> OraclePlan: ...
    @property
    def result(self) -> OracleResult: ...
    async def ask(
        self, clients: EndpointClients, calls: Sequence[CallSpec], *, early_stop: bool = True
    ) -> None: ...


def panel_decision(
    spec: Escalation,
    members: Sequence[str],
    outcomes: Mapping[str, CallOutcome],
    full: int,
    choices: tuple[str, ...] = (),
) -> EscalationResult:
    """What the panel's answers decide, for a council (`members`) whose full run makes
    `full` calls: `not_asked` names the rest when the panel's answer stands (a shadow run
    asks them anyway)."""
    record = EscalationResult(spec, calls_full=full)
    ballots = [_ballot(outcomes.get(name), name, choices) for name in spec.panel]
    record.decision = decide(ballots, len(spec.panel), spec.threshold)
    costs = [o.cost_usd for o in (outcomes.get(name) for name in spec.panel) if o]
    if record.decision.agreed and not spec.shadow:
        record.not_asked = tuple(n for n in members if n not in spec.panel)
        record.saved(full - len(spec.panel), costs)
        return record
    record.escalated = not record.decision.agreed
    record.saved(0, costs)
    if spec.shadow and record.decision.agreed:
        record.basis = (
            f"shadow run: the full council ran; {full - len(spec.panel)} calls were at stake"
        )
    return record


def majority_choice(ballots: Sequence[Ballot]) -> str | None:
    """The choice most ballots name, counted as a vote is (None: none, or a tie): the
    full council's answer a shadow run compares with the panel's."""
    tally = tally_of(ballots)
    leaders = [name for name, count in tally.items() if count == max(tally.values())]
    return leaders[0] if len(leaders) == 1 else None


def shadow_compared(record: EscalationResult, answers: Sequence[CallOutcome]) -> None:
    """A shadow run's measure: the full council's answer (the majority of its members'
    stated answers) against the panel's; a tie counts as changed."""
    full = majority_choice([read_ballot(a.persona, a.text, ()) for a in answers if a.answered])
    _compared(record, full)


def _compared(record: EscalationResult, full: str | None) -> None:
    record.full_choice = full
    panel = record.decision.choice if record.decision is not None else None
    record.changed = full is None or panel is None or choice_key(full) != choice_key(panel)


async def run_panel_first(run: PanelRun, clients: EndpointClients) -> bool:
    """Ask the first panel; if it agrees (and this is no shadow run), stop there.

    True: the rest of the council was asked (the panel's answers counted as they are),
    and the run goes on to its synthesis; False: the panel's answer is the council's.
    """
    plan, result = run.plan, run.result
    spec = plan.escalation
    assert spec is not None, "run_panel_first needs a plan with an escalation"
    full = len(plan.calls) + (1 if plan.arbiter is not None else 0)
    panel = [c for c in plan.calls if c.persona in spec.panel]
    rest = [c for c in plan.calls if c.persona not in spec.panel]
    # No early stop inside the panel: its decision needs every member's ballot.
    await run.ask(clients, panel, early_stop=False)
    members = [p.name for p in plan.personas]
    record = panel_decision(spec, members, result.outcomes, full, plan.choices)
    result.escalation = record
    if record.not_asked:
        return False
    await run.ask(clients, rest)
    if spec.shadow and record.decision is not None and record.decision.agreed:
        if plan.vote and result.vote is not None:
            _compared(record, result.vote.winner)
        else:
            shadow_compared(record, result.answers)
    return True


def _ballot(outcome: CallOutcome | None, persona: str, choices: tuple[str, ...]) -> Ballot:
    if outcome is None or not outcome.answered or not outcome.text:
        return Ballot(persona, None, None, "no answer", raw_ok=False)
    return read_ballot(persona, outcome.text, choices)
