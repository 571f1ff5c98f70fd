"""`council mcp`: council's tools for MCP clients (Claude Desktop, Claude Code, Cursor) on stdio."""

from __future__ import annotations

from types import ModuleType
from typing import Annotated

import typer

from council.cli.base import app, handles_errors
from council.cli.options import (
    ApiKeyEnvOption,
    BaseUrlOption,
    EndpointOption,
    PresetOption,
    ServedModelOption,
)
from council.errors import UsageError

__all__ = ["mcp_command"]

# What `council mcp` needs beyond council itself, and how to get it.
INSTALL_HINT = 'install it with: pip install "council-llm[serve]"'
SERVE_PACKAGES = ("mcp", "mcp_types", "starlette", "uvicorn", "sse_starlette", "pydantic_settings")


@app.command(name="mcp")
@handles_errors
def mcp_command(
    preset: PresetOption = None,
    endpoint: EndpointOption = None,
    base_url: BaseUrlOption = None,
    model: ServedModelOption = None,
    api_key_env: ApiKeyEnvOption = None,
    no_history: Annotated[
        bool, typer.Option("--no-history", help="Record no run in the history.")
    ] = False,
) -> None:
    """Serve council to MCP clients (Claude Desktop, Claude Code, Cursor) on stdio.

    Tools: ask, deliberate, presets, recent_runs, show_run. The client starts it;
    the flags set up every council it asks (a tool call's personas or preset win).
    Only the protocol goes to stdout. Needs: pip install "council-llm[serve]"

    \b
    Examples:
      claude mcp add council -- council mcp
      council mcp --preset review --endpoint openrouter
    """
    server = _mcp_stdio()
    from council.serve.mcp_run import McpSettings

    server.run_stdio(
        McpSettings(
            endpoint=endpoint,
            base_url=base_url,
            model=model,
            api_key_env=api_key_env,
            preset=preset,
            no_history=no_history,
        )
    )


def _mcp_stdio() -> ModuleType:
    """The stdio MCP server module, or one line saying how to install what it needs."""
    try:
        from council.serve import mcp_stdio
    except ImportError as error:
        missing = (error.name or "").split(".")[0]
        if missing not in SERVE_PACKAGES:
            raise
        raise UsageError(
            f"council mcp needs the {missing} package, not installed", INSTALL_HINT
        ) from None
    return mcp_stdio
