"""The commands that ask models: `council oracle` and `council deliberate`."""

from __future__ import annotations

from typing import Annotated

import typer

from council.app.flags import AskFlags
from council.cli.base import app, handles_errors
from council.cli.command import AskCommand
from council.cli.options import ask_options

__all__ = ["deliberate_command", "oracle_command"]


def _exit_with(code: int) -> None:
    if code:
        raise typer.Exit(code)


@app.command(name="oracle", cls=AskCommand)
@handles_errors
@ask_options
def oracle_command(
    synthesize: Annotated[
        bool, typer.Option("--synthesize", "-s", help="Have the arbiter write one synthesis.")
    ] = False,
    *,
    flags: AskFlags,
) -> None:
    """Ask every persona the same question at once and print their answers together.

    \b
    Examples:
      council oracle "Should we rewrite the billing service in Rust?"
      council oracle -p judge,critic,security --synthesize "Is this API safe?" -c api.py
      council oracle --preset review -c design.md "Review this design"
      git diff | council oracle "Review this diff"     (the diff attached as context)
    """
    from council.app.ask import ask_oracle

    _exit_with(ask_oracle(flags, synthesize=synthesize))


@app.command(name="deliberate", cls=AskCommand)
@handles_errors
@ask_options
def deliberate_command(
    rounds: Annotated[
        int | None,
        typer.Option(
            "--rounds",
            "-r",
            help="Most rounds before the council stops (1 to 20). [default: 3]",
            show_default=False,
        ),
    ] = None,
    speculative: Annotated[
        bool | None,
        typer.Option(
            "--speculative/--no-speculative",
            help="Start each round while the arbiter still judges the last: "
            "same answer, sooner; a converged verdict cancels the extra round. [default: off]",
            show_default=False,
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="Confidence a converged verdict needs to end the council (0 to 1). [default: 0.8]",
            show_default=False,
        ),
    ] = None,
    max_wasted_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-wasted-tokens",
            help="With --speculative: run a round speculatively only while the tokens it "
            "could waste (estimated from the round before) stay within this.",
            min=0,
            show_default=False,
        ),
    ] = None,
    *,
    flags: AskFlags,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="Continue an interrupted council from the history (its id from "
            "'council history'), asking only what it had not answered yet.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run rounds of personas revising against each other until an arbiter says they agree.

    Round 1: every persona answers. Each later round: every persona reads all the
    previous round's answers and revises. After each round the arbiter writes a
    synthesis and judges whether the council has converged.

    \b
    Examples:
      council deliberate -p judge,critic,skeptic --speculative "Is this migration plan safe?"
      council deliberate --preset review -c plan.md "Should we ship this on Friday?"
      council deliberate --json --rounds 2 "Monorepo or not?"
    """
    from council.app.ask import ask_deliberation

    _exit_with(
        ask_deliberation(
            flags,
            rounds=rounds,
            speculative=speculative,
            threshold=threshold,
            max_wasted_tokens=max_wasted_tokens,
            resume=resume,
        )
    )
