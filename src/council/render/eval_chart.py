"""`council eval`'s trade-off in plain text: accuracy against cost per item, and the
paired differences from the reference.

    lines = tradeoff_chart(report.tradeoff, width=80)   # a scatter and its legend
    lines = difference_lines(report.tradeoff)           # "synthesize − best single: +25.0 pp …"

Plain characters only, so the same lines go to a terminal, into Markdown (fenced) and
into a log; never wider than `width`.
"""

from __future__ import annotations

from council.engine.tradeoff import TradeOff
from council.render.safe_text import strip_controls

__all__ = ["axis_label", "difference_lines", "tradeoff_chart"]

_ROWS = 10  # 0 % to 100 % in steps of 10
_SYMBOLS = "123456789abcdefghijklmnopqrstuvwxyz"
_LEFT = 7  # "100 % ┤"
_AXIS = {"usd": "cost per item (USD)", "tokens": "tokens per item", "calls": "calls per item"}


def axis_label(axis: str) -> str:
    return _AXIS[axis]


def _amount(value: float, axis: str) -> str:
    if axis == "usd":
        return f"${value:.4f}" if value < 1 else f"${value:.2f}"
    return f"{value:,.0f}" if axis == "tokens" else f"{value:.1f}"


def tradeoff_chart(tradeoff: TradeOff, width: int = 80) -> list[str]:
    """The scatter (each strategy a symbol) and its legend: the symbol, the name, the
    accuracy, the cost per item and, for a dominated one, what dominates it."""
    found = tradeoff.points[: len(_SYMBOLS)]
    if not found:
        return []
    axis = tradeoff.axis
    span = max(p.cost(axis) for p in found) or 1.0
    plot = max(20, min(width, 80) - _LEFT - 2)
    grid = [[" "] * plot for _ in range(_ROWS + 1)]
    for symbol, p in zip(_SYMBOLS, found, strict=False):
        row = _ROWS - round(p.accuracy * _ROWS)
        col = min(plot - 1, round(p.cost(axis) / span * (plot - 1)))
        grid[row][col] = symbol if grid[row][col] == " " else "*"
    lines = [f"accuracy against {axis_label(axis)} (* several)"]
    for at, cells in enumerate(grid):
        level = _ROWS - at
        label = f"{level * 10:>3} % ┤" if level % 5 == 0 else "      │"
        lines.append((label + "".join(cells)).rstrip())
    lines.append("      └" + "─" * plot)
    right = _amount(span, axis)
    lines.append("       0" + right.rjust(plot - 1))
    name_width = max(len(strip_controls(p.name)) for p in found)
    for symbol, p in zip(_SYMBOLS, found, strict=False):
        over = tradeoff.dominated_by.get(p.name)
        mark = f"  dominated by {strip_controls(over)}" if over else ""
        name = strip_controls(p.name).ljust(name_width)
        text = f"  {symbol} {name} {p.accuracy * 100:5.1f} % {_amount(p.cost(axis), axis):>8}{mark}"
        lines.append(text if len(text) <= width else text[: width - 1] + "…")
    return lines


def _pp(value: float) -> str:
    return f"{value * 100:+.1f}"


def difference_lines(tradeoff: TradeOff, width: int = 80) -> list[str]:
    """Each paired difference from the reference, in points, with its interval and what
    it says ("better" only when the whole interval is above 0)."""
    if not tradeoff.differences:
        return []
    lines = [
        f"accuracy minus {strip_controls(tradeoff.reference or '')}'s, on the same items:"[:width],
        f"(95 % paired bootstrap, {tradeoff.resamples} resamples, --seed {tradeoff.seed})",
    ]
    names = max(len(strip_controls(d.name)) for d in tradeoff.differences)
    for d in tradeoff.differences:
        text = (
            f"  {strip_controls(d.name).ljust(names)} {_pp(d.difference):>6} pp "
            f"[{_pp(d.low)}, {_pp(d.high)}] on {d.n} items: {d.verdict}"
        )
        lines.append(text if len(text) <= width else text[: width - 1] + "…")
    return lines
