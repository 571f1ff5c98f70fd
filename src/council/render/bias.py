"""The reviewer-bias report for people: one short line (terminal, Markdown, jury report)."""

from __future__ import annotations

from typing import Any

from council.engine.bias import BiasReport
from council.render.safe_text import strip_controls

__all__ = ["bias_line", "bias_stats_text"]


def _percent(share: float) -> str:
    return f"{share * 100:.0f}%"


def bias_line(report: BiasReport) -> str:
    """e.g. "Reviewer bias: position consistency 100% (1 re-asked) · length ρ +0.50 ·
    self-preference not measured"; each figure as engine/bias.py defines it."""
    if report.position_consistency is None:
        position = "position consistency not measured"
    else:
        checked = report.position_checked
        position = (
            f"position consistency {_percent(report.position_consistency)} ({checked} re-asked)"
        )
    if report.length_correlation is None:
        length = "length ρ not measured"
    else:
        length = f"length ρ {report.length_correlation:+.2f}"
    if report.self_preference is None or report.self_preference_chance is None:
        own = "self-preference not measured"
    else:
        own = (
            f"self-preference {_percent(report.self_preference)} own first "
            f"(chance {_percent(report.self_preference_chance)}, {report.self_checked} shadow)"
        )
    return f"Reviewer bias: {position} · {length} · {own}"


_COLUMNS = ("position", "self first", "chance", "length ρ")


def _cell(value: float | None, count: int, percent: bool = True) -> str:
    if value is None:
        return "–"
    shown = _percent(value) if percent else f"{value:+.2f}"
    return f"{shown} ({count})"


def _rows(title: str, groups: list[Any]) -> list[str]:
    width = max([len(title), *(len(strip_controls(g.name)[:24]) for g in groups)])
    lines = [f"{title:<{width}}  " + "  ".join(f"{c:>12}" for c in _COLUMNS)]
    for g in groups:
        cells = (
            _cell(g.position_consistency, g.position_checked),
            _cell(g.self_preference, g.self_checked),
            "–" if g.self_chance is None else _percent(g.self_chance),
            _cell(g.length_correlation, g.length_reviews, percent=False),
        )
        name = strip_controls(g.name)[:24]
        lines.append(f"{name:<{width}}  " + "  ".join(f"{c:>12}" for c in cells))
    return lines


def bias_stats_text(stats: Any) -> str:
    """`council stats --bias` (a store.bias_stats.BiasStats; render does not import the
    store): a table by persona, one by model, and what the columns mean."""
    if not stats.runs:
        return "no bias reports recorded yet; run council oracle --rank (or council judge --pair)"
    noun = "run" if stats.runs == 1 else "runs"
    lines = [f"reviewer bias over {stats.runs} {noun} (counts in brackets)", ""]
    lines += [*_rows("persona", stats.by_persona), "", *_rows("model", stats.by_model)]
    lines += [
        "",
        "position: the same answer first with the order reversed",
        "self first: its own answer first in a shadow review, against chance",
        "length ρ: Spearman, an answer's length against its place (+: longer wins)",
    ]
    return "\n".join(lines)
