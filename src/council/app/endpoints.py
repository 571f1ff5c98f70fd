"""Where calls go, as the `config` and `endpoints` commands show it, and checking an endpoint.

resolved_config(preset=None, endpoint=None)   # every setting, its value and source
endpoint_listing()                            # the profiles, and the built-in `local`
check_endpoint("openrouter", model=None, say=print)
list_models(endpoint="openrouter")           # the models an endpoint lists (`council models`)
learned_limits("http://127.0.0.1:8080/v1")    # what runs learned there, per model
reset_endpoint("openrouter")                  # forget it (a profile name or a URL)
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from council.app.flags import SETTING_FLAGS
from council.config import local_model
from council.config.checks import is_http_url
from council.config.defaults import DEFAULT_MAX_CONCURRENCY_CAP, DEFAULT_MODEL
from council.config.endpoint_settings import EndpointSettings, build_endpoint, is_loopback_url
from council.config.files import UserConfig, find_project_config, load_user_config
from council.config.settings import ResolvedSettings, builtin_profile, load_settings
from council.errors import AuthError, ConfigError, EndpointError, ErrorKind, UsageError
from council.render.display import display_value

__all__ = [
    "CHECK_PROMPT",
    "CheckReport",
    "check_endpoint",
    "describe_learned",
    "endpoint_listing",
    "key_state",
    "learned_limits",
    "list_models",
    "reset_endpoint",
    "resolved_config",
    "served_model",
]

CHECK_PROMPT = "Reply with the single word: ready"


def key_state(endpoint: EndpointSettings) -> str:
    """Whether a key will be sent; never any part of the key itself."""
    if endpoint.key_from == "stored":
        return f"stored key {endpoint.api_key_name} (the value is never shown)"
    if not endpoint.api_key_env:
        if endpoint.api_key_name:
            return f"stored key {endpoint.api_key_name} (NOT STORED: council keys set NAME)"
        return "none sent"
    state = "set" if endpoint.api_key else "NOT SET"
    stored = f"; else stored key {endpoint.api_key_name}" if endpoint.api_key_name else ""
    return f"${endpoint.api_key_env} ({state}; the value is never shown{stored})"


def resolved_config(preset: str | None, endpoint: str | None) -> dict[str, Any]:
    """The config files in play, and every setting a run would use with where it came from."""
    flags = {"endpoint": endpoint} if endpoint is not None else {}
    names = {"endpoint": "--endpoint"} if endpoint is not None else {}
    loaded = load_settings(flags, names, preset, require_key=False)
    user, settings = loaded.user, loaded.settings
    project = find_project_config()
    rows: dict[str, dict[str, Any]] = {}
    for key in sorted(settings.sources):
        value = settings.values.get(key)
        if key == "api_key_env":
            value = key_state(settings.endpoint)
        elif key in ("personas", "arbiter", "arbiter_fallback"):  # inline definitions by name
            shown = display_value(value)
            value = shown if key == "arbiter" else shown.split(", ")
        rows[key] = {"value": value, "source": settings.sources[key]}
    files = {
        "user_config": str(user.path) if user.path else None,
        "project_config": str(project) if project else None,
    }
    return {"files": files, "settings": rows}


def endpoint_listing() -> tuple[UserConfig, list[dict[str, Any]], dict[str, Any] | None]:
    """The user's config, a row per endpoint profile, and the built-in `local` (or None)."""
    user = load_user_config()
    rows = []
    for profile in user.profiles.values():
        row = profile.to_dict()
        env = profile.api_key_env
        row["api_key_set"] = bool(env and os.environ.get(env))
        row["api_key_stored"] = _stored(profile.api_key)
        row["ceiling"] = profile.max_concurrency or DEFAULT_MAX_CONCURRENCY_CAP
        row["ceiling_source"] = "profile" if profile.max_concurrency else "default"
        row["learned"] = [] if profile.is_local else learned_limits(profile.base_url)
        rows.append(row)
    return user, rows, _builtin_local_row(user)


def _stored(name: str | None) -> bool:
    from council.config.keys import key_names

    return name is not None and name in key_names()


def _builtin_local_row(user: UserConfig) -> dict[str, Any] | None:
    """The built-in `local` endpoint, unless the user defined their own of that name."""
    if "local" in user.profiles:
        return None
    # Looked up on their module at call time, so tests can stand in for the runtime.
    ready = local_model.local_extra_installed() and local_model.bundled_model_path() is not None
    state = "installed" if ready else f"not installed: {local_model.INSTALL_HINT}"
    return {
        "name": "local",
        "builtin": True,
        "installed": ready,
        "ceiling": 1,
        "ceiling_source": "built in",
        "learned": [],
        "description": f"the embedded SmolLM2-135M model, run here; {state}",
    }


