"""The final result as rich renderables, for a terminal."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.markdown import Markdown
from rich.panel import Panel
from rich.text import Text

from council.render.format import answer_metrics, run_footer
from council.results import Answer, Failure, OracleResult

__all__ = ["oracle_renderable"]


def _failure_text(failure: Failure) -> Text:
    retries = f" after {failure.retries} retries" if failure.retries else ""
    text = Text()
    text.append(failure.persona, style="bold")
    text.append(f": {failure.error_kind}{retries} — {failure.message}")
    return text


def _answer_panel(answer: Answer, title: str, border: str) -> Panel:
    return Panel(
        Markdown(answer.text),
        title=f"[bold]{title}[/]",
        title_align="left",
        subtitle=answer_metrics(answer),
        subtitle_align="right",
        border_style=border,
    )


def oracle_renderable(result: OracleResult, *, quiet: bool = False) -> RenderableType:
    """One panel per answer, then failures, the synthesis and a footer line."""
    synthesis = result.synthesis
    if quiet:
        if isinstance(synthesis, Answer):
            return Markdown(synthesis.text)
        return Group(*(Panel(Markdown(a.text), title=a.persona) for a in result.answers))
    parts: list[RenderableType] = [
        _answer_panel(answer, answer.persona, "cyan") for answer in result.answers
    ]
    failures = result.failures
    if failures:
        parts.append(
            Panel(
                Group(*(_failure_text(f) for f in failures)),
                title="did not answer",
                border_style="red",
            )
        )
    if isinstance(synthesis, Answer):
        parts.append(_answer_panel(synthesis, f"synthesis · {synthesis.persona}", "green"))
    elif isinstance(synthesis, Failure):
        parts.append(Panel(_failure_text(synthesis), title="synthesis failed", border_style="red"))
    parts.append(Text(run_footer(result), style="dim"))
    return Group(*parts)
