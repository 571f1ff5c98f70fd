"""Every setting of a run, resolved through its layers, with where each value came from.

Highest first: flag > preset > env > project config (`.council/config.yaml`) >
user config (`config.yaml`) > default. A preset the user chose wins over ambient
environment variables, so everyone running `--preset review` gets the same council.

Where calls go is decided once, by the highest layer that says (a lower layer's
profile is never looked up, so `--base-url` rescues a preset naming a profile the
user lacks): a flag
(`--endpoint` or `--base-url`), a preset, `COUNCIL_BASE_URL`/`OPENAI_BASE_URL`, the
project config, the user config (`default_endpoint`), or the default (OpenAI). An
endpoint profile brings its base URL, key variable and headers, and its model and
concurrency as defaults just below the layer that chose it. A base URL chosen by a
shared file (a preset or project config) is a loopback URL, and no key is sent to it.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field, replace
from typing import Any

from council.config import local_model
from council.config.checks import check_flags
from council.config.defaults import DEFAULT_API_KEY_ENV, DEFAULTS
from council.config.endpoint_settings import EndpointSettings, build_endpoint
from council.config.files import (
    EndpointProfile,
    ProjectConfig,
    UserConfig,
    local_profile,
    missing_profile_error,
)
from council.config.personas import PersonaCatalog
from council.config.presets import Preset
from council.errors import ConfigError, UsageError

__all__ = [
    "NOTHING_CONFIGURED",
    "Layer",
    "LoadedSettings",
    "ResolvedSettings",
    "builtin_profile",
    "history_disabled_by_env",
    "layers_for",
    "load_settings",
    "profile_endpoint",
    "resolve_settings",
    "split_names",
]

# Settings resolved by "first layer that has it wins" (where calls go is decided apart).
PLAIN_SETTINGS = (
    "model",
    "timeout",
    "retries",
    "max_concurrency",
    "personas",
    "arbiter",
    "arbiter_fallback",
    "rounds",
    "speculative",
    "threshold",
    "temperature",
    "max_tokens",
)


@dataclass(frozen=True)
class Layer:
    """One source of settings: its values, and per key a description of where it came from.

    `shared` marks files someone else wrote (a preset, a project config): a base URL
    from one of them gets no key.
    """

    name: str
    values: dict[str, Any]
    where: dict[str, str] = field(default_factory=dict)
    shared: bool = False

    def source(self, key: str) -> str:
        detail = self.where.get(key)
        return f"{self.name} ({detail})" if detail else self.name


@dataclass(frozen=True)
class ResolvedSettings:
    """The winning value of every setting, its source, and the endpoint built from them."""

    values: dict[str, Any]
    sources: dict[str, str]
    endpoint: EndpointSettings

    def get(self, key: str) -> Any:
        return self.values.get(key)


def _env_layer() -> Layer:
    values: dict[str, Any] = {}
    where: dict[str, str] = {}
    for name in ("COUNCIL_BASE_URL", "OPENAI_BASE_URL"):
        if os.environ.get(name):
            values["base_url"], where["base_url"] = os.environ[name], name
            break
    if os.environ.get("COUNCIL_MODEL"):
        values["model"], where["model"] = os.environ["COUNCIL_MODEL"], "COUNCIL_MODEL"
    return Layer("env", values, where)


def layers_for(
    *,
    flags: dict[str, Any],
    flag_names: dict[str, str],
    preset: Preset | None,
    project: ProjectConfig | None,
    user: UserConfig,
) -> list[Layer]:
    """The layers of a run, highest first. `flags` holds only the flags given."""
    layers = [Layer("flag", flags, flag_names)]
    if preset is not None:
        layers.append(
            Layer(f"preset {preset.name}", dict(preset.values), preset.where, shared=True)
        )
    layers.append(_env_layer())
    if project is not None:
        layers.append(Layer("project config", project.values, project.where, shared=True))
    if user.path is not None:
        layers.append(Layer("user config", user.values, user.where))
    layers.append(Layer("default", DEFAULTS))
    return layers


def _unknown_profile(name: str, user: UserConfig, source: str) -> UsageError:
    close = difflib.get_close_matches(name, list(user.profiles), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    where = user.path or "your config file (council config path)"
    return UsageError(
        f"no endpoint profile {name!r} ({source})",
        f"{hint}define it under endpoints: in {where}; 'council endpoints list' shows yours",
    )


NOTHING_CONFIGURED = "no endpoint is configured and $OPENAI_API_KEY is not set"


def _nothing_configured(flags: Layer, user: UserConfig) -> bool:
    """No flag, preset, env or config file says where calls go or which key to use,
    and the default key variable is empty."""
    if "api_key_env" in flags.values or "api_key_env" in user.values:
        return False
    return not os.environ.get(DEFAULT_API_KEY_ENV)


def builtin_profile(name: str) -> EndpointProfile | None:
    """`local`, the embedded model, unless the user defined a profile of that name."""
    if name != local_model.LOCAL_ENDPOINT:
        return None
    bundled = local_model.bundled_model_path()
    return local_profile(model_path=str(bundled) if bundled else "")


def _fallback_to_local(require_key: bool) -> Layer:
    """With nothing configured: the embedded model if installed, else say how to configure."""
    # The probes are looked up on their module at call time, so tests can stand in for them.
    if local_model.local_extra_installed() and local_model.bundled_model_path() is not None:
        return Layer(
            "default", {"endpoint": local_model.LOCAL_ENDPOINT}, {"endpoint": NOTHING_CONFIGURED}
        )
    if require_key:
        raise ConfigError(
            NOTHING_CONFIGURED,
            "export OPENAI_API_KEY=<your key>, or pass --base-url URL or --endpoint NAME "
            f"(see 'council endpoints list'), or {local_model.INSTALL_HINT} for a small model "
            "that runs here",
        )
    return Layer("default", DEFAULTS)


def _key_variable(
    flags: Layer,
    chooser: Layer,
    profile: EndpointProfile | None,
    user: UserConfig,
    sources: dict[str, str],
) -> tuple[str | None, str]:
    """Which environment variable's key is sent (None: no key), and why."""
    if "api_key_env" in flags.values:
        return flags.values["api_key_env"], flags.source("api_key_env")
    if profile is not None:
        return profile.api_key_env, sources["base_url"]
    if "api_key_env" in chooser.values and not chooser.shared:  # e.g. a resumed run's own
        return chooser.values["api_key_env"], chooser.source("api_key_env")
    if "api_key_name" in chooser.values and not chooser.shared:
        # A resumed run that sent a stored key and read no variable: the same again.
        return None, f"stored key {chooser.values['api_key_name']} ({chooser.name})"
    if chooser.shared:
        # A shared file may point at this machine only, and its URL gets no key.
        return None, f"none sent: the URL comes from a shared file ({chooser.name})"
    if "api_key_env" in user.values:
        return user.values["api_key_env"], f"user config ({user.where['api_key_env']})"
    return DEFAULT_API_KEY_ENV, "default"


