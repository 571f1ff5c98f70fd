"""Commands about where calls go: `council config path|show`, `council endpoints ...`."""

from __future__ import annotations

from typing import Annotated

import typer

from council.cli.base import app, config_app, endpoints_app, handles_errors, say
from council.cli.options import ApiKeyEnvOption, BaseUrlOption, EndpointOption, PresetOption

__all__ = [
    "config_path",
    "config_show",
    "endpoints_check",
    "endpoints_list",
    "endpoints_reset",
    "models_list",
]

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@config_app.command(name="path")
@handles_errors
def config_path() -> None:
    """Print where your config file is (it may not exist yet).

    \b
    Example:
      ${EDITOR:-vi} "$(council config path)"
    """
    from council.config.files import user_config_path

    say(str(user_config_path()))


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
    from council.app.endpoints import resolved_config
    from council.render.display import display_value

    resolved = resolved_config(preset, endpoint)
    files, rows = resolved["files"], resolved["settings"]
    if json_output:
        from council.render.json_out import dumps

        typer.echo(dumps(resolved))
        return
    say(f"user config:    {files['user_config'] or 'none (council config path)'}")
    say(f"project config: {files['project_config'] or 'none'}")
    width = max(len(k) for k in rows)
    for key, row in rows.items():
        shown = display_value(row["value"])
        say(f"{key + ':':<{width + 1}} {shown}  ({row['source']})")


@endpoints_app.command(name="list")
@handles_errors
def endpoints_list(json_output: JsonFlag = False) -> None:
    """List the endpoint profiles in your config, and whether each one's key is set.

    \b
    Example:
      council endpoints list
    """
    from council.app.endpoints import describe_learned, endpoint_listing

    user, rows, local = endpoint_listing()
    if json_output:
        from council.render.json_out import dumps

        typer.echo(dumps([*rows, *([local] if local else [])]))
        return
    if not rows:
        from council.config.files import user_config_path

        say(
            f"no endpoint profiles yet; add them under endpoints: in {user_config_path()} "
            "(see the README, 'Configuration')"
        )
    default = user.values.get("endpoint")
    for row in rows:
        env, stored = row["api_key_env"], row["api_key"]
        key = f"${env} {'set' if row['api_key_set'] else 'NOT SET'}" if env else "no key"
        if stored and not row["api_key_set"]:  # a profile's stored key, when $env is empty
            state = "" if row["api_key_stored"] else " NOT STORED"
            key = f"{key + ', ' if env else ''}stored key {stored}{state}"
        mark = "  (default)" if row["name"] == default else ""
        model = f"  model {row['model']}" if row["model"] else ""
        say(f"{row['name']}  {row['base_url']}  {key}{model}{mark}")
        say(f"  ceiling {row['ceiling']} at a time ({row['ceiling_source']})")
        for kept in row["learned"]:
            say(f"  learned {describe_learned(kept)}")
    if local is not None:
        say(f"local  (built in) {local['description']}")


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
    from council.app.endpoints import check_endpoint, describe_learned, endpoint_listing

    report = check_endpoint(name, model, say=say)
    models, chosen_model = report.models, report.model
    if models:
        listed = ", ".join(models[:10]) + (
            f", … ({len(models)} in all)" if len(models) > 10 else ""
        )
        say(f"models: {listed}")
        if chosen_model not in models:
            say(f"note: {chosen_model} is not in the list, but the endpoint answered it")
    else:
        say("models: the endpoint does not list them")
    reply = " ".join(report.reply.split())[:60]
    say(
        f"ok: {chosen_model} answered {reply!r} in {report.took:.2f} s "
        f"(first token {report.ttft or 0:.2f} s)"
    )
    _, rows, local = endpoint_listing()
    for row in [*rows, *([local] if local else [])]:
        if row["name"] != name:
            continue
        say(f"ceiling: {row['ceiling']} at a time ({row['ceiling_source']})")
        for kept in row["learned"]:
            say(f"learned: {describe_learned(kept)}")
        if not row["learned"]:
            say("learned: nothing yet (runs learn the limit and window as they go)")


@endpoints_app.command(name="reset")
@handles_errors
def endpoints_reset(
    name: Annotated[str, typer.Argument(help="Profile name or base URL.")],
) -> None:
    """Forget the concurrency and context window runs learned about an endpoint.

    \b
    Example:
      council endpoints reset ollama
    """
    from council.app.endpoints import reset_endpoint

    url, count = reset_endpoint(name)
    what = f"{count} model{'s' if count != 1 else ''}" if count else "nothing was kept"
    say(f"forgot what was learned about {url} ({what})")


@app.command(name="models")
@handles_errors
def models_list(
    endpoint: EndpointOption = None,
    base_url: BaseUrlOption = None,
    api_key_env: ApiKeyEnvOption = None,
    preset: PresetOption = None,
    json_output: JsonFlag = False,
) -> None:
    """List the models the endpoint offers (GET /models), one a line: the names -m takes.

    The endpoint is the one a run would use: --endpoint or --base-url, else the
    preset's, the environment's or your config's.

    \b
    Examples:
      council models
      council models --endpoint openrouter --json
    """
    from council.app.endpoints import list_models

    resolved, models = list_models(
        endpoint=endpoint, base_url=base_url, api_key_env=api_key_env, preset=preset
    )
    if json_output:
        from council.render.json_out import dumps

        typer.echo(dumps({"endpoint": resolved.describe(), "models": models}))
        return
    say(f"{len(models)} {'model' if len(models) == 1 else 'models'} at {resolved.host}:", err=True)
    for model in models:
        say(model)
