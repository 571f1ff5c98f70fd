"""Commands about where calls go: `council config path|show`, `council endpoints list|check`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from council.cli.base import config_app, endpoints_app, handles_errors
from council.cli.options import EndpointOption, PresetOption
from council.errors import AuthError, EndpointError, UsageError

if TYPE_CHECKING:
    from council.config.endpoint_settings import EndpointSettings
    from council.config.files import UserConfig

__all__ = ["config_path", "config_show", "endpoints_check", "endpoints_list"]

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]
CHECK_PROMPT = "Reply with the single word: ready"


def _key_state(endpoint: EndpointSettings) -> str:
    """Whether a key will be sent; never any part of the key itself."""
    if not endpoint.api_key_env:
        return "none sent"
    state = "set" if endpoint.api_key else "NOT SET"
    return f"${endpoint.api_key_env} ({state}; the value is never shown)"


@config_app.command(name="path")
@handles_errors
def config_path() -> None:
    """Print where your config file is (it may not exist yet).

    \b
    Example:
      ${EDITOR:-vi} "$(council config path)"
    """
    from council.config.files import user_config_path

    typer.echo(str(user_config_path()))


@config_app.command(name="show")
@handles_errors
def config_show(
    preset: PresetOption = None,
    endpoint: EndpointOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Show every setting as a run would resolve it, and where each came from.

    Order, highest first: flag > preset > env > project config > user config > default.
    Keys are never shown: only whether the variable that holds one is set.

    \b
    Examples:
      council config show
      council config show --preset review
    """
    from council.cli.options import load_settings
    from council.config.files import find_project_config
    from council.config.settings import display_value

    loaded = load_settings({"endpoint": endpoint}, preset, require_key=False)
    user, settings = loaded.user, loaded.settings
    project = find_project_config()
    rows: dict[str, dict[str, Any]] = {}
    for key in sorted(settings.sources):
        value = settings.values.get(key)
        if key == "api_key_env":
            value = _key_state(settings.endpoint)
        elif key in ("personas", "arbiter"):  # inline definitions by name
            value = display_value(value).split(", ") if key == "personas" else display_value(value)
        rows[key] = {"value": value, "source": settings.sources[key]}
    files = {
        "user_config": str(user.path) if user.path else None,
        "project_config": str(project) if project else None,
    }
    if json_output:
        from council.render.json_out import dumps

        typer.echo(dumps({"files": files, "settings": rows}))
        return
    typer.echo(f"user config:    {files['user_config'] or 'none (council config path)'}")
    typer.echo(f"project config: {files['project_config'] or 'none'}")
    width = max(len(k) for k in rows)
    for key, row in rows.items():
        shown = display_value(row["value"])
        typer.echo(f"{key + ':':<{width + 1}} {shown}  ({row['source']})")


def _load_user() -> UserConfig:
    from council.config.files import load_user_config

    return load_user_config()


@endpoints_app.command(name="list")
@handles_errors
def endpoints_list(json_output: JsonFlag = False) -> None:
    """List the endpoint profiles in your config, and whether each one's key is set.

    \b
    Example:
      council endpoints list
    """
    import os

    user = _load_user()
    rows = []
    for profile in user.profiles.values():
        row = profile.to_dict()
        env = profile.api_key_env
        row["api_key_set"] = bool(env and os.environ.get(env))
        rows.append(row)
    local = _builtin_local_row(user)
    if json_output:
        from council.render.json_out import dumps

        typer.echo(dumps([*rows, *([local] if local else [])]))
        return
    if not rows:
        from council.config.files import user_config_path

        typer.echo(
            f"no endpoint profiles yet; add them under endpoints: in {user_config_path()} "
            "(see the README, 'Configuration')"
        )
    default = user.values.get("endpoint")
    for row in rows:
        env = row["api_key_env"]
        key = f"${env} {'set' if row['api_key_set'] else 'NOT SET'}" if env else "no key"
        mark = "  (default)" if row["name"] == default else ""
        model = f"  model {row['model']}" if row["model"] else ""
        typer.echo(f"{row['name']}  {row['base_url']}  {key}{model}{mark}")
    if local is not None:
        typer.echo(f"local  (built in) {local['description']}")


def _builtin_local_row(user: UserConfig) -> dict[str, Any] | None:
    """The built-in `local` endpoint, unless the user defined their own of that name."""
    from council.endpoint.local import INSTALL_HINT, bundled_model_path, local_extra_installed

    if "local" in user.profiles:
        return None
    ready = local_extra_installed() and bundled_model_path() is not None
    state = "installed" if ready else f"not installed: {INSTALL_HINT}"
    return {
        "name": "local",
        "builtin": True,
        "installed": ready,
        "description": f"the embedded SmolLM2-135M model, run here; {state}",
    }


async def _check(endpoint: EndpointSettings, model: str) -> tuple[list[str], Any, float]:
    import time

    from council.endpoint.client import CallError, EndpointClient
    from council.engine.plan import CallSpec

    class _Quiet:
        def on_start(self) -> None: ...
        def on_first_token(self, ttft: float) -> None: ...
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
            if error.kind in ("auth", "connection"):
                raise
            models = []  # some servers do not list models; the call below still tells
        started = time.monotonic()
        completion = await client.complete(call, _Quiet())
        return models, completion, time.monotonic() - started


@endpoints_app.command(name="check")
@handles_errors
def endpoints_check(
    name: Annotated[str, typer.Argument(help="Profile name (see 'council endpoints list').")],
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="Model to try. [default: the profile's, or gpt-4o-mini]"
        ),
    ] = None,
) -> None:
    """List an endpoint's models and make one tiny call: the first thing to run when calls fail.

    \b
    Example:
      council endpoints check openrouter
    """
    import asyncio

    from council.config.endpoint_settings import DEFAULT_MODEL, build_endpoint
    from council.config.settings import builtin_profile
    from council.endpoint.client import CallError
    from council.endpoint.local import serving

    user = _load_user()
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
    )
    where = endpoint.local_model_path or endpoint.base_url
    typer.echo(f"endpoint {name}: {where}, key {_key_state(endpoint)}")
    try:
        with serving(endpoint) as running:
            models, completion, took = asyncio.run(_check(running, chosen_model))
    except CallError as error:
        if error.kind == "auth":
            raise AuthError(
                error.message, f"check that ${endpoint.api_key_env} holds a valid key for it"
            ) from None
        if error.kind == "not_found":
            raise EndpointError(
                error.message, "check the model name (--model, or model: in the profile)"
            ) from None
        hint = "is the server running? check base_url in the profile"
        raise EndpointError(error.message, hint) from None
    if models:
        listed = ", ".join(models[:10]) + (
            f", … ({len(models)} in all)" if len(models) > 10 else ""
        )
        typer.echo(f"models: {listed}")
        if chosen_model not in models:
            typer.echo(f"note: {chosen_model} is not in the list, but the endpoint answered it")
    else:
        typer.echo("models: the endpoint does not list them")
    reply = " ".join(completion.text.split())[:60]
    typer.echo(
        f"ok: {chosen_model} answered {reply!r} in {took:.2f} s "
        f"(first token {completion.ttft or 0:.2f} s)"
    )
