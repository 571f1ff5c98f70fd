"""Cost and budgets as a person reads them: the cost in a footer, a budget's stop, dry-run prices.

money(0.01234)                  # "$0.0123"
cost_note(result)               # "cost $0.0123" / "cost $0.0123 (speculation wasted $0.0011)"
budget_stop_line(result)        # "the budget ... stopped the council: ..." or None
"""

from __future__ import annotations

from council.engine.cost import ModelPrice
from council.engine.model import CallOutcome
from council.engine.results import DeliberationResult, OracleResult
from council.errors import ErrorKind

__all__ = ["budget_lowered_line", "budget_stop_line", "cost_note", "money", "prices_markdown"]


def money(usd: float) -> str:
    """US dollars, with the digits a small cost needs."""
    if usd == 0:
        return "$0"
    if usd >= 1:
        return f"${usd:,.2f}"
    if usd >= 0.0001:
        return f"${usd:.4f}"
    return "<$0.0001"


def _unpriced(outcomes: list[CallOutcome]) -> int:
    """Calls that were sent but have no known cost."""
    return sum(1 for o in outcomes if o.cost_usd is None)


def cost_note(result: OracleResult | DeliberationResult) -> str | None:
    """The run's cost for its footer; None when nothing of it is known (a local model)."""
    total = result.cost_usd
    if total is None:
        # Nothing known (a local model): nothing to say. Some calls known to be free and
        # the others unknown: the cost is unknown, and the footer says so, never "$0".
        known = any(o.cost_usd is not None for o in _outcomes(result))
        return "cost unknown" if known else None
    note = f"cost {money(total)}"
    if isinstance(result, OracleResult):
        unknown = _unpriced(result.calls)
    else:
        unknown = sum(1 for c in result.timeline if c.cost_usd is None)
        wasted = result.wasted_cost_usd
        if wasted:
            note += f" (speculation and retries wasted {money(wasted)})"
    if unknown:
        note = f"{note}, and {unknown} call{'s' if unknown != 1 else ''} of unknown cost"
    if any(o.cost_estimated for o in _outcomes(result)):
        note += " (partly estimated)"
    return note


def _outcomes(result: OracleResult | DeliberationResult) -> list[CallOutcome]:
    if isinstance(result, OracleResult):
        return result.calls
    outcomes = [o for r in result.rounds for o in r.outcomes.values()]
    return outcomes + [r.arbiter for r in result.rounds if r.arbiter is not None]


def _limits(result: OracleResult | DeliberationResult) -> str:
    budget = result.budget
    if budget is None:
        return "the budget"
    parts = []
    if budget.usd is not None:
        parts.append(f"--budget-usd {budget.usd:g} ({money(budget.spent_usd)} spent)")
    if budget.tokens is not None:
        parts.append(f"--max-tokens-total {budget.tokens} ({budget.spent_tokens:,} spent)")
    return " and ".join(parts)


def budget_stop_line(result: OracleResult | DeliberationResult) -> str | None:
    """One line saying what the budget stopped and what is shown instead; None: it did not."""
    if not result.budget_stopped:
        return None
    if isinstance(result, OracleResult):
        refused = [o.persona for o in result.calls if o.error_kind == ErrorKind.NOT_AFFORDABLE]
        shown = "the answers that fit are shown" if result.answers else "nothing could be asked"
        return f"{_limits(result)} reached: not started: {', '.join(refused)}; {shown}"
    judged = result.verdict_round
    last = result.final_round
    if judged is not None:
        shown = f"showing the verdict of round {judged.number}"
    elif last is not None:
        shown = f"showing round {last.number}'s answers"
    else:
        shown = "nothing could be asked"
    stopped = (
        f"round {last.number}'s verdict was not asked"
        if last is not None and last.arbiter is None and last.verdict is None
        else f"round {len(result.rounds) + 1} was not started"
    )
    return f"{_limits(result)} reached: {stopped}; {shown}"


def budget_lowered_line(result: OracleResult | DeliberationResult) -> str | None:
    """One line naming the calls the budget sent with a lower max_tokens, and their new
    limit; None: it lowered none."""
    budget = result.budget
    if budget is None or not budget.lowered_to:
        return None
    groups: dict[tuple[int | None, int], list[str]] = {}
    for label, asked, granted in budget.lowered_to:
        groups.setdefault((asked, granted), []).append(label)
    parts = [
        f"to {granted:,} for {', '.join(labels)} "
        + (f"(from {asked:,})" if asked is not None else "(which set none)")
        for (asked, granted), labels in groups.items()
    ]
    return f"{_limits(result)}: max_tokens lowered {'; '.join(parts)}"


def prices_markdown(
    prices: list[ModelPrice], worst: float | None, usd: float | None, tokens: int | None
) -> str:
    """The dry run's prices: per model, where its price comes from; the worst case; the budget."""
    lines = ["", "## Prices", ""]
    for known in prices:
        price = known.price
        shown = (
            f"${price.input:g} in / ${price.output:g} out per million tokens"
            if price is not None
            else "no price"
        )
        lines.append(f"- {known.model} on {known.host}: {shown} ({known.source})")
    if worst is None:
        lines.append("- worst case: unknown (a model has no price)")
    else:
        lines.append(f"- worst case: {money(worst)} (every call writing its whole max_tokens)")
    unpriced = [f"{p.model} on {p.host}" for p in prices if p.price is None]
    if usd is not None and unpriced:
        lines.append(
            f"- budget: {money(usd)}, which cannot be kept: no price for {', '.join(unpriced)} "
            "(the run would refuse to start)"
        )
    elif usd is not None:
        lines.append(f"- budget: {money(usd)}")
    if tokens is not None:
        lines.append(f"- budget: {tokens:,} tokens")
    return "\n".join(lines) + "\n"
