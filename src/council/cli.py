"""The `council` command line: flags -> plan -> engine -> renderer, errors -> exit codes.

Only typer, the standard library and light council modules are imported at the
top: `council --help` must not pay for openai. The engine is imported inside
the commands that run it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from council import __version__
from council.errors import EXIT_FAILURE, EXIT_INTERRUPTED, CouncilError, UsageError

if TYPE_CHECKING:
    from council.config import EndpointSettings
    from council.inputs import Attachment
    from council.personas import Persona, PersonaCatalog
    from council.render import OutputMode

__all__ = ["app", "main"]

DEFAULT_PERSONAS = "judge,critic,skeptic"
DEFAULT_ARBITER = "arbiter"

app = typer.Typer(
    name="council",
    help=(
        "Ask several LLM personas at once through any OpenAI-compatible endpoint.\n\n"
        'Example:  council oracle -p judge,critic,skeptic "Should we rewrite billing in Rust?"'
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
personas_app = typer.Typer(no_args_is_help=True, help="List and inspect personas.")
app.add_typer(personas_app, name="personas")

_debug = False
F = TypeVar("F", bound=Callable[..., Any])


def _print_error(message: str) -> None:
    sys.stderr.write(f"council: error: {message}\n")
    sys.stderr.flush()


def handles_errors(command: F) -> F:
    """Turn CouncilError into one line on stderr and its exit code; --debug re-raises."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CouncilError as error:
            if _debug:
                raise
            _print_error(error.one_line())
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            # Ctrl-C outside a run (a run handles its own and prints what finished).
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as error:
            if _debug:
                raise
            _print_error(
                f"unexpected {type(error).__name__}: {error}; "
                "run again with --debug for the traceback, and please report it"
            )
            raise typer.Exit(EXIT_FAILURE) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"council {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")
    ] = False,
) -> None:
    global _debug
    _debug = debug or os.environ.get("COUNCIL_DEBUG", "") not in ("", "0")


def _split_names(value: str, flag: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise UsageError(
            f"{flag} is empty", f"give names separated by commas, e.g. {flag} judge,critic"
        )
    return names


# Options shared by the commands that ask models (one definition, one help text).
QueryArgument = Annotated[
    str | None,
    typer.Argument(help="The question. Use - to read it from stdin.", show_default=False),
]
PersonasOption = Annotated[
    str, typer.Option("--personas", "-p", help="Comma-separated persona names.")
]
ContextOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--context",
        "-c",
        help="Attach a text file to the question (repeatable).",
        show_default=False,
    ),
]
BaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        help="OpenAI-compatible endpoint. [env: COUNCIL_BASE_URL, "
        "OPENAI_BASE_URL; default: https://api.openai.com/v1]",
        show_default=False,
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Model name. [env: COUNCIL_MODEL; default: gpt-4o-mini]",
        show_default=False,
    ),
]
ApiKeyEnvOption = Annotated[
    str | None,
    typer.Option(
        "--api-key-env",
        help="Name of the env var holding the key. [default: OPENAI_API_KEY]",
        show_default=False,
    ),
]
TimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        help="Deadline per call in seconds, retries included. [default: 120]",
        show_default=False,
    ),
]
RetriesOption = Annotated[
    int | None,
    typer.Option(
        "--retries",
        help="Retries on 429, 5xx, timeouts, connection errors. [default: 2]",
        show_default=False,
    ),
]
MaxConcurrencyOption = Annotated[
    int | None,
    typer.Option(
        "--max-concurrency",
        help="Most calls in flight at once. [default: min(calls, 50)]",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document at the end.")]
JsonlOption = Annotated[bool, typer.Option("--jsonl", help="Stream events as JSON lines.")]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="The answer only: no live view, metrics or footer.")
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Print the plan and the exact messages; send nothing.")
]


_SHARED_FLAGS = (
    "query",
    "personas",
    "context",
    "base_url",
    "model",
    "api_key_env",
    "timeout",
    "retries",
    "max_concurrency",
    "json_output",
    "jsonl_output",
    "dry_run",
)


