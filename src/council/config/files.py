"""The user's `config.yaml` (endpoint profiles, personal defaults) and a project's
`.council/config.yaml` (a team's shared defaults): finding, loading, validating.

The user's file is theirs: it defines endpoint profiles, each naming the
environment variable that holds its key (never the key itself):

    endpoints:
      - name: openrouter
        base_url: https://openrouter.ai/api/v1
        api_key_env: OPENROUTER_API_KEY
        api_key: openrouter              # optional: a key stored by `council keys set`,
                                         # sent when $OPENROUTER_API_KEY is not set
        model: openai/gpt-4o-mini        # optional default model
        max_concurrency: 8               # optional
        headers: {X-Title: council}      # optional extra headers
    default_endpoint: openrouter         # optional
    model: gpt-4o-mini                   # optional defaults for any run setting
    rounds: 3
    history: true                        # record runs (false: never)
    store_text: true                     # keep questions and answers (false: metrics only)

A project's file is shared (committed), so it gets the trust rules of a preset:
it may set run defaults and name one of the user's endpoint profiles, but not
define endpoints, carry a key, or point anywhere but this machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from council.config.checks import (
    ENV_NAME,
    HISTORY_SETTINGS,
    NAMED_SETTINGS,
    PROFILE_FIELDS,
    RUN_SETTINGS,
    check_fields,
    check_settings,
    expected,
    key_problems,
)
from council.config.keys import is_key_name
from council.config.local_model import (
    LOCAL_ENDPOINT,
    LOCAL_MAX_TOKENS,
    LOCAL_MODEL_ALIAS,
    LOCAL_PLACEHOLDER_URL,
)
from council.config.paths import project_paths, user_config_dir
from council.config.trust import (
    is_secret_name,
    looks_like_secret,
    secret_problems,
    shared_endpoint_problems,
)
from council.config.yamlfile import FileProblem, Located, load_yaml_file, problems_error
from council.errors import ConfigError

__all__ = [
    "CONFIG_FILE_NAME",
    "EndpointProfile",
    "ProjectConfig",
    "UserConfig",
    "find_project_config",
    "has_profile",
    "load_project_config",
    "load_user_config",
    "local_profile",
    "missing_profile_error",
    "user_config_path",
]

CONFIG_FILE_NAME = "config.yaml"
MAX_CONFIG_BYTES = 1024 * 1024
PROFILE_KEYS = (
    "name",
    "base_url",
    "api_key_env",
    "api_key",  # a stored key's name (config/keys.py), never the key
    "model",
    "max_concurrency",
    "headers",
    "context_window",  # tokens, or {model: tokens}: fit prompts without asking the server
    "model_path",  # a GGUF file: council runs it on the embedded local server
    "price",  # USD per million tokens, {input, output} or {model: {input, output}}
)
USER_KEYS = (
    "endpoints",
    "default_endpoint",
    "api_key_env",
    *HISTORY_SETTINGS,
    *RUN_SETTINGS,
    *NAMED_SETTINGS,
)
PROJECT_KEYS = tuple(k for k in (*RUN_SETTINGS, *NAMED_SETTINGS))
# What a shared project config may not say: each user's endpoints and keys are their own.
USER_ONLY = dict.fromkeys(
    ("endpoints", "default_endpoint", "api_key_env"),
    "belongs in each user's own config (council config path), not a shared file",
)


@dataclass(frozen=True)
class EndpointProfile:
    """A named endpoint from the user's config; `api_key_env` None means no key is sent."""

    name: str
    base_url: str
    api_key_env: str | None
    model: str | None = None
    max_concurrency: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    where: str = ""  # "path:line" of its definition
    model_path: str | None = None  # run this GGUF file on the embedded local server
    max_tokens: int | None = None  # a default answer length (the built-in local profile's)
    context_window: int | dict[str, int] | None = None  # tokens, for every model or per model
    # USD per million tokens: {input, output} for every model, or {model: {input, output}}.
    price: dict[str, Any] | None = None
    # The name of a stored key (`council keys set NAME`), sent when $api_key_env is empty.
    api_key: str | None = None

    @property
    def is_local(self) -> bool:
        return self.model_path is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base_url": self.base_url,
            "api_key_env": self.api_key_env,
            "api_key": self.api_key,  # the stored key's name: its value is never shown
            "model": self.model,
            "max_concurrency": self.max_concurrency,
            "headers": sorted(self.headers),  # names only: values are nobody's business
            "context_window": self.context_window,
            "defined_at": self.where,
            "price": self.price,
        }


