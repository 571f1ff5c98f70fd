"""The commands that ask models: `council oracle` and `council deliberate`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from council.app.flags import AskFlags
from council.cli.base import app, handles_errors
from council.cli.command import AskCommand
from council.cli.options import (
    HISTORY_PANEL,
    ContinueFromOption,
    ContinueOption,
    StopRuleOption,
    WeightingOption,
    ask_options,
    resume_options,
)
from council.cli.usage import at_least
from council.config.defaults import DEFAULT_ROUNDS, DEFAULT_THRESHOLD
from council.errors import UsageError

if TYPE_CHECKING:
    from council.app.ask import FollowUp
    from council.app.escalate import EscalateFlags

__all__ = ["deliberate_command", "oracle_command", "resume_command"]


def _exit_with(code: int) -> None:
    if code:
        raise typer.Exit(code)


# oracle's and deliberate's --escalate and its settings, listed together by `--help`.
ESCALATION_PANEL = "Escalation"
DEFAULT_ESCALATE_THRESHOLD = 0.8  # engine/escalation.py's DEFAULT_THRESHOLD (not imported:
# --help stays light)
EscalateOption = Annotated[
    bool | None,
    typer.Option(
        "--escalate/--no-escalate",
        help="A first panel; the full council only in doubt.",
        show_default=False,
        rich_help_panel=ESCALATION_PANEL,
    ),
]
PanelOption = Annotated[
    str | None,
    typer.Option(
        "--panel",
        help="1 to 3 first personas, or names.",
        metavar="N|NAMES",
        show_default="1",
        rich_help_panel=ESCALATION_PANEL,
    ),
]
EscalateThresholdOption = Annotated[
    float | None,
    typer.Option(
        "--escalate-threshold",
        help="Panel confidence needed.",
        show_default=f"{DEFAULT_ESCALATE_THRESHOLD:g}",
        rich_help_panel=ESCALATION_PANEL,
    ),
]
ShadowRateOption = Annotated[
    float | None,
    typer.Option(
        "--shadow-rate",
        help="Share asked in full anyway.",
        show_default="0",
        rich_help_panel=ESCALATION_PANEL,
    ),
]


@app.command(name="oracle", cls=AskCommand)
@handles_errors
@ask_options
def oracle_command(
    synthesize: Annotated[
        bool, typer.Option("--synthesize", "-s", help="Have the arbiter write one synthesis.")
    ] = False,
    *,
    flags: AskFlags,
    follow: ContinueOption = False,
    continue_from: ContinueFromOption = None,
    escalate: EscalateOption = None,
    panel: PanelOption = None,
    escalate_threshold: EscalateThresholdOption = None,
    shadow_rate: ShadowRateOption = None,
    stop_rule: StopRuleOption = None,
    weighting: WeightingOption = None,
) -> None:
    """Ask every persona the same question at once and print their answers together.

    \b
    Examples:
      council oracle "Should we rewrite the billing service in Rust?"
      council oracle -p judge,critic,security -s -c api.py "Is this API safe?"
      council oracle --preset review -c design.md "Review this design"
      git diff | council oracle "Review this diff"     (the diff attached as context)
      council oracle --continue "And for a team of twenty?"   (a follow-up of the last)
    """
    from council.app.ask import ask_oracle

    follow_up = _follow_up(follow, continue_from)
    escalation = _escalate_flags(escalate, panel, escalate_threshold, shadow_rate)
    _exit_with(ask_oracle(flags, synthesize=synthesize, follow_up=follow_up, escalate=escalation))


def _escalate_flags(
    escalate: bool | None, panel: str | None, threshold: float | None, shadow_rate: float | None
) -> EscalateFlags | None:
    """--escalate and its flags as the app takes them; None when none was given (a
    preset's `escalate:` still applies), so that a run without them imports nothing
    of escalation before its first request."""
    if escalate is None and panel is None and threshold is None and shadow_rate is None:
        return None
    from council.app.escalate import EscalateFlags

    return EscalateFlags(escalate, panel, threshold, shadow_rate)


def _follow_up(follow: bool, continue_from: str | None) -> FollowUp | None:
    """--continue / --continue-from as the app takes them (None: a new question)."""
    from council.app.ask import FollowUp

    if continue_from is not None:
        if not continue_from.strip():
            raise UsageError("--continue-from is empty", "give a run id from 'council history'")
        return FollowUp(continue_from.strip())
    return FollowUp() if follow else None


# deliberate's own options, listed together by `--help`.
DELIBERATION_PANEL = "Deliberation"


@app.command(name="deliberate", cls=AskCommand)
@handles_errors
@ask_options
def deliberate_command(
    rounds: Annotated[
        int | None,
        typer.Option(
            "--rounds",
            "-r",
            help="Most rounds (1 to 20).",
            show_default=str(DEFAULT_ROUNDS),
            rich_help_panel=DELIBERATION_PANEL,
        ),
    ] = None,
    speculative: Annotated[
        bool,
        typer.Option(
            "--speculative",
            help="Start a round while the arbiter judges the last: same answer, sooner.",
            rich_help_panel=DELIBERATION_PANEL,
        ),
    ] = False,
    no_speculative: Annotated[
        bool,
        typer.Option(
            "--no-speculative",
            help="One round at a time, whatever a preset or the config says.",
            rich_help_panel=DELIBERATION_PANEL,
        ),
    ] = False,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="Confidence a converged verdict needs to end the council.",
            show_default=f"{DEFAULT_THRESHOLD:g}",
            rich_help_panel=DELIBERATION_PANEL,
        ),
    ] = None,
    max_wasted_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-wasted-tokens",
            help="Speculate only while a round could waste no more tokens than this (at least 0).",
            callback=at_least(0),
            show_default=False,
            rich_help_panel=DELIBERATION_PANEL,
        ),
    ] = None,
    *,
    flags: AskFlags,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="Continue an interrupted council ('council history' has its id).",
            metavar="ID",
            show_default=False,
            rich_help_panel=HISTORY_PANEL,
        ),
    ] = None,
    follow: ContinueOption = False,
    continue_from: ContinueFromOption = None,
    escalate: EscalateOption = None,
    panel: PanelOption = None,
    escalate_threshold: EscalateThresholdOption = None,
    shadow_rate: ShadowRateOption = None,
) -> None:
    """Run rounds of personas revising against each other until an arbiter says they agree.

    Round 1: every persona answers. Each later round: every persona reads all the
    previous round's answers and revises. After each round the arbiter writes a
    synthesis and judges whether the council has converged.

    \b
    Examples:
      council deliberate --speculative "Is this migration plan safe?"
      council deliberate --preset review -c plan.md "Ship this on Friday?"
      council deliberate --json --rounds 2 "Monorepo or not?"
    """
    from council.app.ask import ask_deliberation

    if speculative and no_speculative:
        raise UsageError("--speculative and --no-speculative contradict", "give one of them")
    _exit_with(
        ask_deliberation(
            flags,
            rounds=rounds,
            # Not given (None): a preset or the config may say.
            speculative=True if speculative else False if no_speculative else None,
            threshold=threshold,
            max_wasted_tokens=max_wasted_tokens,
            resume=resume,
            follow_up=_follow_up(follow, continue_from),
            escalate=_escalate_flags(escalate, panel, escalate_threshold, shadow_rate),
        )
    )


@app.command(name="resume")
@handles_errors
@resume_options
def resume_command(
    run_id: Annotated[
        str, typer.Argument(help="The run's id (or a unique start of it), from 'council history'.")
    ],
    *,
    flags: AskFlags,
) -> None:
    """Go on with an interrupted or failed council, asking only what it had not answered yet.

    The same as 'council deliberate --resume ID' (only deliberations resume): the
    council is the recorded one; flags may change where its calls go and the output.

    \b
    Examples:
      council resume 6742a1b2c3d4e5
      council resume 6742a1b2 --base-url http://localhost:8080/v1 --json
    """
    from council.app.ask import ask_resume

    _exit_with(ask_resume(run_id, flags))