@dataclass
class _Request:
    """What every model-asking command resolves from its flags before building a plan."""

    question: str
    attachments: list[Attachment]
    catalog: PersonaCatalog
    personas: list[Persona]
    endpoint: EndpointSettings
    mode: OutputMode


def _shared_flags(values: dict[str, Any]) -> dict[str, Any]:
    """The shared options of a command, picked from its locals(), for `_resolve_request`.

    One place lists them, so every model-asking command resolves them the same way.
    """
    return {name: values[name] for name in _SHARED_FLAGS}


def _resolve_request(
    *,
    query: str | None,
    personas: str,
    context: list[Path] | None,
    base_url: str | None,
    model: str | None,
    api_key_env: str | None,
    timeout: float | None,
    retries: int | None,
    max_concurrency: int | None,
    json_output: bool,
    jsonl_output: bool,
    dry_run: bool,
) -> _Request:
    from council.config import resolve_endpoint
    from council.inputs import read_context_files, read_query
    from council.personas import PersonaCatalog
    from council.render import choose_mode

    if json_output and jsonl_output:
        raise UsageError("--json and --jsonl are exclusive", "pick one")
    question = read_query(query)
    attachments = read_context_files(list(context or []))
    catalog = PersonaCatalog.discover()
    chosen = catalog.resolve(_split_names(personas, "--personas"))
    endpoint = resolve_endpoint(
        base_url=base_url,
        model=model,
        api_key_env=api_key_env,
        timeout=timeout,
        retries=retries,
        max_concurrency=max_concurrency,
        require_key=not dry_run,
    )
    mode = choose_mode(
        json_output=json_output, jsonl_output=jsonl_output, stdout_is_tty=sys.stdout.isatty()
    )
    return _Request(question, attachments, catalog, chosen, endpoint, mode)


def _print_dry_run(plan_dict: dict[str, Any], markdown: str, json_output: bool) -> None:
    from council.render.json_out import dumps

    typer.echo(dumps(plan_dict) if json_output else markdown, nl=json_output)


@app.command(name="oracle")
@handles_errors
def oracle_command(
    query: QueryArgument = None,
    personas: PersonasOption = DEFAULT_PERSONAS,
    synthesize: Annotated[
        bool, typer.Option("--synthesize", "-s", help="Have the arbiter write one synthesis.")
    ] = False,
    arbiter: Annotated[
        str, typer.Option("--arbiter", help="Persona that writes the synthesis.")
    ] = DEFAULT_ARBITER,
    context: ContextOption = None,
    base_url: BaseUrlOption = None,
    model: ModelOption = None,
    api_key_env: ApiKeyEnvOption = None,
    timeout: TimeoutOption = None,
    retries: RetriesOption = None,
    max_concurrency: MaxConcurrencyOption = None,
    json_output: JsonOption = False,
    jsonl_output: JsonlOption = False,
    quiet: QuietOption = False,
    dry_run: DryRunOption = False,
) -> None:
    """Ask every persona the same question at once and print their answers together.

    \b
    Examples:
      council oracle "Should we rewrite the billing service in Rust?"
      council oracle -p judge,critic,security --synthesize "Is this API safe?" -c api.py
      git diff | council oracle --json -
    """
    from council.plan import build_oracle_plan

    request = _resolve_request(**_shared_flags(locals()))
    plan = build_oracle_plan(
        query=request.question,
        personas=request.personas,
        endpoint=request.endpoint,
        attachments=request.attachments,
        arbiter=request.catalog.get(arbiter) if synthesize else None,
    )
    if dry_run:
        from council.render.markdown import plan_markdown

        _print_dry_run(plan.to_dict(), plan_markdown(plan), json_output)
        return
    from council.runner import run_oracle

    code = run_oracle(plan, request.mode, quiet=quiet)
    if code:
        raise typer.Exit(code)


