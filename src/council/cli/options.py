"""Options shared by the commands that ask models, and resolving them into one request.

Flags default to None ("not given"), so that a preset or a config file can supply
the value and `--dry-run` can say which one did.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from council.cli.base import split_names
from council.errors import UsageError

if TYPE_CHECKING:
    from council.app.inputs import Attachment
    from council.app.run import RecordOptions
    from council.config.files import UserConfig
    from council.config.personas import Persona, PersonaCatalog
    from council.config.presets import Preset
    from council.config.settings import Layer, ResolvedSettings
    from council.render import OutputMode
    from council.store.resume import ResumedCouncil

__all__ = ["AskRequest", "LoadedSettings", "load_settings", "resolve_ask", "setting_flags"]

QueryArgument = Annotated[
    str | None,
    typer.Argument(help="The question. Use - to read it from stdin.", show_default=False),
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
        help="Attach a text file to the question (repeatable).",
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

# Flags that map to a setting: parameter name -> (setting, flag as typed).
SETTING_FLAGS = {
    "personas": ("personas", "--personas"),
    "arbiter": ("arbiter", "--arbiter"),
    "endpoint": ("endpoint", "--endpoint"),
    "base_url": ("base_url", "--base-url"),
    "model": ("model", "--model"),
    "api_key_env": ("api_key_env", "--api-key-env"),
    "timeout": ("timeout", "--timeout"),
    "retries": ("retries", "--retries"),
    "max_concurrency": ("max_concurrency", "--max-concurrency"),
    "rounds": ("rounds", "--rounds"),
    "speculative": ("speculative", "--speculative"),
    "threshold": ("threshold", "--threshold"),
    "model_path": ("model_path", "--model-path"),
}


def setting_flags(values: dict[str, Any]) -> dict[str, Any]:
    """A command's setting flags, picked from its `locals()` by parameter name.

    One list (SETTING_FLAGS) says which flags are settings, so every command that
    asks models resolves them the same way.
    """
    return {name: values[name] for name in SETTING_FLAGS if name in values}


@dataclass
class AskRequest:
    """Everything a model-asking command resolved from its flags, preset and config."""

    question: str
    attachments: list[Attachment]
    catalog: PersonaCatalog
    personas: list[Persona]
    arbiter: Persona
    settings: ResolvedSettings
    mode: OutputMode
    user: UserConfig
    preset: str | None = None

    def record_options(self, *, no_history: bool, no_store_text: bool) -> RecordOptions | None:
        """How to record the run: None when the flag, COUNCIL_HISTORY or the config says not."""
        from council.app.run import RecordOptions
        from council.store.db import history_disabled_by_env

        if no_history or history_disabled_by_env() or self.user.values.get("history") is False:
            return None
        store_text = not no_store_text and self.user.values.get("store_text") is not False
        return RecordOptions(store_text=store_text, preset=self.preset)


def _personas_from(
    settings: ResolvedSettings, preset: Any, catalog: PersonaCatalog
) -> list[Persona]:
    value = settings.get("personas")
    if settings.sources["personas"].startswith("preset") and preset.personas is not None:
        chosen = list(preset.personas)
    else:
        names = split_names(value, "--personas") if isinstance(value, str) else list(value)
        chosen = catalog.resolve(names)
    return [_with_defaults(p, settings) for p in chosen]


def _with_defaults(persona: Persona, settings: ResolvedSettings) -> Persona:
    """A persona with the run's temperature/max_tokens where it sets none of its own."""
    from dataclasses import replace

    temperature = settings.get("temperature")
    max_tokens = settings.get("max_tokens")
    return replace(
        persona,
        temperature=persona.temperature if persona.temperature is not None else temperature,
        max_tokens=persona.max_tokens if persona.max_tokens is not None else max_tokens,
    )


@dataclass
class LoadedSettings:
    """The user's config, the persona catalog, the chosen preset, and the resolved settings."""

    user: UserConfig
    catalog: PersonaCatalog
    preset: Preset | None
    settings: ResolvedSettings


