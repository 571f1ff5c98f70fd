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
from council.cli.command import pairs
from council.cli.complete import complete_personas, complete_presets, complete_profiles
from council.config.defaults import (
    DEFAULT_API_KEY_ENV,
    DEFAULT_ARBITER,
    DEFAULT_BASE_URL,
    DEFAULT_MAX_CONCURRENCY_CAP,
    DEFAULT_MODEL,
    DEFAULT_PERSONAS,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
)

__all__ = [
    "ApiKeyEnvOption",
    "BaseUrlOption",
    "EndpointOption",
    "PresetOption",
    "ServedModelOption",
    "ask_options",
    "batch_options",
    "resume_options",
]

# Where `--help` lists each group of options (rich panels); the rest under "Options".
ENDPOINT_PANEL = "Endpoint"
LIMITS_PANEL = "Limits"
OUTPUT_PANEL = "Output"
HISTORY_PANEL = "History"

QueryArgument = Annotated[
    str | None,
    typer.Argument(
        help="The question (up to 200,000 bytes); - reads it from stdin. Quote it.",
        metavar="QUESTION",
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
        help="Use a preset's personas, model, endpoint and limits (flags win).",
        autocompletion=complete_presets,
        metavar="NAME",
        show_default=False,
    ),
]
PersonasOption = Annotated[
    str | None,
    typer.Option(
        "--personas",
        "-p",
        help="Comma-separated persona names.",
        autocompletion=complete_personas,
        metavar="NAMES",
        show_default=",".join(DEFAULT_PERSONAS),
    ),
]
ArbiterOption = Annotated[
    str | None,
    typer.Option(
        "--arbiter",
        help="Who writes the synthesis and verdicts.",
        autocompletion=complete_personas,
        metavar="NAME",
        show_default=DEFAULT_ARBITER,
    ),
]
ContextOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--context",
        "-c",
        help="Attach a text file (repeatable; 500,000 bytes in all).",
        metavar="FILE",
        show_default=False,
    ),
]
EndpointOption = Annotated[
    str | None,
    typer.Option(
        "--endpoint",
        "-e",
        help="An endpoint profile from your config ('council endpoints list').",
        autocompletion=complete_profiles,
        metavar="PROFILE",
        show_default=False,
        rich_help_panel=ENDPOINT_PANEL,
    ),
]
BaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        help="OpenAI-compatible URL (or COUNCIL_BASE_URL, OPENAI_BASE_URL).",
        metavar="URL",
        show_default=DEFAULT_BASE_URL,
        rich_help_panel=ENDPOINT_PANEL,
    ),
]
# One model for every council a server runs (`serve`, `mcp`): no council of models there.
ServedModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Model the councils ask (or COUNCIL_MODEL).",
        metavar="MODEL",
        show_default=False,
        rich_help_panel=ENDPOINT_PANEL,
    ),
]
ModelOption = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        "-m",
        help="Model (or COUNCIL_MODEL); repeat, MODEL@PROFILE too, to ask each.",
        metavar="MODEL",
        show_default=DEFAULT_MODEL,
        rich_help_panel=ENDPOINT_PANEL,
    ),
]
ApiKeyEnvOption = Annotated[
    str | None,
    typer.Option(
        "--api-key-env",
        help="The env var holding the key.",
        metavar="VAR",
        show_default=DEFAULT_API_KEY_ENV,
        rich_help_panel=ENDPOINT_PANEL,
    ),
]
TimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        help="Deadline per call, retries included.",
        metavar="SECONDS",
        show_default=f"{DEFAULT_TIMEOUT:g}",
        rich_help_panel=LIMITS_PANEL,
    ),
]
RetriesOption = Annotated[
    int | None,
    typer.Option(
        "--retries",
        help="Retries on 429, 5xx, timeouts, connection errors.",
        show_default=str(DEFAULT_RETRIES),
        rich_help_panel=LIMITS_PANEL,
    ),
]
MaxConcurrencyOption = Annotated[
    int | None,
    typer.Option(
        "--max-concurrency",
        help="Most calls at once per endpoint.",
        show_default=f"{DEFAULT_MAX_CONCURRENCY_CAP}, or the profile's",
        rich_help_panel=LIMITS_PANEL,
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option(
        "--json", help="Print one JSON document at the end.", rich_help_panel=OUTPUT_PANEL
    ),
]
JsonlOption = Annotated[
    bool,
    typer.Option("--jsonl", help="Stream events as JSON lines.", rich_help_panel=OUTPUT_PANEL),
]
QuietOption = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        help="The answer only: no live view, metrics or footer.",
        rich_help_panel=OUTPUT_PANEL,
    ),
]
DryRunOption = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Print the plan, its sources and messages; send nothing.",
        rich_help_panel=OUTPUT_PANEL,
    ),
]