def _stored_key_name(profile: EndpointProfile | None, flags: Layer, chooser: Layer) -> str | None:
    """The stored key a run's profile names (or a resumed run's recorded one: its
    endpoint is a URL then); --api-key-env chooses the variable alone."""
    if "api_key_env" in flags.values:
        return None
    if profile is None:
        recorded = chooser.values.get("api_key_name")
        return recorded if isinstance(recorded, str) and not chooser.shared else None
    return profile.api_key


def resolve_settings(
    layers: list[Layer], user: UserConfig, *, require_key: bool = True
) -> ResolvedSettings:
    """Resolve every setting from `layers` (highest first) and build the endpoint."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    profile: EndpointProfile | None = None
    chooser = next(layer for layer in layers if {"endpoint", "base_url"} & set(layer.values))
    if chooser.name == "default" and _nothing_configured(layers[0], user):
        chooser = _fallback_to_local(require_key)
        layers = [*layers[:-1], chooser, layers[-1]]
    if "endpoint" in chooser.values and "base_url" in chooser.values:
        raise UsageError(
            f"both an endpoint and a base URL are given ({chooser.source('endpoint')})",
            "use --endpoint NAME or --base-url URL, not both",
        )
    if "endpoint" in chooser.values:
        name = chooser.values["endpoint"]
        profile = user.profiles.get(name) or builtin_profile(name)
        if profile is None and chooser.shared:
            # A preset or project config naming a profile this user lacks: their setup.
            raise missing_profile_error(name, user, chooser.source("endpoint"))
        if profile is None:
            raise _unknown_profile(name, user, chooser.source("endpoint"))
        flagged_path = layers[0].values.get("model_path")
        if flagged_path and not profile.is_local:
            raise UsageError(
                f"--model-path needs a local endpoint; {name!r} calls {profile.base_url}",
                "drop --endpoint (or use a profile with model_path)",
            )
        if flagged_path:
            profile = replace(profile, model_path=flagged_path)
        values["endpoint"], sources["endpoint"] = name, chooser.source("endpoint")
        values["base_url"] = profile.base_url
        sources["base_url"] = f"endpoint {name} ({profile.where})"
        # The profile's defaults rank just below the layer that chose it.
        offered = {
            "model": profile.model,
            "max_concurrency": profile.max_concurrency,
            "max_tokens": profile.max_tokens,
        }
        defaults = {key: value for key, value in offered.items() if value is not None}
        index = layers.index(chooser) + 1
        profile_layer = Layer(f"endpoint {name}", defaults, {k: profile.where for k in defaults})
        layers = [*layers[:index], profile_layer, *layers[index:]]
    else:
        values["base_url"] = chooser.values["base_url"]
        sources["base_url"] = chooser.source("base_url")
    api_key_env, sources["api_key_env"] = _key_variable(layers[0], chooser, profile, user, sources)
    for key in PLAIN_SETTINGS:
        for layer in layers:
            if key in layer.values:
                values[key], sources[key] = layer.values[key], layer.source(key)
                break
    endpoint = build_endpoint(
        base_url=str(values["base_url"]),
        model=str(values["model"]),
        api_key_env=api_key_env,
        timeout=values.get("timeout"),
        retries=values.get("retries"),
        max_concurrency=values.get("max_concurrency"),
        headers=profile.headers if profile else None,
        local_model_path=profile.model_path if profile else None,
        context_window=profile.context_window if profile else None,
        price=profile.price if profile else None,
        # --api-key-env chooses the variable alone; otherwise the profile's stored key
        # is sent when its variable is empty.
        api_key_name=_stored_key_name(profile, layers[0], chooser),
        sources={k: sources[k] for k in ("base_url", "model", "api_key_env") if k in sources}
        | {k: sources.get(k, "default") for k in ("timeout", "retries", "max_concurrency")},
        require_key=require_key,
    )
    values["api_key_env"] = api_key_env
    return ResolvedSettings(values=values, sources=sources, endpoint=endpoint)


def split_names(value: str, flag: str) -> list[str]:
    """`judge, critic` -> ["judge", "critic"]; UsageError naming `flag` when nothing is left."""
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise UsageError(
            f"{flag} is empty", f"give names separated by commas, e.g. {flag} judge,critic"
        )
    return names


def history_disabled_by_env() -> bool:
    """COUNCIL_HISTORY=off (or 0, false, no) turns recording off for every run."""
    return os.environ.get("COUNCIL_HISTORY", "").strip().lower() in ("off", "0", "false", "no")


@dataclass
class LoadedSettings:
    """The user's config, the persona catalog, the chosen preset, and the resolved settings."""

    user: UserConfig
    catalog: PersonaCatalog
    preset: Preset | None
    settings: ResolvedSettings