@app.command(name="deliberate")
@handles_errors
def deliberate_command(
    query: QueryArgument = None,
    personas: PersonasOption = DEFAULT_PERSONAS,
    rounds: Annotated[
        int, typer.Option("--rounds", "-r", help="Most rounds before the council stops.", min=1)
    ] = 3,
    speculative: Annotated[
        bool,
        typer.Option(
            "--speculative",
            help="Start each round while the arbiter still judges the last: "
            "same answer, sooner; a converged verdict cancels the extra round.",
        ),
    ] = False,
    threshold: Annotated[
        float,
        typer.Option(
            "--threshold",
            help="Confidence a converged verdict needs to end the council (0 to 1).",
            min=0.0,
            max=1.0,
        ),
    ] = 0.8,
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
    arbiter: Annotated[
        str, typer.Option("--arbiter", help="Persona that judges each round.")
    ] = DEFAULT_ARBITER,
    context: ContextOption = None,
    base_url: BaseUrlOption = None,
    model: ModelOption = None,
    api_key_env: ApiKeyEnvOption = None,
    timeout: TimeoutOption = None,
    retries: RetriesOption = None,
    max_concurrency: MaxConcurrencyOption = None,
    json_output: JsonOption = False,
    jsonl_output: JsonlOption = False,
    quiet: QuietOption = False,
    dry_run: DryRunOption = False,
) -> None:
    """Run rounds of personas revising against each other until an arbiter says they agree.

    Round 1: every persona answers. Each later round: every persona reads all the
    previous round's answers and revises. After each round the arbiter writes a
    synthesis and judges whether the council has converged.

    \b
    Examples:
      council deliberate -p judge,critic,skeptic --speculative "Is this migration plan safe?"
      council deliberate --json -c plan.md "Should we ship this on Friday?"
    """
    from council.deliberation_plan import build_deliberation_plan

    if max_wasted_tokens is not None and not speculative:
        raise UsageError(
            "--max-wasted-tokens only applies with --speculative", "add --speculative or drop it"
        )
    request = _resolve_request(**_shared_flags(locals()))
    plan = build_deliberation_plan(
        query=request.question,
        personas=request.personas,
        arbiter=request.catalog.get(arbiter),
        endpoint=request.endpoint,
        attachments=request.attachments,
        rounds=rounds,
        threshold=threshold,
        speculative=speculative,
        max_wasted_tokens=max_wasted_tokens,
    )
    if dry_run:
        from council.render.markdown import deliberation_plan_markdown

        _print_dry_run(plan.to_dict(), deliberation_plan_markdown(plan), json_output)
        return
    from council.runner import run_deliberation

    code = run_deliberation(plan, request.mode, quiet=quiet)
    if code:
        raise typer.Exit(code)


@personas_app.command(name="list")
@handles_errors
def personas_list(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the personas you can use, with where each comes from.

    \b
    Example:
      council personas list
    """
    from council.personas import PersonaCatalog

    catalog = PersonaCatalog.discover()
    rows = [
        {
            "name": e.persona.name,
            "description": e.persona.description,
            "origin": e.origin,
            "path": str(e.persona.source),
            "shadowed_by": str(e.shadowed_by) if e.shadowed_by else None,
        }
        for e in catalog.entries
    ]
    if json_output:
        from council.render.json_out import dumps

        typer.echo(dumps(rows))
        return
    width = max((len(r["name"]) for r in rows), default=4)
    for row in rows:
        line = f"{row['name']:<{width}}  {row['description']}  [{row['origin']}]"
        if row["shadowed_by"]:
            line += f" (shadowed by {row['shadowed_by']})"
        typer.echo(line)


@personas_app.command(name="show")
@handles_errors
def personas_show(
    name: Annotated[str, typer.Argument(help="Persona name.")],
) -> None:
    """Show one persona: its settings, file and full system prompt.

    \b
    Example:
      council personas show skeptic
    """
    from council.personas import PersonaCatalog

    persona = PersonaCatalog.discover().get(name)
    typer.echo(f"name: {persona.name}")
    typer.echo(f"description: {persona.description}")
    typer.echo(f"file: {persona.source}")
    for key in ("model", "temperature", "max_tokens"):
        value = getattr(persona, key)
        if value is not None:
            typer.echo(f"{key}: {value}")
    typer.echo("system: |")
    for line in persona.system.splitlines():
        typer.echo(f"  {line}" if line else "")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