ModelPathOption = Annotated[
    Path | None,
    typer.Option(
        "--model-path",
        help="Run this .gguf model on the embedded local server (needs council-llm[local]).",
        metavar="FILE",
        show_default=False,
        rich_help_panel=ENDPOINT_PANEL,
    ),
]
NoHistoryOption = Annotated[
    bool,
    typer.Option(
        "--no-history",
        help="Do not record this run (or COUNCIL_HISTORY=off).",
        rich_help_panel=HISTORY_PANEL,
    ),
]
NoStoreTextOption = Annotated[
    bool,
    typer.Option(
        "--no-store-text",
        help="Record metrics only, not the texts.",
        rich_help_panel=HISTORY_PANEL,
    ),
]
VerboseOption = Annotated[
    bool,
    typer.Option(
        "--verbose",
        "-v",
        help="Show every call in a terminal too (Markdown and --json always do).",
        rich_help_panel=OUTPUT_PANEL,
    ),
]
NoStdinOption = Annotated[
    bool,
    typer.Option(
        "--no-stdin",
        help="Ignore piped stdin (else it is the question, or context when one is given).",
    ),
]
SystemOption = Annotated[
    str | None,
    typer.Option(
        "--system",
        help="Appended to every persona's system prompt (not the arbiter's).",
        metavar="TEXT",
        show_default=False,
    ),
]
# Typer takes no KEY VALUE pairs: AskCommand (cli/command.py) reads each as one value,
# and `pairs` hands them over as (key, value).
ModelOptionOption = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        "-o",
        help="A model option for every call, e.g. -o temperature 0.2 (repeatable).",
        metavar="KEY VALUE",
        show_default=False,
        callback=pairs,
    ),
]
VOTE_PANEL = "Voting and ranking"
VoteOption = Annotated[
    bool,
    typer.Option(
        "--vote",
        help="Each persona casts a ballot; the majority answers.",
        rich_help_panel=VOTE_PANEL,
    ),
]
ChoicesOption = Annotated[
    str | None,
    typer.Option(
        "--choices",
        help="--vote's choices, e.g. A,B,C,D or yes,no.",
        metavar="LIST",
        show_default=False,
        rich_help_panel=VOTE_PANEL,
    ),
]
RankOption = Annotated[
    bool,
    typer.Option(
        "--rank",
        help="Personas rank each other's answers, anonymously.",
        rich_help_panel=VOTE_PANEL,
    ),
]
PositionChecksOption = Annotated[
    int | None,
    typer.Option(
        "--position-checks",
        help="--rank: re-ask N reversed (default 1).",
        metavar="N",
        show_default=False,
        rich_help_panel=VOTE_PANEL,
    ),
]
StopRuleOption = Annotated[
    str | None,
    typer.Option(
        "--stop-rule",
        help="When --vote stops: posterior[:P] (default), window[:N], overtake, none.",
        metavar="RULE",
        show_default=False,
        rich_help_panel=VOTE_PANEL,
    ),
]
SelfCheckRateOption = Annotated[
    float | None,
    typer.Option(
        "--self-check-rate",
        help="--rank: share shown own answer (default 0).",
        metavar="SHARE",
        show_default=False,
        rich_help_panel=VOTE_PANEL,
    ),
]
WeightingOption = Annotated[
    str | None,
    typer.Option(
        "--weighting",
        help="A ballot counts 1 (equal) or its confidence.",
        metavar="HOW",
        show_default=False,
        rich_help_panel=VOTE_PANEL,
    ),
]

