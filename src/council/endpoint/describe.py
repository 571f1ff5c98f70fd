"""What a server says about itself: the context window it serves a model with.

Asked once per endpoint and model per run (the client keeps the answer), cheaply
(two small GETs at once, a short timeout) and harmlessly: whatever goes wrong, the
answer is None (unknown), never an error. Where servers say it:
  - llama.cpp: `GET /props` (beside /v1) -> `default_generation_settings.n_ctx`
    (older builds: `n_ctx` at the top);
  - vLLM: `max_model_len`, OpenRouter: `context_length`, in `GET /models` entries.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import openai

__all__ = ["probe_window", "window_in_models", "window_in_props"]

PROBE_TIMEOUT = 3.0


def _positive(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def window_in_props(props: object) -> int | None:
    """llama.cpp's window from a `/props` body."""
    if not isinstance(props, dict):
        return None
    settings = props.get("default_generation_settings")
    if isinstance(settings, dict) and _positive(settings.get("n_ctx")):
        return _positive(settings.get("n_ctx"))
    return _positive(props.get("n_ctx"))


def window_in_models(listing: object, model: str) -> int | None:
    """vLLM's or OpenRouter's window for `model` from a `/models` body."""
    data = listing.get("data") if isinstance(listing, dict) else None
    for entry in data if isinstance(data, list) else ():
        if isinstance(entry, dict) and entry.get("id") == model:
            return _positive(entry.get("max_model_len")) or _positive(entry.get("context_length"))
    return None


async def _get(client: openai.AsyncOpenAI, url: str) -> Any:
    with contextlib.suppress(Exception):  # a probe never fails a run
        return await client.get(url, cast_to=object, options={"timeout": PROBE_TIMEOUT})
    return None


async def probe_window(client: openai.AsyncOpenAI, base_url: str, model: str) -> int | None:
    """The window the server states for `model`, or None when it states none."""
    root = base_url.rstrip("/").removesuffix("/v1")
    props, listing = await asyncio.gather(
        _get(client, f"{root}/props"), _get(client, base_url.rstrip("/") + "/models")
    )
    return window_in_models(listing, model) or window_in_props(props)
