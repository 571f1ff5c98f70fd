"""Running an escalating oracle: the first panel, its decision, then the rest if in doubt.

The decision itself (what "agree" and "confidence" mean) is `escalation.py`'s; this
module makes the calls, in the oracle's run, so that one run has one id, one set of
events and one history record however far it escalated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from council.engine.ballots import choice_key, read_ballot
from council.engine.clients import EndpointClients
from council.engine.escalation import EscalationResult, decide, majority_choice
from council.engine.model import Ballot, CallOutcome, CallSpec
from council.engine.plan import OraclePlan
from council.engine.results import OracleResult

__all__ = ["PanelRun", "run_panel_first"]


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


async def run_panel_first(run: PanelRun, clients: EndpointClients) -> bool:
    """Ask the first panel; if it agrees (and this is no shadow run), stop there.

    True: the rest of the council was asked (the panel's answers counted as they are),
    and the run goes on to its synthesis; False: the panel's answer is the council's.
    """
    plan, result = run.plan, run.result
    spec = plan.escalation
    assert spec is not None, "run_panel_first needs a plan with an escalation"
    full = len(plan.calls) + (1 if plan.arbiter is not None else 0)
    record = EscalationResult(spec, calls_full=full)
    result.escalation = record
    panel = [c for c in plan.calls if c.persona in spec.panel]
    rest = [c for c in plan.calls if c.persona not in spec.panel]
    # No early stop inside the panel: its decision needs every member's ballot.
    await run.ask(clients, panel, early_stop=False)
    ballots = [_ballot(result.outcomes.get(c.persona), c.persona, plan.choices) for c in panel]
    decision = record.decision = decide(ballots, len(panel), spec.threshold)
    costs = [o.cost_usd for o in (result.outcomes.get(c.persona) for c in panel) if o]
    if decision.agreed and not spec.shadow:
        record.not_asked = tuple(c.persona for c in rest)
        record.saved(full - len(panel), costs)
        return False
    record.escalated = not decision.agreed
    await run.ask(clients, rest)
    record.saved(0, costs)
    if spec.shadow and decision.agreed:
        _compare(record, run)
        record.basis = f"shadow run: the full council ran; {full - len(panel)} calls were at stake"
    return True


def _ballot(outcome: CallOutcome | None, persona: str, choices: tuple[str, ...]) -> Ballot:
    if outcome is None or not outcome.answered or not outcome.text:
        return Ballot(persona, None, None, "no answer", raw_ok=False)
    return read_ballot(persona, outcome.text, choices)


def _compare(record: EscalationResult, run: PanelRun) -> None:
    """A shadow run: the full council's answer (the vote's winner, or the majority of the
    members' stated answers) against the panel's; a tie counts as changed."""
    plan, result = run.plan, run.result
    if plan.vote and result.vote is not None:
        full = result.vote.winner
    else:
        full = majority_choice([read_ballot(a.persona, a.text, ()) for a in result.answers])
    record.full_choice = full
    panel = record.decision.choice if record.decision is not None else None
    record.changed = full is None or panel is None or choice_key(full) != choice_key(panel)
