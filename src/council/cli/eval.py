"""`council eval DATA.jsonl`: strategies compared on labelled questions (accuracy, cost)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from council.app.flags import AskFlags
from council.cli.base import app, handles_errors, say
from council.cli.options import (
    OUTPUT_PANEL,
    ApiKeyEnvOption,
    ArbiterOption,
    BaseUrlOption,
    EndpointOption,
    JsonOption,
    MaxConcurrencyOption,
    ModelOption,
    ModelPathOption,
    PersonasOption,
    PresetOption,
    RetriesOption,
    SystemOption,
    TimeoutOption,
)
from council.cli.usage import at_least
from council.errors import UsageError

if TYPE_CHECKING:
    from council.app.eval.command import EvalReport

__all__ = ["eval_command"]

EVAL_PANEL = "Evaluation"


@app.command(name="eval")
@handles_errors
def eval_command(
    data: Annotated[
        str | None,
        typer.Argument(
            help="JSONL: one item a line, with id, query, expected (and choices: a list).",
            metavar="DATA",
            show_default=False,
        ),
    ] = None,
    example: Annotated[
        str | None,
        typer.Option(
            "--example",
            help="A data set shipped with council instead of DATA, e.g. basics.",
            metavar="NAME",
            show_default=False,
            rich_help_panel=EVAL_PANEL,
        ),
    ] = None,
    strategies: Annotated[
        str | None,
        typer.Option(
            "--strategies",
            "-S",
            help="Comma-separated: persona names (that persona alone), synthesize, "
            "deliberate, vote, rank.",
            metavar="NAMES",
            show_default="the first persona, and vote (synthesize in builds without --vote)",
            rich_help_panel=EVAL_PANEL,
        ),
    ] = None,
    scorer: Annotated[
        str | None,
        typer.Option(
            "--scorer",
            help="exact, choice, regex, number, judge, or jury (the preset's jury: or the "
            "personas grade against expected; Cohen's kappa with the labels).",
            metavar="NAME",
            show_default="choice for items with choices, else exact",
            rich_help_panel=EVAL_PANEL,
        ),
    ] = None,
    tolerance: Annotated[
        str,
        typer.Option(
            "--tolerance",
            help="For --scorer number: absolute (0.01) or relative (1%).",
            metavar="TOL",
            show_default="1e-6",
            rich_help_panel=EVAL_PANEL,
        ),
    ] = "1e-6",
    judge_persona: Annotated[
        str | None,
        typer.Option(
            "--judge-persona",
            help="For --scorer judge: who grades answers against expected.",
            metavar="NAME",
            show_default="the arbiter",
            rich_help_panel=EVAL_PANEL,
        ),
    ] = None,
    rounds: Annotated[
        int | None,
        typer.Option(
            "--rounds",
            "-r",
            help="Most rounds of the deliberate strategy (1 to 20).",
            metavar="N",
            show_default="deliberate's",
            rich_help_panel=EVAL_PANEL,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            help="Evaluate only the first N items (at least 1).",
            metavar="N",
            callback=at_least(1),
            show_default=False,
            rich_help_panel=EVAL_PANEL,
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            "--seed",
            help="The seed of the paired bootstrap intervals: the same seed, the same intervals.",
            metavar="N",
            show_default=True,
            rich_help_panel=EVAL_PANEL,
        ),
    ] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write every item × strategy result here (JSONL); the same command "
            "again skips what it holds.",
            metavar="FILE",
            show_default=False,
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = None,
    csv_file: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            help="Also write the table as CSV, one row per strategy and baseline, with "
            "cost per item and the paired differences (plot-ready).",
            metavar="FILE",
            show_default=False,
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = None,
    items: Annotated[
        bool,
        typer.Option(
            "--items",
            help="Also list the items each strategy got wrong (--json: every result).",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = False,
    json_output: JsonOption = False,
    preset: PresetOption = None,
    personas: PersonasOption = None,
    arbiter: ArbiterOption = None,
    endpoint: EndpointOption = None,
    base_url: BaseUrlOption = None,
    model_path: ModelPathOption = None,
    model: ModelOption = None,
    api_key_env: ApiKeyEnvOption = None,
    timeout: TimeoutOption = None,
    retries: RetriesOption = None,
    max_concurrency: MaxConcurrencyOption = None,
    system: SystemOption = None,
) -> None:
    """Ask labelled questions of several strategies and compare their accuracy and cost.

    Each strategy answers every item: a persona's name is that persona alone;
    synthesize, deliberate, vote and rank use the run's personas (-p or a preset).
    The table gives accuracy with a 95 % Wilson interval, calls, tokens, cost and
    latency per strategy, and two baselines read from the members' own answers (no
    extra call): the best single persona and their majority vote. A chart of accuracy
    against cost per item marks dominated strategies, and paired bootstrap intervals
    say whether a strategy beat the best single persona. Items run concurrently:
    --max-concurrency caps both the runs in flight and the calls. Exits 0 whatever
    the accuracy.

    \b
    Examples:
      council eval --example basics                  (shipped with council)
      council eval examples/eval-basics.jsonl --endpoint local --limit 10 -p judge,critic \\
          --strategies judge,synthesize
      council eval qa.jsonl --scorer judge --strategies judge,deliberate --rounds 2 --out r.jsonl
      council eval qa.jsonl --json --csv table.csv
      council eval qa.jsonl --out r.jsonl --items      (again: nothing is asked, wrong items listed)
      jq -c 'select(.correct|not) | {item, strategy, predicted, expected}' r.jsonl
    """
    from council.app.eval.command import EvalOptions, run_eval

    data = _data_or_example(data, example)
    flags = AskFlags(
        query=data,
        preset=preset,
        personas=personas,
        arbiter=arbiter,
        endpoint=endpoint,
        base_url=base_url,
        model_path=model_path,
        model=model,
        api_key_env=api_key_env,
        timeout=timeout,
        retries=retries,
        max_concurrency=max_concurrency,
        json_output=json_output,
        system=system,
    )
    options = EvalOptions(
        data=data,
        strategies=strategies,
        scorer=scorer,
        tolerance=tolerance,
        judge_persona=judge_persona,
        out=str(out) if out is not None else None,
        limit=limit,
        rounds=rounds,
        seed=seed,
    )
    report = run_eval(flags, options)
    if csv_file is not None:
        _write_csv(csv_file, report)
    _print_report(report, json_output=json_output, items=items)
    if report.stopped is not None:  # Ctrl-C, SIGTERM, SIGHUP: what finished is shown above
        raise typer.Exit(report.stopped)


def _data_or_example(data: str | None, example: str | None) -> str:
    """DATA, or the shipped example's file; exactly one of them."""
    if data is not None and example is not None:
        raise UsageError("give DATA or --example, not both", "drop one of them")
    if example is not None:
        from council.app.eval.examples import example_data

        return str(example_data(example))
    if data is None:
        raise UsageError(
            "council eval needs DATA (a JSONL file) or --example NAME",
            "e.g. council eval --example basics",
        )
    return data