@dataclass(frozen=True)
class CheckReport:
    """What `endpoints check` learned: the models listed, the reply, and how long it took."""

    model: str
    models: list[str]
    reply: str
    took: float
    ttft: float | None


async def _check(endpoint: EndpointSettings, model: str) -> tuple[list[str], Any, float]:
    from council.endpoint.client import CallError, EndpointClient, StreamResult
    from council.engine.model import CallSpec

    class _Quiet:
        def on_start(self) -> None: ...
        def on_first_token(self, ttft: float) -> None: ...
        def on_reasoning(self, text: str) -> None: ...
        def on_delta(self, text: str) -> None: ...
        def on_retry(self, attempt: int, error: CallError, wait: float) -> None: ...

    call = CallSpec(
        call_id="check",
        persona="endpoint-check",
        messages=({"role": "user", "content": CHECK_PROMPT},),
        model=model,
        max_tokens=16,
    )
    async with EndpointClient(endpoint, max_concurrency=1) as client:
        try:
            models = await client.list_models()
        except CallError as error:
            if error.kind in (ErrorKind.AUTH, ErrorKind.CONNECTION):
                raise
            models = []  # some servers do not list models; the call below still tells
        started = time.monotonic()
        try:
            completion = await client.complete(call, _Quiet())
        except CallError as error:
            if error.kind != ErrorKind.EMPTY:
                raise
            # It answered like the API, with no text: a reasoning model may well
            # think past these 16 tokens. The endpoint works; that is the check.
            completion = StreamResult("", None, None, None, None, error.retries)
        return models, completion, time.monotonic() - started


def check_endpoint(name: str, model: str | None, say: Callable[[str], None]) -> CheckReport:
    """List a profile's models and make one tiny call; `say` hears where it is going first.

    Raises UsageError for an unknown profile, AuthError for a refused key and
    EndpointError for anything else that stops the call.
    """
    from council.endpoint.client import CallError
    from council.endpoint.local import serving

    user = load_user_config()
    profile = user.profiles.get(name) or builtin_profile(name)
    if profile is None:
        known = ", ".join(sorted(user.profiles)) or "none yet"
        raise UsageError(
            f"no endpoint profile {name!r} (profiles: {known})", "see 'council endpoints list'"
        )
    chosen_model = model or profile.model or DEFAULT_MODEL
    endpoint = build_endpoint(
        base_url=profile.base_url,
        model=chosen_model,
        api_key_env=profile.api_key_env,
        timeout=30.0,
        retries=0,
        max_concurrency=1,
        headers=profile.headers,
        sources={"base_url": f"endpoint {name} ({profile.where})"},
        local_model_path=profile.model_path,
        api_key_name=profile.api_key,
    )
    where = endpoint.local_model_path or endpoint.base_url
    say(f"endpoint {name}: {where}, key {key_state(endpoint)}")
    try:
        with serving(endpoint) as running:
            models, completion, took = asyncio.run(_check(running, chosen_model))
    except CallError as error:
        raise _failure(error, endpoint) from None
    return CheckReport(chosen_model, models, completion.text, took, completion.ttft)


def _failure(error: Any, endpoint: EndpointSettings) -> AuthError | EndpointError:
    """A `CallError` from checking or listing an endpoint, as the error a person reads."""
    if error.kind == ErrorKind.AUTH:
        return AuthError(error.message, endpoint.auth_hint())
    if error.kind == ErrorKind.NOT_FOUND:
        return EndpointError(
            error.message, "check the model name (--model, or model: in the profile)"
        )
    if error.kind == ErrorKind.REDIRECT:
        return EndpointError(error.message, "if you trust the host it names, make it the base URL")
    return EndpointError(error.message, "is the server running? check its base URL")


async def _listed(endpoint: EndpointSettings) -> list[str]:
    from council.endpoint.client import EndpointClient

    async with EndpointClient(endpoint, max_concurrency=1) as client:
        return await client.list_models()