def load_settings(
    flags: dict[str, Any],
    flag_names: dict[str, str],
    preset: str | None,
    *,
    require_key: bool,
    below_flags: Layer | None = None,
) -> LoadedSettings:
    """Load config files and the preset, and resolve every setting through its layers.

    `flags` holds the settings given as flags (by setting name), `flag_names` the flag
    each was given as; `below_flags` is an extra layer ranked just under them (a
    resumed run's own settings).
    """
    from council.config.files import load_project_config, load_user_config
    from council.config.personas import PersonaCatalog
    from council.config.presets import PresetCatalog

    check_flags(flags, flag_names)
    user = load_user_config()
    project = load_project_config(user)
    catalog = PersonaCatalog.discover()
    chosen = PresetCatalog.discover().load(preset, personas=catalog, user=user) if preset else None
    layers = layers_for(
        flags=flags, flag_names=flag_names, preset=chosen, project=project, user=user
    )
    if below_flags is not None:
        layers.insert(1, below_flags)
    settings = resolve_settings(layers, user, require_key=require_key)
    return LoadedSettings(user=user, catalog=catalog, preset=chosen, settings=settings)


def profile_endpoint(
    name: str, user: UserConfig, run: EndpointSettings, *, source: str, require_key: bool = True
) -> EndpointSettings:
    """The endpoint of profile `name` for a persona that names it (`endpoint:`, `name@profile`).

    Where calls go, the key and the default model come from the profile (the user's
    own config: a shared file only names it); the timeout and retries are the run's.
    UsageError names `source` for a profile that does not exist.
    """
    profile = user.profiles.get(name) or builtin_profile(name)
    if profile is None:
        raise _unknown_profile(name, user, source)
    return build_endpoint(
        base_url=profile.base_url,
        model=profile.model or run.model,
        api_key_env=profile.api_key_env,
        timeout=run.timeout,
        retries=run.retries,
        max_concurrency=profile.max_concurrency,
        headers=profile.headers,
        local_model_path=profile.model_path,
        price=profile.price,
        sources={"base_url": f"endpoint {name} ({profile.where})"},
        require_key=require_key,
        api_key_name=profile.api_key,
    )
