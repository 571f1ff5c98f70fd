"""The commands that ask models: `council oracle` and `council deliberate`."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

import typer

from council.cli.base import app, handles_errors
from council.cli.options import (
    ApiKeyEnvOption,
    ArbiterOption,
    BaseUrlOption,
    ContextOption,
    DryRunOption,
    EndpointOption,
    JsonlOption,
    JsonOption,
    MaxConcurrencyOption,
    ModelOption,
    ModelPathOption,
    NoHistoryOption,
    NoStoreTextOption,
    PersonasOption,
    PresetOption,
    QueryArgument,
    QuietOption,
    RetriesOption,
    TimeoutOption,
    resolve_ask,
    setting_flags,
)
from council.errors import UsageError

if TYPE_CHECKING:
    from council.cli.options import AskRequest
    from council.store.resume import ResumedCouncil

__all__ = ["deliberate_command", "oracle_command"]


def _print_dry_run(
    plan_dict: dict[str, Any], markdown: str, request: AskRequest, json_output: bool
) -> None:
    from council.render.json_out import dumps
    from council.render.markdown import sources_markdown

    if json_output:
        plan_dict["sources"] = request.settings.sources
        typer.echo(dumps(plan_dict))
    else:
        typer.echo(markdown + sources_markdown(request.settings), nl=False)


@app.command(name="oracle")
@handles_errors
def oracle_command(
    query: QueryArgument = None,
    preset: PresetOption = None,
    personas: PersonasOption = None,
    synthesize: Annotated[
        bool, typer.Option("--synthesize", "-s", help="Have the arbiter write one synthesis.")
    ] = False,
    arbiter: ArbiterOption = None,
    context: ContextOption = None,
    endpoint: EndpointOption = None,
    base_url: BaseUrlOption = None,
    model_path: ModelPathOption = None,
    model: ModelOption = None,
    api_key_env: ApiKeyEnvOption = None,
    timeout: TimeoutOption = None,
    retries: RetriesOption = None,
    max_concurrency: MaxConcurrencyOption = None,
    json_output: JsonOption = False,
    jsonl_output: JsonlOption = False,
    quiet: QuietOption = False,
    dry_run: DryRunOption = False,
    no_history: NoHistoryOption = False,
    no_store_text: NoStoreTextOption = False,
) -> None:
    """Ask every persona the same question at once and print their answers together.

    \b
    Examples:
      council oracle "Should we rewrite the billing service in Rust?"
      council oracle -p judge,critic,security --synthesize "Is this API safe?" -c api.py
      council oracle --preset review -c design.md "Review this design"
      git diff | council oracle --json -
    """
    from council.engine.plan import build_oracle_plan

    request = resolve_ask(
        setting_flags(locals()),
        query=query,
        context=context,
        preset=preset,
        json_output=json_output,
        jsonl_output=jsonl_output,
        dry_run=dry_run,
    )
    plan = build_oracle_plan(
        query=request.question,
        personas=request.personas,
        endpoint=request.settings.endpoint,
        attachments=request.attachments,
        arbiter=request.arbiter if synthesize else None,
    )
    if dry_run:
        from council.render.markdown import plan_markdown

        _print_dry_run(plan.to_dict(), plan_markdown(plan), request, json_output)
        return
    from council.app.run import run_oracle
    from council.endpoint.local import serving

    record = request.record_options(no_history=no_history, no_store_text=no_store_text)
    with serving(plan.endpoint) as endpoint:
        plan = replace(plan, endpoint=endpoint)
        code = run_oracle(plan, request.mode, quiet=quiet, record=record)
    if code:
        raise typer.Exit(code)


@app.command(name="deliberate")
@handles_errors
def deliberate_command(
    query: QueryArgument = None,
    preset: PresetOption = None,
    personas: PersonasOption = None,
    rounds: Annotated[
        int | None,
        typer.Option(
            "--rounds",
            "-r",
            help="Most rounds before the council stops. [default: 3]",
            min=1,
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
            min=0.0,
            max=1.0,
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
    arbiter: ArbiterOption = None,
    context: ContextOption = None,
    endpoint: EndpointOption = None,
    base_url: BaseUrlOption = None,
    model_path: ModelPathOption = None,
    model: ModelOption = None,
    api_key_env: ApiKeyEnvOption = None,
    timeout: TimeoutOption = None,
    retries: RetriesOption = None,
    max_concurrency: MaxConcurrencyOption = None,
    json_output: JsonOption = False,
    jsonl_output: JsonlOption = False,
    quiet: QuietOption = False,
    dry_run: DryRunOption = False,
    no_history: NoHistoryOption = False,
    no_store_text: NoStoreTextOption = False,
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
    from council.engine.deliberation_plan import build_deliberation_plan

    resumed = None
    if resume is not None:
        resumed = _load_resumed(
            resume,
            query=query,
            preset=preset,
            personas=personas,
            arbiter=arbiter,
            rounds=rounds,
            threshold=threshold,
            context=context,
        )
        max_wasted_tokens = (
            max_wasted_tokens
            if max_wasted_tokens is not None
            else resumed.settings.get("max_wasted_tokens")
        )
    request = resolve_ask(
        setting_flags(locals()),
        query=query,
        context=context,
        preset=preset,
        json_output=json_output,
        jsonl_output=jsonl_output,
        dry_run=dry_run,
        resumed=resumed,
    )
    settings = request.settings
    is_speculative = bool(settings.get("speculative"))
    if max_wasted_tokens is not None and not is_speculative:
        raise UsageError(
            "--max-wasted-tokens only applies with --speculative", "add --speculative or drop it"
        )
    plan = build_deliberation_plan(
        query=request.question,
        personas=request.personas,
        arbiter=request.arbiter,
        endpoint=settings.endpoint,
        attachments=request.attachments,
        rounds=int(settings.get("rounds")),
        threshold=float(settings.get("threshold")),
        speculative=is_speculative,
        max_wasted_tokens=max_wasted_tokens,
        question_text=resumed.question if resumed else None,
    )
    if dry_run:
        from council.render.markdown import deliberation_plan_markdown

        _print_dry_run(plan.to_dict(), deliberation_plan_markdown(plan), request, json_output)
        return
    from council.app.run import run_deliberation
    from council.endpoint.local import serving

    record = request.record_options(no_history=no_history, no_store_text=no_store_text)
    if record is not None and resumed is not None:
        record = replace(record, resumed_from=resumed.run_id)
    with serving(plan.endpoint) as endpoint:
        plan = replace(plan, endpoint=endpoint)
        code = run_deliberation(
            plan,
            request.mode,
            quiet=quiet,
            record=record,
            resume=resumed.state if resumed else None,
        )
    if code:
        raise typer.Exit(code)


def _load_resumed(run_id: str, **council_flags: Any) -> ResumedCouncil:
    """The recorded council to continue; flags that would change it are refused."""
    from council.store.db import HistoryDB
    from council.store.resume import load_resume

    given = [name for name, value in council_flags.items() if value is not None]
    if given:
        flags = ", ".join(f"--{name}" if name != "query" else "a question" for name in given)
        raise UsageError(
            f"--resume continues the recorded council; it takes no {flags}",
            "drop them, or start a new council instead",
        )
    history = HistoryDB.open()
    try:
        return load_resume(history, run_id)
    finally:
        history.close()
