"""A jury's verdict for people (`council judge`): the pooled verdict, agreement, each juror."""

from __future__ import annotations

from typing import Any

from council.engine.jury import JuryVerdict
from council.render.bias import bias_line
from council.render.safe_text import strip_controls

__all__ = ["jury_agreement_line", "jury_markdown"]

_STATISTICS = {
    "fleiss_kappa": "Fleiss' kappa",
    "krippendorff_alpha_interval": "Krippendorff's alpha (interval)",
}


def _number(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def jury_markdown(verdict: JuryVerdict) -> str:
    """The verdict line, the jury's agreement (and flip rate), then each juror's verdict."""
    head = f"# Verdict: {verdict.verdict}"
    statistic = _STATISTICS.get(verdict.statistic, verdict.statistic)
    facts = [f"pooled by {verdict.pool}", f"{statistic} {_number(verdict.agreement)}"]
    if verdict.kind == "pair":
        facts.append(f"position-flip rate {_number(verdict.position_flip_rate)}")
    else:
        facts.append(f"mean score {_number(verdict.mean_score)}")
    lines = [head, "", "_" + " · ".join(facts) + "_", ""]
    if verdict.kind == "pair":
        lines += [f"_{bias_line(verdict.bias)}._", ""]
    lines += ["## Jurors", ""]
    for juror in verdict.jurors:
        said = juror.verdict or "no verdict"
        detail = []
        if juror.scores:
            detail.append("scores " + ", ".join("?" if s is None else str(s) for s in juror.scores))
        if juror.flipped:
            detail.append(f"flipped with the order ({juror.orders[0]} then {juror.orders[1]})")
        if juror.problem:
            detail.append(juror.problem)
        extra = f" ({'; '.join(detail)})" if detail else ""
        lines.append(f"- **{strip_controls(juror.juror)}**: {said}{strip_controls(extra)}")
        if juror.reason:
            lines.append(f"  {' '.join(strip_controls(juror.reason).split())}")
    if verdict.criteria:
        lines += ["", "## Rubric", ""]
        lines += [f"{i}. {strip_controls(c)}" for i, c in enumerate(verdict.criteria, 1)]
    return "\n".join(lines) + "\n"


def jury_agreement_line(agreement: dict[str, Any]) -> str:
    """`council eval --scorer jury`: the jury's Cohen's kappa against the labels, one line."""
    per = ", ".join(
        f"{name} {_number(found['value'])} (n={found['n']})"
        for name, found in agreement["strategies"].items()
    )
    return (
        f"Jury vs labels: Cohen's kappa {_number(agreement['value'])} over "
        f"{agreement['n']} answers the jury ruled on" + (f"; {per}" if per else "")
    )
