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
            help="Where the item lines go (JSONL; - for stdout). Run again with the same "
            "--out to resume: items already there are skipped.",
            show_default=False,
        ),
    ] = None,
    mode: Annotated[
        str, typer.Option("--mode", help="What each item runs: oracle or deliberate.")
    ] = "oracle",
    synthesize: Annotated[
        bool,
        typer.Option("--synthesize", "-s", help="oracle mode: have the arbiter write one answer."),
    ] = False,
    template: Annotated[
        str | None,
        typer.Option(
            "--template",
            help='Build each question from the item\'s fields, e.g. "Review this ticket: {body}".',
            show_default=False,
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Stop at a bad input line instead of skipping it.")
    ] = False,
    ordered: Annotated[
        bool, typer.Option("--ordered", help="Write the lines in input order (bounded buffer).")
    ] = False,
    no_query: Annotated[
        bool,
        typer.Option("--no-query", help="Leave each item's question off its --out line."),
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option("--retry-failed", help="Resuming: ask the items whose line failed again."),
    ] = False,
    max_items: Annotated[
        int | None,
        typer.Option("--max-items", help="Ask at most this many items.", show_default=False),
    ] = None,
    outage_limit: Annotated[
        float,
        typer.Option(
            "--outage-limit",
            metavar="SECONDS",
            help="While the endpoint cannot be reached, items wait this long before they fail "
            "(at least 0).",
            callback=at_least(0),
            show_default=f"{DEFAULT_OUTAGE_LIMIT:g}",
        ),
    ] = DEFAULT_OUTAGE_LIMIT,
    via: Annotated[
        str,
        typer.Option("--via", help="direct (calls from here) or batch-api (the provider's)."),
    ] = "direct",
    cancel: Annotated[
        bool, typer.Option("--cancel", help="With --via batch-api: cancel its jobs.")
    ] = False,
    poll_interval: Annotated[
        float | None,
        typer.Option(
            "--poll-interval",
            metavar="SECONDS",
            help="With --via batch-api: the first wait between polls, then longer, to 30 s.",
            show_default="1",
        ),
    ] = None,
    rounds: Annotated[
        int | None,
        typer.Option("--rounds", "-r", help="deliberate mode: most rounds.", show_default=False),
    ] = None,
    speculative: Annotated[
        bool | None,
        typer.Option(
            "--speculative/--no-speculative",
            help="deliberate mode: speculative rounds.",
            show_default=False,
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold", help="deliberate mode: confidence to converge.", show_default=False
        ),
    ] = None,
    max_wasted_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-wasted-tokens",
            help="deliberate mode, --speculative: tokens a speculative round may waste "
            "(at least 0).",
            callback=at_least(0),
            show_default=False,
        ),
    ] = None,
) -> None:
    """Ask the same council about every item of a file, within the endpoint's limits.

    Each item gets one line in --out as it finishes ({"id", "query", its fields, "status",
    "answers", "answer", "errors", "metrics"}). Running the same command again
    resumes: ok items are skipped. Exit 0 when every item is ok, 3 when some
    failed, 1 when all failed.

    \b
    Examples:
      council batch tickets.jsonl -p judge,critic --out verdicts.jsonl
      council batch tickets.jsonl --preset review --mode deliberate --out verdicts.jsonl
      council batch prs.csv --template "Review this PR: {title}\\n{body}" -s --out reviews.jsonl
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
