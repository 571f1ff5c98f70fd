"""`council serve`: a council behind an OpenAI-compatible HTTP API (starlette under uvicorn).

A layer between the CLI and the application layer: the CLI's `council serve` command
imports it only when it runs, so that `council --help` and a plain oracle never load
starlette or uvicorn. Modules:

- `protocol.py`: a chat completion request read and checked; OpenAI-shaped errors.
- `councils.py`: the model ids the server offers (one per preset, and `council`), each
  resolved once into a `council.Council` (the public API, `app/council.py`), and one
  request's run of it (`Council.stream`, recorded in the history as `command: serve`).
- `runs.py`: one request's run read in a task of its own: admitted under `--max-runs`
  and `--max-queue`, ended by `--deadline`, cancelled when its client goes away.
- `chunks.py`: engine events to streamed chunks; a result to one completion.
- `app.py`: the starlette application (`build_app`), with its seam for mounted apps.
- `server.py`: uvicorn, the "listening on" line, SIGTERM's grace period.
"""