def served_model(settings: ResolvedSettings, say: Callable[[str], None]) -> ResolvedSettings:
    """The settings with a local server's own model, when nothing chose one.

    A server on this machine (llama.cpp, Ollama, vLLM) serves the models it loaded, not
    the default `gpt-4o-mini`: when an endpoint profile of one has no `model:` and no
    flag, preset or config named a model, its `/models` is asked. One model: it is
    used, and `say` hears it in one line. Several: ConfigError listing them. None,
    or no list: the settings as they were (the run's own call says what is wrong).
    """
    endpoint = settings.endpoint
    chosen = settings.sources.get("model", "default") != "default"
    profile = settings.values.get("endpoint") is not None  # a --base-url has its -m
    local = is_loopback_url(endpoint.base_url) and endpoint.local_model_path is None
    if chosen or not profile or not local:
        return settings
    from council.endpoint.client import CallError

    try:
        models = asyncio.run(_listed(endpoint))
    except CallError:
        return settings
    if not models:
        return settings
    if len(models) > 1:
        shown = ", ".join(models[:20]) + (
            f" and {len(models) - 20} more" if len(models) > 20 else ""
        )
        raise ConfigError(
            f"{endpoint.host} serves {len(models)} models and none was chosen: {shown}",
            f"pass -m NAME (e.g. -m {models[0]}), or set model: in the endpoint's profile",
        )
    (model,) = models
    say(f"council: {endpoint.host} serves one model, {model}: using it (-m NAME to choose)")
    source = f"the only model {endpoint.host} serves"
    return replace(
        settings,
        values={**settings.values, "model": model},
        sources={**settings.sources, "model": source},
        endpoint=replace(endpoint, model=model, sources={**endpoint.sources, "model": source}),
    )


def list_models(
    *,
    endpoint: str | None = None,
    base_url: str | None = None,
    api_key_env: str | None = None,
    preset: str | None = None,
) -> tuple[EndpointSettings, list[str]]:
    """The endpoint a run would use (flags > preset > env > config) and the models it lists.

    Raises UsageError for flags that do not go together, AuthError for a refused
    key, and EndpointError when the endpoint cannot be reached or does not list models.
    """
    from council.endpoint.client import CallError
    from council.endpoint.local import serving

    if endpoint is not None and base_url is not None:
        raise UsageError("--endpoint and --base-url are exclusive", "give one of them")
    values = {"endpoint": endpoint, "base_url": base_url, "api_key_env": api_key_env}
    given = {name: value for name, value in values.items() if value is not None}
    names = {name: SETTING_FLAGS[name][1] for name in given}
    resolved = load_settings(given, names, preset, require_key=True).settings.endpoint
    try:
        with serving(resolved) as running:
            models = asyncio.run(_listed(running))
    except CallError as error:
        if error.kind in (ErrorKind.AUTH, ErrorKind.CONNECTION, ErrorKind.TIMEOUT):
            raise _failure(error, resolved) from None
        raise EndpointError(
            f"{resolved.host} does not list its models ({error.message})",
            "'council endpoints check' tries a call instead",
        ) from None
    return resolved, models


def learned_limits(base_url: str) -> list[dict[str, Any]]:
    """What earlier runs learned about `base_url`, a row per model; [] when nothing was kept."""
    from council.store.db import HistoryDB
    from council.store.limits import load_limits

    path = HistoryDB.default_path()
    if not path.exists():
        return []
    try:
        with HistoryDB.open(path) as db:
            kept = load_limits(db, base_url)
    except ConfigError:
        return []  # an unusable history: `council history` says so; a listing goes on
    return [
        {
            "model": row.model,
            "capacity": row.capacity,
            "context_window": row.context_window,
            "window_source": row.window_source,
            "learned_at": row.learned_at,
            "origin": row.origin,
            "took": row.took,
            "slots": row.slots,
        }
        for row in kept
    ]


def describe_learned(row: dict[str, Any]) -> str:
    """One line for a model's learned limits: "llama3.1: 2 at a time, window 4096 (error)",
    then what it took at once and the slots it states, when known."""
    capacity = f"{row['capacity']} at a time" if row["capacity"] else "no limit learned"
    window = (
        f"window {row['context_window']} ({row['window_source'] or 'learned'})"
        if row["context_window"]
        else "window not learned"
    )
    extra = [f"took {row['took']} at once"] if row.get("took") else []
    extra += [f"states {row['slots']} slots"] if row.get("slots") else []
    return ", ".join([f"{row['model']}: {capacity}", window, *extra])


def reset_endpoint(name_or_url: str) -> tuple[str, int]:
    """Forget what was learned about a profile's endpoint or a base URL: (the URL, rows gone).

    Raises UsageError for a name that is neither a profile nor an http(s) URL.
    """
    from council.store.db import HistoryDB
    from council.store.limits import forget_limits

    user = load_user_config()
    profile = user.profiles.get(name_or_url)
    if profile is not None:
        url = profile.base_url
    elif is_http_url(name_or_url):
        url = name_or_url
    else:
        known = ", ".join(sorted(user.profiles)) or "none yet"
        raise UsageError(
            f"no endpoint profile {name_or_url!r} (profiles: {known}), and it is not a URL",
            "give a profile name or a base URL, e.g. http://127.0.0.1:8080/v1",
        )
    path = HistoryDB.default_path()
    if not path.exists():
        return url, 0
    with HistoryDB.open(path) as db:
        return url, forget_limits(db, url)
