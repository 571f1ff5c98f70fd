"""`council eval`'s report: the strategies table (rich, Markdown, CSV) and what each got wrong.

Built from `StrategySummary` rows and result lines only (plain data), so the same
table is printed in a terminal, piped as Markdown, written as CSV, and shown by
`--items` for an eval already in a file. Everything a model wrote is cleaned of
control sequences before a person sees it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

from council.engine.scoring import StrategySummary
from council.engine.tradeoff import TradeOff
from council.render.format import seconds
from council.render.listing import fit_columns
from council.render.safe_text import strip_controls

__all__ = [
    "CSV_COLUMNS",
    "baseline_note",
    "eval_csv",
    "eval_markdown",
    "eval_renderable",
    "summary_cells",
    "wrong_items",
]

HEADERS = ("strategy", "accuracy", "95 % CI", "n", "calls", "tokens", "cost", "p50", "p95")
CSV_COLUMNS = (
    "name",
    "accuracy",
    "ci_low",
    "ci_high",
    "n",
    "correct",
    "failed",
    "calls",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "latency_p50",
    "latency_p95",
    "judge_calls",
    "judge_tokens",
    # The trade-off (engine/tradeoff.py): a baseline or a strategy, cost per item,
    # what dominates it, and its paired difference from the reference.
    "kind",
    "calls_per_item",
    "tokens_per_item",
    "cost_per_item",
    "dominated_by",
    "diff_vs",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def _cost(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def _tokens(tokens_in: int | None, tokens_out: int | None) -> str:
    if tokens_in is None and tokens_out is None:
        return "unknown"
    return f"{(tokens_in or 0) + (tokens_out or 0):,}"


def summary_cells(summary: StrategySummary) -> tuple[str, ...]:
    """One table row: accuracy, its Wilson interval, n, calls, tokens, cost, latency."""
    interval = summary.interval
    ci = "—" if interval is None else f"{interval[0] * 100:.1f}–{interval[1] * 100:.1f} %"
    accuracy = _percent(summary.accuracy)
    if summary.failed:
        accuracy += f" ({summary.failed} failed)"
    return (
        strip_controls(summary.name),
        accuracy,
        ci,
        str(summary.n),
        f"{summary.calls:,}",
        _tokens(summary.tokens_in, summary.tokens_out),
        _cost(summary.cost_usd),
        seconds(summary.latency_p50),
        seconds(summary.latency_p95),
    )


def _rows(summaries: Sequence[StrategySummary], tradeoff: TradeOff | None) -> list[StrategySummary]:
    """The strategies, then the baselines."""
    if tradeoff is None:
        return list(summaries)
    return [*summaries, *(s for s in tradeoff.rows if s.name in tradeoff.baselines.rows)]


def baseline_note(tradeoff: TradeOff | None) -> str | None:
    """Where the baselines come from, or why they are missing."""
    if tradeoff is None:
        return None
    found = tradeoff.baselines
    if found.why is not None:
        return f"baselines: none ({found.why})"
    ties = f"; {found.ties} tied, counted wrong" if found.ties else ""
    return (
        f"baselines: read from the answers of {strip_controls(found.source)} (no extra call): "
        f"the persona right most often, and their majority (free text by its final answer{ties})"
    )


def _footnote(
    summaries: Sequence[StrategySummary], heading: str, tradeoff: TradeOff | None = None
) -> str:
    judged = sum(s.judge_calls for s in summaries)
    notes = [heading]
    said = baseline_note(tradeoff)
    if said:
        notes.append(said)
    if judged:
        tokens = sum(s.judge_tokens for s in summaries)
        notes.append(f"grading took {judged:,} judge calls ({tokens:,} tokens), not counted above")
    return "; ".join(notes)


def _tradeoff_lines(tradeoff: TradeOff | None, width: int) -> list[str]:
    from council.render.eval_chart import difference_lines, tradeoff_chart

    if tradeoff is None:
        return []
    chart = tradeoff_chart(tradeoff, width)
    differences = difference_lines(tradeoff, width)
    return [*chart, *([""] if chart and differences else []), *differences]


def eval_markdown(
    summaries: Sequence[StrategySummary], heading: str, tradeoff: TradeOff | None = None
) -> str:
    """The strategies table in Markdown, with a line saying what was evaluated, then the
    cost-accuracy chart and the paired differences (fenced: plain text)."""
    rows = [HEADERS, *(summary_cells(s) for s in _rows(summaries, tradeoff))]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
    for row in rows[1:]:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    out = [*lines, "", _footnote(summaries, heading, tradeoff), ""]
    plain = _tradeoff_lines(tradeoff, 80)
    if plain:
        out += ["```text", *plain, "```", ""]
    return "\n".join(out)


# What a narrow terminal keeps first: the strategy whole, its accuracy, then the rest.
_PRIORITY = (0, 1, 2, 3, 6, 4, 7, 5, 8)
# Between two columns: a space each side of the rule.
_GAP = 3


class _StrategiesTable:
    """The table drawn at the width it is given: every strategy's name whole and no cell
    wrapped; the least useful columns left out when they do not fit (CSV has them all)."""

    def __init__(self, summaries: Sequence[StrategySummary]) -> None:
        self.rows = [summary_cells(s) for s in summaries]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        widths = [
            max([len(header), *(len(row[i]) for row in self.rows)])
            for i, header in enumerate(HEADERS)
        ]
        kept = fit_columns(widths, _PRIORITY, options.max_width, gap=_GAP)
        table = Table(title=None, show_edge=False, pad_edge=False)
        for index in kept:
            table.add_column(
                HEADERS[index], justify="left" if index == 0 else "right", no_wrap=True
            )
        for row in self.rows:
            table.add_row(*(row[i] for i in kept))
        yield table


class _TradeOff:
    """The chart and the differences at the terminal's width."""

    def __init__(self, tradeoff: TradeOff) -> None:
        self.tradeoff = tradeoff

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = _tradeoff_lines(self.tradeoff, options.max_width)
        if lines:
            yield Text("\n".join(["", *lines]), no_wrap=True, overflow="crop")


