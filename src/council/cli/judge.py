"""`council judge`: a jury of personas or models grades an answer, or a pair of answers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from council.app.flags import AskFlags
from council.cli.base import app, handles_errors
from council.cli.command import AskCommand
from council.cli.options import ask_options

__all__ = ["judge_command"]

JURY_PANEL = "Jury"


@app.command(name="judge", cls=AskCommand)
@handles_errors
@ask_options
def judge_command(
    answer: Annotated[
        Path | None,
        typer.Option(
            "--answer",
            help="The answer to grade against --rubric.",
            metavar="FILE",
            show_default=False,
            rich_help_panel=JURY_PANEL,
        ),
    ] = None,
    rubric: Annotated[
        str | None,
        typer.Option(
            "--rubric",
            help="Criteria, one a line (or comma-separated), as text or a file; scored 1-5.",
            metavar="TEXT|FILE",
            show_default=False,
            rich_help_panel=JURY_PANEL,
        ),
    ] = None,
    pair: Annotated[
        tuple[Path, Path] | None,
        typer.Option(
            "--pair",
            help="Two answers to compare; each juror judges both orders.",
            metavar="A B",
            show_default=False,
            rich_help_panel=JURY_PANEL,
        ),
    ] = None,
    pool: Annotated[
        str,
        typer.Option(
            "--pool",
            help="majority (of the jurors' verdicts) or mean (of their scores).",
            metavar="HOW",
            rich_help_panel=JURY_PANEL,
        ),
    ] = "majority",
    pass_score: Annotated[
        float,
        typer.Option(
            "--pass-score",
            help="With --rubric: the mean score (1-5) that approves.",
            rich_help_panel=JURY_PANEL,
        ),
    ] = 3.5,
    gate: Annotated[
        bool,
        typer.Option(
            "--gate",
            help="Exit 0 approve (a pair: A wins), 4 reject (B wins), 3 undecided or failed.",
            rich_help_panel=JURY_PANEL,
        ),
    ] = False,
    *,
    flags: AskFlags,
) -> None:
    """A jury (-p personas, -m models, a preset) grades an answer or a pair of answers.

    Reports the pooled verdict, each juror's verdict and reasoning, the jury's
    agreement (Krippendorff's alpha for scores, Fleiss' kappa for a pair's ballots)
    and, for a pair, the position-flip rate.

    \b
    Examples:
      council judge -p judge,critic,skeptic --answer reply.md --rubric "correct, complete"
      council judge -m gpt-4o-mini -m llama3 --pair a.txt b.txt "Which answer is better?"
      council judge --gate --answer out.md --rubric rubric.txt "Summarise the report"
    """
    from council.app.judge import judge

    code = judge(
        flags, answer=answer, rubric=rubric, pair=pair, pool=pool, gate=gate, pass_score=pass_score
    )
    if code:
        raise typer.Exit(code)