BudgetUsdOption = Annotated[
    float | None,
    typer.Option(
        "--budget-usd",
        help="Spend at most this many US dollars (exit 3 when it stops the council).",
        metavar="USD",
        show_default=False,
        rich_help_panel=LIMITS_PANEL,
    ),
]
MaxTokensTotalOption = Annotated[
    int | None,
    typer.Option(
        "--max-tokens-total",
        help="Spend at most this many tokens, prompts and answers.",
        metavar="TOKENS",
        show_default=False,
        rich_help_panel=LIMITS_PANEL,
    ),
]

# A follow-up (issue 27): like `llm -c`, a flag for the latest run, and `--continue-from
# ID` (as `llm --cid`) for another; typer has no option whose value may be left out.
# Long forms only: -c is --context.
ContinueOption = Annotated[
    bool,
    typer.Option(
        "--continue",
        help="Ask a follow-up of the last council: its question and answer go first.",
        rich_help_panel=HISTORY_PANEL,
    ),
]
ContinueFromOption = Annotated[
    str | None,
    typer.Option(
        "--continue-from",
        help="Ask a follow-up of this run ('council history' has its id).",
        metavar="ID",
        show_default=False,
        rich_help_panel=HISTORY_PANEL,
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
    "verbose": VerboseOption,
    "no_stdin": NoStdinOption,
    "system": SystemOption,
    "option": ModelOptionOption,
    "vote": VoteOption,
    "choices": ChoicesOption,
    "rank": RankOption,
    "position_checks": PositionChecksOption,
    "self_check_rate": SelfCheckRateOption,
    "budget_usd": BudgetUsdOption,
    "max_tokens_total": MaxTokensTotalOption,
}
# `council oracle`'s own voting options (cli/ask.py): not shared, so that batch's and
# deliberate's --help stay short and offer nothing that would mean nothing there.
ORACLE_FLAGS = ("stop_rule", "weighting")
assert set(_HEAD) | set(_TAIL) | set(ORACLE_FLAGS) == set(AskFlags.names()), (
    "every AskFlags field is an option"
)

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
    return _taking_flags(command, parameters, AskFlags.names())


# What `council resume` takes: where the calls go and how the output looks. The council
# itself (question, personas, rounds) is the recorded one.
RESUME_FLAGS = (
    "endpoint",
    "base_url",
    "api_key_env",
    "timeout",
    "retries",
    "max_concurrency",
    "json_output",
    "jsonl_output",
    "quiet",
    "dry_run",
    "no_history",
    "no_store_text",
    "budget_usd",
    "max_tokens_total",
)


def resume_options(command: F) -> F:
    """Give `command(..., flags: AskFlags)` the shared options a resumed council may take."""
    own = inspect.signature(command, eval_str=True).parameters.values()
    head = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own if p.name != "flags"]
    parameters = [*head, *_parameters({name: _TAIL[name] for name in RESUME_FLAGS})]
    return _taking_flags(command, parameters, RESUME_FLAGS)


def _taking_flags(command: F, parameters: list[inspect.Parameter], shared: tuple[str, ...]) -> F:
    """`command` as typer sees it (`parameters`), its `shared` ones handed over as `flags`."""

    @wraps(command)
    def wrapper(**values: Any) -> Any:
        given = {name: values.pop(name) for name in shared if name in values}
        return command(flags=AskFlags(**given), **values)

    wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper  # type: ignore[return-value]