@dataclass(frozen=True)
class SettingsFile:
    """Run settings read from a config file, each with the `path:line` it came from."""

    path: Path | None
    values: dict[str, Any] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UserConfig(SettingsFile):
    profiles: dict[str, EndpointProfile] = field(default_factory=dict)


@dataclass(frozen=True)
class ProjectConfig(SettingsFile):
    pass


def user_config_path() -> Path:
    return user_config_dir() / CONFIG_FILE_NAME


def has_profile(user: UserConfig, name: str) -> bool:
    """The user's config defines profile `name`, or it is the built-in `local`."""
    return name in user.profiles or name == LOCAL_ENDPOINT


def missing_profile_error(
    name: str, user: UserConfig, owner: str, *, overridable: bool = True
) -> ConfigError:
    """`owner` (a shared file) names profile `name`, which the user's config lacks.

    That is the user's setup, not a broken file: say where to add the profile, and
    (where the run's endpoint is meant: `overridable`) that a flag overrides it.
    """
    override = " or override with --endpoint NAME / --base-url URL" if overridable else ""
    return ConfigError(
        f"{owner} uses endpoint profile {name!r}, which is not in your config "
        f"({user.path or user_config_path()})",
        f"add it under endpoints: (see 'council endpoints list'){override}",
    )


def _at(path: Path, data: Located, key: str) -> str:
    position = data.key_position(key)
    return f"{path}:{position.line}"


def _profile(item: Any, path: Path, problems: list[FileProblem]) -> EndpointProfile | None:
    if not isinstance(item, Located):
        problems.append(FileProblem(path, None, "endpoints", "each profile is a mapping"))
        return None
    before = len(problems)
    problems += key_problems(item, path, PROFILE_KEYS, ignore=is_secret_name)

    def check(key: str, value: Any) -> None:
        if not PROFILE_FIELDS[key].accepts(value):
            problems.append(expected(path, item, key, PROFILE_FIELDS[key]))

    name = item.get("name")
    check("name", name)
    model_path = item.get("model_path")
    if model_path is not None:
        check("model_path", model_path)
    if model_path is not None and "base_url" in item:
        problems.append(
            FileProblem(
                path,
                item.value_position("base_url"),
                "base_url",
                "expected no base_url with model_path: council runs the model itself",
            )
        )
    elif model_path is None:
        check("base_url", item.get("base_url"))
    for key in ("api_key_env", "api_key", "model"):
        if key in item:
            check(key, item[key])
    concurrency = item.get("max_concurrency")
    if concurrency is not None:
        check("max_concurrency", concurrency)
    headers = item.get("headers", {})
    check("headers", headers)
    window = item.get("context_window")
    if window is not None:
        check("context_window", window)
    price = item.get("price")
    if price is not None:
        check("price", price)
    if len(problems) > before:
        return None
    if model_path is not None:
        return local_profile(
            name=name,
            model_path=str(Path(model_path).expanduser()),
            where=f"{path}:{item.start.line}",
            model=item.get("model"),
            max_concurrency=concurrency,
            price=_plain(price),
        )
    return EndpointProfile(
        name=name,
        base_url=str(item["base_url"]).rstrip("/"),
        api_key_env=item.get("api_key_env"),
        model=item.get("model"),
        max_concurrency=concurrency,
        headers=dict(headers),
        where=f"{path}:{item.start.line}",
        context_window=dict(window) if isinstance(window, dict) else window,
        price=_plain(price),
        api_key=item.get("api_key"),
    )


