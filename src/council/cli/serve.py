"""`council serve`: the council behind an OpenAI-compatible HTTP API, for other tools."""

from __future__ import annotations

from typing import Annotated

import typer

from council.cli.base import app, handles_errors
from council.cli.options import (
    BaseUrlOption,
    EndpointOption,
    MaxConcurrencyOption,
    RetriesOption,
    ServedModelOption,
    TimeoutOption,
)
from council.errors import UsageError

__all__ = ["serve"]

SERVER_PANEL = "Server"
INSTALL_HINT = 'pip install "council-llm[serve]"'
# What `council serve` needs beyond council itself (the `serve` extra).
SERVER_MODULES = ("starlette", "uvicorn")


@app.command()
@handles_errors
def serve(
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on; anything but loopback needs --api-key-env.",
            metavar="HOST",
            rich_help_panel=SERVER_PANEL,
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            help="Port to listen on (0: any free one, named in the first line).",
            metavar="PORT",
            min=0,
            max=65535,
            rich_help_panel=SERVER_PANEL,
        ),
    ] = 8000,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            "--api-key-env",
            help="Env var holding the key clients must send as a bearer token.",
            metavar="VAR",
            show_default=False,
            rich_help_panel=SERVER_PANEL,
        ),
    ] = None,
    max_runs: Annotated[
        int,
        typer.Option(
            help="Councils running at once.", min=1, metavar="N", rich_help_panel=SERVER_PANEL
        ),
    ] = 16,
    max_queue: Annotated[
        int,
        typer.Option(
            help="Requests waiting for a council beyond --max-runs; past both: 429.",
            min=0,
            metavar="N",
            rich_help_panel=SERVER_PANEL,
        ),
    ] = 64,
    deadline: Annotated[
        float,
        typer.Option(
            help="Seconds a council may take; past it: 504.",
            min=1,
            metavar="SECONDS",
            rich_help_panel=SERVER_PANEL,
        ),
    ] = 600,
    grace: Annotated[
        float,
        typer.Option(
            help="On SIGTERM, seconds running councils get to finish before they are cancelled.",
            min=0,
            metavar="SECONDS",
            rich_help_panel=SERVER_PANEL,
        ),
    ] = 10,
    max_body_kb: Annotated[
        int,
        typer.Option(
            help="Largest request body, in KiB; past it: 413.",
            min=1,
            metavar="KIB",
            rich_help_panel=SERVER_PANEL,
        ),
    ] = 1024,
    endpoint: EndpointOption = None,
    base_url: BaseUrlOption = None,
    model: ServedModelOption = None,
    timeout: TimeoutOption = None,
    retries: RetriesOption = None,
    max_concurrency: MaxConcurrencyOption = None,
    no_history: Annotated[
        bool,
        typer.Option(
            "--no-history", help="Record no request in the history.", rich_help_panel="History"
        ),
    ] = False,
) -> None:
    """Serve councils over an OpenAI-compatible API: chat UIs, llm, the openai SDK.

    Every preset you can see is a model (its name), and so is `council` (your own
    config's council). Each request is a council run, recorded in the history.

    \b
    Example:
      council serve --port 8000
      curl -s http://127.0.0.1:8000/v1/models
      council serve --host 0.0.0.0 --api-key-env COUNCIL_SERVE_KEY
    """
    if endpoint is not None and base_url is not None:
        raise UsageError("--endpoint and --base-url are exclusive", "give one of them")
    server = _server_module()
    settings = {
        name: value
        for name, value in {
            "endpoint": endpoint,
            "base_url": base_url,
            "model": model,
            "timeout": timeout,
            "retries": retries,
            "max_concurrency": max_concurrency,
        }.items()
        if value is not None
    }
    code = server.serve_council(
        host=host,
        port=port,
        api_key_env=api_key_env,
        settings=settings,
        max_runs=max_runs,
        max_queue=max_queue,
        deadline=deadline,
        grace=grace,
        max_body=max_body_kb * 1024,
        record=not no_history,
    )
    raise typer.Exit(code)


def _server_module():  # type: ignore[no-untyped-def]
    """council.serve.server, or one line saying how to install what it needs."""
    try:
        from council.serve import server
    except ModuleNotFoundError as error:
        missing = (error.name or "").split(".")[0]
        if missing in SERVER_MODULES:
            raise UsageError(
                f"council serve needs {missing}, which is not installed",
                f"install the serve extra: {INSTALL_HINT}",
            ) from None
        raise
    return server