def _write_csv(path: Path, report: EvalReport) -> None:
    from council.render.eval_report import eval_csv

    try:
        path.write_text(eval_csv(report.summaries, report.tradeoff), encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"cannot write {path}: {exc.strerror or exc}", "give --csv a writable path"
        ) from None


def _print_report(report: EvalReport, *, json_output: bool, items: bool) -> None:
    from council.render.eval_report import eval_markdown, eval_renderable, wrong_items
    from council.render.jury import jury_agreement_line

    if json_output:
        from council.render.json_out import dumps

        document = report.document()
        if items:
            document["results"] = report.lines
        typer.echo(dumps(document))
        return
    reused = f", {report.reused} from {report.out}" if report.reused else ""
    redone = sum(report.redone.values())
    again = f" ({redone} of them asked again)" if redone else ""
    rescored = f" ({report.rescored} re-scored)" if report.rescored else ""
    heading = (
        f"{report.data}: {report.items} items × {len(report.strategies)} strategies, "
        f"scorer {report.scorer}; {report.asked} runs now{again}{reused}{rescored}"
    )
    from council.app.escalate import escalation_line, escalation_summary

    escalated = escalation_line(escalation_summary(report.lines))
    if sys.stdout.isatty():
        from rich.console import Console

        Console().print(eval_renderable(report.summaries, heading, report.tradeoff))
        if escalated is not None:
            Console().print(escalated, markup=False, highlight=False)
        if report.jury is not None:
            Console().print(jury_agreement_line(report.jury), markup=False)
        if items:
            Console().print(wrong_items(report.lines, report.strategies), markup=False)
        return
    say(eval_markdown(report.summaries, heading, report.tradeoff))
    if escalated is not None:
        say(escalated)
    if report.jury is not None:
        say(jury_agreement_line(report.jury))
    if items:
        say(wrong_items(report.lines, report.strategies))
