"""`council batch FILE` and its helpers `council batch prepare|collect FILE`.

One command whose first argument picks what it does: `prepare` and `collect` are the
helpers (an input file literally named so is given as `./prepare`); anything else is
the input of a batch. It takes every flag `oracle` and `deliberate` take.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from council.app.flags import AskFlags
from council.cli.base import app, handles_errors
from council.cli.command import AskCommand
from council.cli.options import batch_options
from council.cli.usage import at_least
from council.config.defaults import DEFAULT_OUTAGE_LIMIT
from council.errors import UsageError

__all__ = ["batch_command"]

HELPERS = ("prepare", "collect")
# Its own options in groups of their own: in one "Options" box, the long
# --speculative/--no-speculative squeezed every description into a narrow column.
BATCH_PANEL = "Batch"
DELIBERATE_PANEL = "Deliberate mode"


class BatchCommand(AskCommand):
    """`council batch`: the asking command's options, and `prepare`/`collect` handed to
    their own app before any option is parsed (they take options a batch does not)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] in HELPERS:
            from council.cli.batch_tools import batch_tools_app

            batch_tools_app(args, prog_name="council batch")  # exits with the helper's code
        return super().parse_args(ctx, args)


@app.command(name="batch", cls=BatchCommand)
@handles_errors
@batch_options
def batch_command(
    *,
    flags: AskFlags,
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            metavar="FILE",
            help="The item lines (JSONL; - for stdout). The same --out again resumes.",
            show_default=False,
            rich_help_panel=BATCH_PANEL,
        ),
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            "--mode", metavar="MODE", help="oracle or deliberate.", rich_help_panel=BATCH_PANEL
        ),
    ] = "oracle",
    synthesize: Annotated[
        bool,
        typer.Option(
            "--synthesize",
            "-s",
            help="oracle mode: one answer by the arbiter.",
            rich_help_panel=BATCH_PANEL,
        ),
    ] = False,
    template: Annotated[
        str | None,
        typer.Option(
            "--template",
            metavar="TEXT",
            help='The question from fields: "Review: {body}".',
            show_default=False,
            rich_help_panel=BATCH_PANEL,
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Stop at a bad input line (else skip it).",
            rich_help_panel=BATCH_PANEL,
        ),
    ] = False,
    ordered: Annotated[
        bool,
        typer.Option(
            "--ordered",
            help="Lines in input order (a bounded buffer).",
            rich_help_panel=BATCH_PANEL,
        ),
    ] = False,
    no_query: Annotated[
        bool,
        typer.Option(
            "--no-query", help="Leave the question off --out lines.", rich_help_panel=BATCH_PANEL
        ),
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Resuming: ask failed items again.",
            rich_help_panel=BATCH_PANEL,
        ),
    ] = False,
    max_items: Annotated[
        int | None,
        typer.Option(
            "--max-items",
            help="Ask at most this many items.",
            show_default=False,
            rich_help_panel=BATCH_PANEL,
        ),
    ] = None,
    outage_limit: Annotated[
        float,
        typer.Option(
            "--outage-limit",
            metavar="SECONDS",
            help="Wait this long for an endpoint that is down.",
            callback=at_least(0),
            show_default=f"{DEFAULT_OUTAGE_LIMIT:g}",
            rich_help_panel=BATCH_PANEL,
        ),
    ] = DEFAULT_OUTAGE_LIMIT,
    via: Annotated[
        str,
        typer.Option(
            "--via",
            metavar="HOW",
            help="direct or batch-api (the provider's).",
            rich_help_panel=BATCH_PANEL,
        ),
    ] = "direct",
    cancel: Annotated[
        bool,
        typer.Option(
            "--cancel", help="With --via batch-api: cancel its jobs.", rich_help_panel=BATCH_PANEL
        ),
    ] = False,
    poll_interval: Annotated[
        float | None,
        typer.Option(
            "--poll-interval",
            metavar="SECONDS",
            help="--via batch-api: first wait between polls (then up to 30 s).",
            show_default="1",
            rich_help_panel=BATCH_PANEL,
        ),
    ] = None,
    rounds: Annotated[
        int | None,
        typer.Option(
            "--rounds",
            "-r",
            help="Most rounds.",
            show_default=False,
            rich_help_panel=DELIBERATE_PANEL,
        ),
    ] = None,
    speculative: Annotated[
        bool | None,
        typer.Option(
            "--speculative/--no-speculative",
            help="Speculative rounds.",
            show_default=False,
            rich_help_panel=DELIBERATE_PANEL,
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="Converge at.",
            show_default=False,
            rich_help_panel=DELIBERATE_PANEL,
        ),
    ] = None,
    max_wasted_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-wasted-tokens",
            help="Tokens a speculative round may waste.",
            callback=at_least(0),
            show_default=False,
            rich_help_panel=DELIBERATE_PANEL,
        ),
    ] = None,
) -> None:
    """Ask the same council about every item of a file, within the endpoint's limits.

    Each item gets one line in --out as it finishes ({"id", "query", its fields,
    "status", "answers", "answer", "errors", "metrics"}). Running the same command
    again resumes: ok items are skipped. Exit 0 when every item is ok, 3 when some
    failed, 1 when all failed.

    \b
    Examples:
      council batch tickets.jsonl -p judge,critic --out verdicts.jsonl
      council batch tickets.jsonl -P review --mode deliberate --out verdicts.jsonl
      council batch prs.csv --template "Review: {title}" -s --out reviews.jsonl
      council batch questions.txt --dry-run
      council batch prepare tickets.jsonl -p judge > requests.jsonl
      council batch collect outputs.jsonl --out verdicts.jsonl
    """
    from council.app.batch.command import BatchOptions, run_batch

    if flags.query is None:
        raise UsageError("council batch needs a FILE", "give its path, or - for stdin")
    source = flags.query
    options = BatchOptions(
        source=source,
        out=out,
        mode=mode,
        synthesize=synthesize,
        template=template,
        strict=strict,
        ordered=ordered,
        retry_failed=retry_failed,
        max_items=max_items,
        outage_limit=outage_limit,
        max_tokens_total=flags.max_tokens_total,
        via=via,
        cancel=cancel,
        rounds=rounds,
        speculative=speculative,
        threshold=threshold,
        max_wasted_tokens=max_wasted_tokens,
        no_query=no_query,
        poll_interval=poll_interval,
        # As typed: a batch-API run stopped by Ctrl-C prints it with --cancel.
        command_line=tuple(sys.argv[1:]),
    )
    code = run_batch(flags, options)
    if code:
        raise typer.Exit(code)
