"""The options `council oracle` and `council deliberate` share, declared once.

`@ask_options` gives a command every shared option and hands their values to it as
one `AskFlags`. Flags default to None ("not given"), so that a preset or a config
file can supply the value and `--dry-run` can say which one did.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from council.app.flags import AskFlags

__all__ = ["EndpointOption", "PresetOption", "ask_options", "batch_options"]

QueryArgument = Annotated[
    str | None,
    typer.Argument(
        help="The question (up to 200,000 bytes). Use - to read it from stdin.",
        show_default=False,
    ),
]
FileArgument = Annotated[
    str | None,
    typer.Argument(
        metavar="FILE",
        help="The items: JSONL (id, query, other fields), CSV with a header, or text one "
        "query a line; - reads stdin. Or 'prepare' / 'collect' followed by their FILE.",
        show_default=False,
    ),
]
PresetOption = Annotated[
    str | None,
    typer.Option(
        "--preset",
        "-P",
        help="Use a preset: its personas, arbiter, model, endpoint and limits "
        "(flags still win). See 'council presets list'.",
        show_default=False,
    ),
]
PersonasOption = Annotated[
    str | None,
    typer.Option(
        "--personas",
        "-p",
        help="Comma-separated persona names. [default: judge,critic,skeptic]",
        show_default=False,
    ),
]
ArbiterOption = Annotated[
    str | None,
    typer.Option(
        "--arbiter",
        help="Persona that writes the synthesis and verdicts. [default: arbiter]",
        show_default=False,
    ),
]
ContextOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--context",
        "-c",
        help="Attach a text file to the question (repeatable; a regular file of up to "
        "200,000 bytes, 500,000 in all).",
        show_default=False,
    ),
]
EndpointOption = Annotated[
    str | None,
    typer.Option(
        "--endpoint",
        "-e",
        help="An endpoint profile from your config (see 'council endpoints list').",
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
    list[str] | None,
    typer.Option(
        "--model",
        "-m",
        help="Model name; give it several times (MODEL or MODEL@PROFILE) and each persona "
        "runs once per model. [env: COUNCIL_MODEL; default: gpt-4o-mini]",
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
    bool,
    typer.Option(
        "--dry-run",
        help="Print the resolved plan, where each setting came from, and the exact messages; "
        "send nothing.",
    ),
]

ModelPathOption = Annotated[
    Path | None,
    typer.Option(
        "--model-path",
        help="Run this .gguf model on the embedded local server (needs council[local]).",
        show_default=False,
    ),
]
NoHistoryOption = Annotated[
    bool,
    typer.Option(
        "--no-history",
        help="Do not record this run. [env: COUNCIL_HISTORY=off; config: history: false]",
    ),
]
NoStoreTextOption = Annotated[
    bool,
    typer.Option(
        "--no-store-text",
        help="Record metrics only: not the question, context or answers. "
        "[config: store_text: false]",
    ),
]

# The shared options in the order `--help` lists them: these first, then the command's
# own options, then the rest.
_HEAD = {"query": QueryArgument, "preset": PresetOption, "personas": PersonasOption}
_TAIL = {
    "arbiter": ArbiterOption,
    "context": ContextOption,
    "endpoint": EndpointOption,
    "base_url": BaseUrlOption,
    "model_path": ModelPathOption,
    "model": ModelOption,
    "api_key_env": ApiKeyEnvOption,
    "timeout": TimeoutOption,
    "retries": RetriesOption,
    "max_concurrency": MaxConcurrencyOption,
    "json_output": JsonOption,
    "jsonl_output": JsonlOption,
    "quiet": QuietOption,
    "dry_run": DryRunOption,
    "no_history": NoHistoryOption,
    "no_store_text": NoStoreTextOption,
}
assert set(_HEAD) | set(_TAIL) == set(AskFlags.names()), "every AskFlags field is an option"

F = TypeVar("F", bound=Callable[..., Any])


def _parameters(options: dict[str, Any]) -> list[inspect.Parameter]:
    return [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=getattr(AskFlags, name, None),
            annotation=annotation,
        )
        for name, annotation in options.items()
    ]


def ask_options(command: F) -> F:
    """Give `command(flags: AskFlags, ...)` every shared option, as typer sees it.

    The command declares its own options before and after a `flags` parameter; typer
    is shown the shared head, the command's own options before `flags`, the shared
    tail, then the command's options after `flags`.
    """
    return _with_options(command, _HEAD)


def batch_options(command: F) -> F:
    """`ask_options` for `council batch`: its first argument is the input FILE (`flags.query`)."""
    return _with_options(command, {**_HEAD, "query": FileArgument})


def _with_options(command: F, head: dict[str, Any]) -> F:
    """`command` with `head`, its own options before `flags`, the shared tail, then the rest."""
    own = list(inspect.signature(command, eval_str=True).parameters.values())
    at = [p.name for p in own].index("flags")
    before = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[:at]]
    after = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[at + 1 :]]
    parameters = [*_parameters(head), *before, *_parameters(_TAIL), *after]

    @wraps(command)
    def wrapper(**values: Any) -> Any:
        shared = {name: values.pop(name) for name in AskFlags.names()}
        return command(flags=AskFlags(**shared), **values)

    wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper  # type: ignore[return-value]
