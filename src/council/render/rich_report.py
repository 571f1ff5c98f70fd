"""The final result as rich renderables, for a terminal."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from council.engine.agreement import AgreementMap
from council.engine.model import CallOutcome, VoteResult
from council.engine.results import DeliberationResult, OracleResult
from council.render.agreement import agreement_full, agreement_line
from council.render.ballots import (
    BALLOT_COLUMNS,
    RANKING_COLUMNS,
    TALLY_COLUMNS,
    ballot_rows,
    ranking_rows,
    tally_rows,
    unread_reviews,
    vote_headline,
    vote_notes,
    where_ranked,
)
from council.render.format import (
    CALL_COLUMNS,
    ROUND_COLUMNS,
    TIMELINE_COLUMNS,
    answer_metrics,
    answer_status,
    call_rows,
    deliberation_footer,
    failure_detail,
    member_where,
    quiet_selection,
    round_rows,
    run_footer,
    synthesis_title,
    timeline_rows,
)
from council.render.safe_text import strip_controls

__all__ = ["deliberation_renderable", "oracle_renderable"]


def _model_markdown(text: str) -> Markdown:
    """A model's Markdown, cleaned of control sequences; links show their real target.

    With hyperlinks on, `[trusted text](https://elsewhere)` would be a clickable link
    that hides where it goes: a prompt injection's disguised link.
    """
    return Markdown(strip_controls(text), hyperlinks=False)


def _failure_text(failure: CallOutcome) -> Text:
    text = Text()
    text.append(failure.persona, style="bold")
    text.append(f": {strip_controls(failure_detail(failure))}")  # quotes the server
    return text


def _failures_panel(failures: list[CallOutcome]) -> Panel:
    return Panel(
        Group(*(_failure_text(f) for f in failures)), title="did not answer", border_style="red"
    )


def _answer_panel(
    answer: CallOutcome, title: str, border: str, where: str | None = None, note: str | None = None
) -> Panel:
    body: RenderableType = _model_markdown(answer.text)
    if note is not None:  # a degraded council's answer says so above the text
        body = Group(Text(note, style="bold yellow"), Text(), body)
    return Panel(
        body,
        title=f"[bold]{title}[/]",
        title_align="left",
        subtitle=answer_metrics(answer, where),
        subtitle_align="right",
        border_style=border,
    )


def _quiet(result: OracleResult | DeliberationResult) -> RenderableType:
    answer, answers = quiet_selection(result)
    if answer is not None:
        return _model_markdown(answer)
    return Group(*(Panel(_model_markdown(a.text), title=a.persona) for a in answers))


def oracle_renderable(
    result: OracleResult, *, quiet: bool = False, verbose: bool = False
) -> RenderableType:
    """One panel per answer, failures, the footer line, and last the synthesis (the
    council's answer stays on screen). `verbose` adds a table of every call."""
    if quiet:
        return _quiet(result)
    plan = result.plan
    parts: list[RenderableType] = []
    if result.vote is None:
        for a in result.answers:
            parts.append(_answer_panel(a, a.persona, "cyan", where_ranked(result, a.persona)))
    else:  # the ballots as read (--json and --verbose's table have the calls)
        parts.append(_table("tally", TALLY_COLUMNS, tally_rows(result.vote)))
        parts.append(_table("ballots", BALLOT_COLUMNS, ballot_rows(result.vote)))
    # Ctrl-C in the middle of an answer: what had streamed, marked as such.
    for a in result.failures:
        if a.partial:
            parts.append(_answer_panel(a, f"{a.persona} · interrupted", "yellow"))
    parts += _ranking_parts(result)
    failed = [f for f in (*result.failures, *result.review_failures) if not f.partial]
    if failed:
        parts.append(_failures_panel(failed))
    if verbose:
        parts.append(_table("calls", CALL_COLUMNS, call_rows(result)))
    parts.append(Text(run_footer(result), style="dim"))
    synthesis = result.synthesis
    if synthesis is not None and synthesis.answered:
        title = synthesis_title(result, synthesis)
        where = member_where(plan, synthesis.persona)
        note = result.coverage.line()
        parts.append(_answer_panel(synthesis, title, "green", where, note))
        parts += _agreement_parts(result.agreement_map, verbose)
    elif synthesis is not None:
        parts.append(Panel(_failure_text(synthesis), title="synthesis failed", border_style="red"))
    if result.vote is not None:  # the vote's answer stays on screen
        parts.append(_vote_panel(result.vote, len(plan.personas)))
    return Group(*parts)


def _agreement_parts(found: AgreementMap | None, verbose: bool) -> list[RenderableType]:
    """The agreement map under the answer: one line, or every field with --verbose."""
    if found is None:
        return []
    return [Text(agreement_full(found) if verbose else agreement_line(found), style="dim")]


def _ranking_parts(result: OracleResult) -> list[RenderableType]:
    ranking = result.ranking
    if ranking is None:
        return []
    title = "peer ranking (anonymous, Borda count)"
    parts: list[RenderableType] = [_table(title, RANKING_COLUMNS, ranking_rows(ranking))]
    unread = unread_reviews(ranking)
    if unread:
        parts.append(Text(f"No ranking could be read from: {', '.join(unread)}", style="yellow"))
    if result.bias is not None:  # imported here: only --rank has a bias report
        from council.render.bias import bias_line

        parts.append(Text(bias_line(result.bias), style="dim"))
    return parts


def _vote_panel(vote: VoteResult, voters: int) -> Panel:
    lines: list[RenderableType] = [Text(strip_controls(vote_headline(vote, voters)), style="bold")]
    lines += [Text(strip_controls(note), style="italic") for note in vote_notes(vote)]
    return Panel(
        Group(*lines),
        title=Text(f"vote · {strip_controls(vote.answer or 'no answer')}", style="bold"),
        title_align="left",
        border_style="green" if vote.winners else "red",
    )


def _table(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", expand=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        style = "dim" if row[-2:-1] in (("discarded",), ("cancelled",)) else ""
        # Text cells: a ballot's reason or a free answer is model text, never markup.
        table.add_row(*(Text(strip_controls(cell)) for cell in row), style=style)
    return table


def _verdict_block(result: DeliberationResult) -> RenderableType:
    """The council's answer with how settled it is and who dissents; the status alone
    (the last round's answers, above it, are the answer) when no verdict was read."""
    status = Text(answer_status(result, answers_at="above"), style="italic")
    judged = result.verdict_round
    dissent = judged.verdict.dissent if judged is not None and judged.verdict is not None else ()
    lines: list[RenderableType] = [status]
    if dissent:
        lines.append(Text("dissent", style="bold yellow"))
        lines += [Text(f"• {strip_controls(d)}", style="yellow") for d in dissent]
    if result.answer is None:
        return Group(*lines)
    return Panel(
        Group(_model_markdown(result.answer), Text(), *lines),
        title="[bold]answer[/]",
        title_align="left",
        border_style="green",
    )


def deliberation_renderable(
    result: DeliberationResult, *, quiet: bool = False, verbose: bool = False
) -> RenderableType:
    """The rounds, the footer, and last the answer with its confidence and dissent, so
    that it is what stays on screen. `verbose` adds the final round's answers and the
    timeline; without a verdict the final round's answers are the answer, always shown.
    """
    if quiet:
        return _quiet(result)
    last = result.final_round
    parts: list[RenderableType] = []
    if result.rounds or result.failed_round:
        parts.append(_table("rounds", ROUND_COLUMNS, round_rows(result)))
    shows_answers = verbose or result.answer is None or result.unanimous_round is not None
    if last is not None and shows_answers:
        for a in last.answers:
            where = member_where(result.plan, a.persona)
            parts.append(_answer_panel(a, f"round {last.number} · {a.persona}", "cyan", where))
        if last.failures:
            parts.append(_failures_panel(last.failures))
    if verbose and result.timeline:
        parts.append(_table("timeline", TIMELINE_COLUMNS, timeline_rows(result)))
    parts.append(Text(deliberation_footer(result), style="dim"))
    parts.append(_verdict_block(result))
    parts += _agreement_parts(result.agreement_map, verbose)
    return Group(*parts)
