"""Council served to other programs: `council serve` (an OpenAI-compatible HTTP API,
starlette under uvicorn, with MCP at /mcp) and `council mcp` (MCP on stdio).

A layer between the CLI and the application layer: the CLI's `council serve` and
`council mcp` commands import it only when they run, so that `council --help` and a
plain oracle never load starlette, uvicorn or mcp. Modules:

- `protocol.py`: a chat completion request read and checked; OpenAI-shaped errors.
- `councils.py`: the model ids the server offers (one per preset, and `council`), each
  resolved once into a `council.Council` (the public API, `app/council.py`), and one
  request's run of it (`Council.stream`, recorded in the history as `command: serve`).
- `runs.py`: one request's run read in a task of its own: admitted under `--max-runs`
  and `--max-queue`, ended by `--deadline`, cancelled when its client goes away.
- `chunks.py`: engine events to streamed chunks; a result to one completion.
- `app.py`: the starlette application (`build_app`), with its seam for mounted apps.
- `server.py`: uvicorn, the "listening on" line, SIGTERM's grace period, `/mcp` mounted.
- `mcp_run.py`, `mcp_results.py`, `mcp_tools.py`, `mcp_schemas.py`: the MCP tools' work
  (a council asked from a tool call, its structured result, presets and history).
- `mcp_server.py`: the MCP server and its five tools; `mcp_stdio.py` serves it on stdio
  (`council mcp`), `mcp_http.py` over streamable HTTP (mounted at /mcp).
"""
