"""What a server says about itself: the context window it serves a model with, its slots.

The window is asked once per endpoint and model per run (the client keeps the
answer), cheaply (two small GETs at once, a short timeout) and harmlessly: whatever
goes wrong, the answer is None (unknown), never an error. Where servers say it:
  - llama.cpp: `GET /props` (beside /v1) -> `default_generation_settings.n_ctx`
    (older builds: `n_ctx` at the top);
  - vLLM: `max_model_len`, OpenRouter: `context_length`, in `GET /models` entries.

The slots (how many requests it serves at once) only llama.cpp states: `GET /props`
-> `total_slots`. Asked before the first call to an endpoint, once: the answer, "none
stated" included, is kept with what runs learned, so it costs one round trip per
endpoint, ever.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import openai

__all__ = ["probe_slots", "probe_window", "slots_in_props", "window_in_models", "window_in_props"]

PROBE_TIMEOUT = 3.0
# The slots are asked before the first call goes: a server that does not answer at
# once is taken to state none (llama.cpp answers /props from memory).
SLOTS_TIMEOUT = 1.0


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


def slots_in_props(props: object) -> int | None:
    """llama.cpp's slot count from a `/props` body."""
    return _positive(props.get("total_slots")) if isinstance(props, dict) else None


async def probe_slots(client: openai.AsyncOpenAI, base_url: str) -> int | None:
    """The slots the server states; 0 when it answered stating none (or too slowly to
    wait for), None when it could not be asked (unreachable, or busy: ask again later)."""
    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        props = await client.get(
            f"{root}/props", cast_to=object, options={"timeout": SLOTS_TIMEOUT}
        )
    except openai.APITimeoutError:
        return 0
    except openai.APIConnectionError:
        return None
    except openai.APIStatusError as exc:
        # llama.cpp answers 503 while it loads its model: its slots are worth asking again.
        return None if exc.status_code >= 500 or exc.status_code == 429 else 0
    except Exception:  # a probe never fails a run
        return 0
    return slots_in_props(props) or 0


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
