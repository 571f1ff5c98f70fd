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
    items: Annotated[
        str | None,
        typer.Option(
            "--items",
            help="A JSONL file (or -) of cases: id, query, and answer (+ rubric) or a and b.",
            metavar="FILE",
            show_default=False,
            rich_help_panel=JURY_PANEL,
        ),
    ] = None,
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            help="With --items: a line per item, written as each ends; the same --out resumes.",
            metavar="FILE",
            show_default=False,
            rich_help_panel=JURY_PANEL,
        ),
    ] = None,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="With --items: ask again the items --out has as failed (else skipped).",
            rich_help_panel=JURY_PANEL,
        ),
    ] = False,
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
            help="Exit 0 approve (a pair: A wins), 4 reject (B wins), 3 undecided or failed; "
            "--items: 4 if any item is rejected, 3 if any is not approved.",
            rich_help_panel=JURY_PANEL,
        ),
    ] = False,
    *,
    flags: AskFlags,
) -> None:
    """A jury (-p personas, -m models, a preset or its jury:) grades an answer, a pair, or a file.

    Reports the pooled verdict, each juror's verdict and reasoning, the jury's
    agreement (Krippendorff's alpha for scores, Fleiss' kappa for a pair's ballots)
    and, for a pair, the position-flip rate. With --items, a line per item in --out
    and a summary; the same command resumes an interrupted run. Recorded in the
    history as judge (--no-history: not).

    \b
    Examples:
      council judge -p judge,critic,skeptic --answer reply.md --rubric "correct, complete"
      council judge -m gpt-4o-mini -m llama3 --pair a.txt b.txt "Which answer is better?"
      council judge --gate --answer out.md --rubric rubric.txt "Summarise the report"
      council judge --preset review --items cases.jsonl --out verdicts.jsonl --gate
    """
    if items is not None:
        from council.app.judge_items import ItemsOptions, judge_items

        options = ItemsOptions(
            items, out or "", rubric, pool, pass_score, gate=gate, retry_failed=retry_failed
        )
        code = judge_items(flags, options, answer=answer, pair=pair)
    else:
        from council.app.judge import judge

        code = judge(
            flags,
            answer=answer,
            rubric=rubric,
            pair=pair,
            pool=pool,
            gate=gate,
            pass_score=pass_score,
            out=out,
            retry_failed=retry_failed,
        )
    if code:
        raise typer.Exit(code)