def _plain(value: Any) -> Any:
    """A checked YAML mapping as plain dicts (Located keeps positions nobody needs later)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def local_profile(
    *,
    name: str = "local",
    model_path: str,
    where: str = "built in",
    model: str | None = None,
    max_concurrency: int | None = None,
    price: dict[str, Any] | None = None,
) -> EndpointProfile:
    """A profile served by the embedded local server: no key, one call at a time by default.

    Small local servers answer one request at a time, and a 135M model rambles:
    the defaults keep a run short and its timeline honest.
    """
    return EndpointProfile(
        name=name,
        base_url=LOCAL_PLACEHOLDER_URL,
        api_key_env=None,
        model=model or LOCAL_MODEL_ALIAS,
        max_concurrency=max_concurrency or 1,
        where=where,
        model_path=model_path,
        max_tokens=LOCAL_MAX_TOKENS,
        price=price,
    )


def _settings(
    data: Located, path: Path, keys: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, str]]:
    values = {k: data[k] for k in keys if k in data}
    return values, {k: _at(path, data, k) for k in values}


def _read_mapping(path: Path, what: str) -> Located:
    data = load_yaml_file(path, what=what, max_bytes=MAX_CONFIG_BYTES)
    if data is None:
        data = Located()
    if not isinstance(data, Located):
        raise problems_error(
            [FileProblem(path, None, None, f"expected a mapping of settings in the {what}")],
            "see 'council config --help' for the format",
        )
    return data


def _named_keys_allowed(data: Located, problems: list[FileProblem]) -> list[FileProblem]:
    """The secret check without its word on a profile's `api_key: NAME`: the name of a
    stored key is no secret (a value shaped like a key is still refused)."""
    endpoints = data.get("endpoints")
    named = {
        profile.key_position("api_key")
        for profile in (endpoints if isinstance(endpoints, list) else [])
        if isinstance(profile, Located)
        and is_key_name(profile.get("api_key"))
        and not looks_like_secret(profile.get("api_key"))
    }
    return [p for p in problems if not (p.key == "api_key" and p.position in named)]


def user_config_problems(
    data: Located, path: Path
) -> tuple[dict[str, EndpointProfile], list[FileProblem]]:
    problems = _named_keys_allowed(data, secret_problems(data, path))
    problems += key_problems(data, path, USER_KEYS, ignore=is_secret_name)
    problems += check_settings(data, path)
    problems += check_fields(data, path, NAMED_SETTINGS)
    profiles: dict[str, EndpointProfile] = {}
    endpoints = data.get("endpoints", [])
    if not isinstance(endpoints, list):
        problems.append(
            FileProblem(
                path, data.value_position("endpoints"), "endpoints", "expected a list of profiles"
            )
        )
        endpoints = []
    for item in endpoints:
        profile = _profile(item, path, problems)
        if profile is None:
            continue
        if profile.name in profiles:
            problems.append(
                FileProblem(path, item.start, "name", f"profile {profile.name!r} is defined twice")
            )
        profiles[profile.name] = profile
    for key in ("default_endpoint", "endpoint"):
        name = data.get(key)
        if isinstance(name, str) and name not in profiles:
            problems.append(
                FileProblem(
                    path,
                    data.value_position(key),
                    key,
                    f"no profile {name!r} under endpoints "
                    f"(profiles: {', '.join(profiles) or 'none'})",
                )
            )
    problems += check_fields(data, path, HISTORY_SETTINGS)
    problems += check_fields(data, path, {"api_key_env": ENV_NAME})
    return profiles, problems


def load_user_config(path: Path | None = None) -> UserConfig:
    """The user's config, or an empty one when the file does not exist."""
    path = path or user_config_path()
    if not path.is_file():
        return UserConfig(path=None)
    data = _read_mapping(path, "config file")
    profiles, problems = user_config_problems(data, path)
    if problems:
        raise problems_error(problems, "fix your config file (council config path)")
    keys = (*RUN_SETTINGS, *NAMED_SETTINGS, *HISTORY_SETTINGS, "api_key_env")
    values, where = _settings(data, path, keys)
    if "default_endpoint" in data and "endpoint" not in values:
        values["endpoint"] = data["default_endpoint"]
        where["endpoint"] = _at(path, data, "default_endpoint")
    return UserConfig(path=path, values=values, where=where, profiles=profiles)


def find_project_config(cwd: Path | None = None) -> Path | None:
    """`.council/config.yaml` in the current directory or a parent, up to the repository root."""
    found = [p for p in project_paths(CONFIG_FILE_NAME, cwd) if p.is_file()]
    return found[0] if found else None


def project_config_problems(data: Located, path: Path, user: UserConfig) -> list[FileProblem]:
    problems = secret_problems(data, path)
    problems += key_problems(data, path, PROJECT_KEYS, ignore=is_secret_name, refused=USER_ONLY)
    problems += check_settings(data, path)
    problems += check_fields(data, path, NAMED_SETTINGS)
    problems += shared_endpoint_problems(data, path)
    return problems


def load_project_config(user: UserConfig, cwd: Path | None = None) -> ProjectConfig | None:
    path = find_project_config(cwd)
    if path is None:
        return None
    data = _read_mapping(path, "project config")
    problems = project_config_problems(data, path, user)
    if problems:
        raise problems_error(problems, "fix the project's .council/config.yaml")
    values, where = _settings(data, path, PROJECT_KEYS)
    return ProjectConfig(path=path, values=values, where=where)