def load_settings(
    values: dict[str, Any],
    preset: str | None,
    *,
    require_key: bool,
    below_flags: Layer | None = None,
) -> LoadedSettings:
    """Load config files and the preset, and resolve every setting through its layers.

    `values` are setting flags by parameter name (None: not given); `below_flags` is
    an extra layer ranked just under them (a resumed run's own settings).
    """
    from council.config.files import load_project_config, load_user_config
    from council.config.personas import PersonaCatalog
    from council.config.presets import PresetCatalog
    from council.config.settings import layers_for, resolve_settings

    user = load_user_config()
    project = load_project_config(user)
    catalog = PersonaCatalog.discover()
    chosen = PresetCatalog.discover().load(preset, personas=catalog, user=user) if preset else None
    flags: dict[str, Any] = {}
    flag_names: dict[str, str] = {}
    for parameter, value in values.items():
        if value is None:
            continue
        setting, flag = SETTING_FLAGS[parameter]
        flags[setting] = split_names(value, flag) if setting == "personas" else value
        flag_names[setting] = flag
    layers = layers_for(
        flags=flags, flag_names=flag_names, preset=chosen, project=project, user=user
    )
    if below_flags is not None:
        layers.insert(1, below_flags)
    settings = resolve_settings(layers, user, require_key=require_key)
    return LoadedSettings(user=user, catalog=catalog, preset=chosen, settings=settings)


def resolve_ask(
    values: dict[str, Any],
    *,
    query: str | None,
    context: list[Path] | None,
    preset: str | None,
    json_output: bool,
    jsonl_output: bool,
    dry_run: bool,
    resumed: ResumedCouncil | None = None,
) -> AskRequest:
    """Read the question and context, load config and preset, and resolve every setting.

    `values` are the command's setting flags by parameter name (None: not given).
    With `resumed`, the council (question, personas, arbiter, rounds...) is the
    recorded one, and the endpoint it used ranks just below the flags.
    """
    from council.app.inputs import read_context_files, read_query
    from council.config.settings import NOTHING_CONFIGURED, Layer
    from council.render import choose_mode

    if json_output and jsonl_output:
        raise UsageError("--json and --jsonl are exclusive", "pick one")
    if values.get("endpoint") is not None and values.get("base_url") is not None:
        raise UsageError("--endpoint and --base-url are exclusive", "give one of them")
    if values.get("model_path") is not None:
        if values.get("base_url") is not None:
            raise UsageError(
                "--model-path runs a model here; it does not go with --base-url",
                "drop one of them",
            )
        endpoint = values.get("endpoint") or "local"
        values = {**values, "model_path": str(values["model_path"]), "endpoint": endpoint}
    question = resumed.question if resumed else read_query(query)
    attachments = [] if resumed else read_context_files(list(context or []))
    extra = None
    if resumed is not None:
        recorded = {
            k: v for k, v in {**resumed.endpoint, **resumed.settings}.items() if v is not None
        }
        extra = Layer(f"run {resumed.run_id}", recorded, {})
    loaded = load_settings(values, preset, require_key=not dry_run, below_flags=extra)
    user, catalog, chosen_preset, settings = (
        loaded.user,
        loaded.catalog,
        loaded.preset,
        loaded.settings,
    )
    if NOTHING_CONFIGURED in settings.sources.get("endpoint", ""):
        sys.stderr.write(
            f"council: {NOTHING_CONFIGURED}; using the embedded local model "
            "(SmolLM2-135M, small and rough). 'council endpoints list' shows how to set one.\n"
        )
    if resumed is not None:
        personas = [_with_defaults(p, settings) for p in resumed.personas]
        arbiter = resumed.arbiter
    else:
        personas = _personas_from(settings, chosen_preset, catalog)
        arbiter_value = settings.get("arbiter")
        from_preset = settings.sources["arbiter"].startswith("preset")
        if from_preset and chosen_preset is not None and chosen_preset.arbiter is not None:
            arbiter = chosen_preset.arbiter
        else:
            arbiter = catalog.get(arbiter_value)
    mode = choose_mode(
        json_output=json_output, jsonl_output=jsonl_output, stdout_is_tty=sys.stdout.isatty()
    )
    return AskRequest(
        question=question,
        attachments=attachments,
        catalog=catalog,
        personas=personas,
        arbiter=_with_defaults(arbiter, settings),
        settings=settings,
        mode=mode,
        user=user,
        preset=resumed.preset if resumed else preset,
    )