def eval_renderable(
    summaries: Sequence[StrategySummary], heading: str, tradeoff: TradeOff | None = None
) -> RenderableType:
    """The strategies table (and baselines) for a terminal, then the trade-off."""
    parts: list[RenderableType] = [
        _StrategiesTable(_rows(summaries, tradeoff)),
        Text(_footnote(summaries, heading, tradeoff), style="dim"),
    ]
    if tradeoff is not None:
        parts.append(_TradeOff(tradeoff))
    return Group(*parts)


def eval_csv(summaries: Sequence[StrategySummary], tradeoff: TradeOff | None = None) -> str:
    """One row per strategy, then per baseline, numbers as numbers (accuracy 0-1), empty
    where unknown: plot-ready (accuracy against cost_per_item or calls_per_item)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for summary in _rows(summaries, tradeoff):
        data = summary.to_dict()
        data.update(tradeoff.row_extras(summary.name) if tradeoff else {})
        data.setdefault("kind", "strategy")
        writer.writerow({k: "" if data.get(k) is None else data[k] for k in CSV_COLUMNS})
    return buffer.getvalue()


def _short(value: Any, limit: int = 60) -> str:
    text = "—" if value is None else " ".join(str(value).split())
    text = strip_controls(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def wrong_items(lines: Sequence[dict[str, Any]], strategies: Sequence[str]) -> str:
    """Markdown: per strategy, the items it got wrong (what it predicted, what was expected)."""
    out: list[str] = []
    for strategy in strategies:
        wrong = [
            line for line in lines if line.get("strategy") == strategy and not line.get("correct")
        ]
        total = sum(1 for line in lines if line.get("strategy") == strategy)
        out.append(f"## {strip_controls(strategy)}: {len(wrong)} of {total} wrong")
        out.append("")
        for line in wrong:
            note = f" ({_short(line.get('note'), 80)})" if line.get("note") else ""
            got = line.get("predicted")
            if got is None and line.get("status") == "ok":
                got = line.get("answer")
            out.append(
                f"- {_short(line.get('item'), 40)}: got {_short(got)}, "
                f"expected {_short(line.get('expected'))}{note}"
            )
        out.append("")
    return "\n".join(out)
