"""The councils a server offers: one model id per preset the user can see, and `council`.

`council` is the council the user's config resolves (as `council oracle -s` runs it);
a preset's id is its name, and it runs in the preset's mode: a deliberation when the
preset sets rounds, speculation or a threshold, an oracle with synthesis otherwise.
Each id is resolved into a `Council` (the public API) the first time it is asked for,
and kept for the life of the server; each request then streams one run of it, with
the client's system message, conversation and options.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from council.app.council import Council, CouncilStream
from council.config.presets import PresetCatalog
from council.errors import CouncilError
from council.serve.protocol import ApiError, ChatCall

__all__ = ["COUNCIL_ID", "Councils", "ServedCouncil"]

# The id of the council the user's own config resolves.
COUNCIL_ID = "council"
# Preset settings that make a deliberation of it.
DELIBERATION_SETTINGS = ("rounds", "speculative", "threshold")
# What the server's history calls each request's run.
COMMAND = "serve"


@dataclass(frozen=True)
class ServedCouncil:
    """One model id's council, resolved: the `Council`, and whether it deliberates."""

    id: str
    council: Council
    deliberates: bool

    @property
    def mode(self) -> str:
        return "deliberate" if self.deliberates else "oracle"

    def stream(self, call: ChatCall) -> CouncilStream:
        """This request's run, ready to stream (its plan built and checked: UsageError)."""
        conversation = [{"role": role, "content": text} for role, text in call.conversation]
        return self.council.stream(
            call.question,
            deliberate=self.deliberates,
            conversation=conversation or None,
            system=call.system,
            options=call.options or None,
        )


class Councils:
    """Every model id the server offers, resolved on first use and kept.

    `settings` are `Council` arguments `council serve` was given (endpoint, base URL,
    model, timeout...): they win over a preset's, as flags do on the command line.
    """

    def __init__(self, settings: dict[str, Any] | None = None, *, history: bool = True) -> None:
        self.settings = dict(settings or {})
        self.history = history
        self._resolved: dict[str, ServedCouncil] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def ids(self) -> list[str]:
        """`council`, then the presets the user can see, by name."""
        names = [n for n in PresetCatalog.discover().names() if n != COUNCIL_ID]
        return [COUNCIL_ID, *names]

    def resolve_now(self, model: str) -> ServedCouncil:
        """The council of `model`, resolved on this thread (ApiError 404 for an unknown id)."""
        if model in self._resolved:
            return self._resolved[model]
        preset = None if model == COUNCIL_ID else model
        catalog = PresetCatalog.discover()
        if preset is not None and preset not in catalog.names():
            raise ApiError(
                404,
                f"The model '{model}' does not exist: GET /v1/models lists this server's councils",
                code="model_not_found",
                param="model",
            )
        try:
            council = Council(preset=preset, history=self.history, command=COMMAND, **self.settings)
            deliberates = preset is not None and _deliberates(catalog, preset)
            # The embedded model's server (on `local`) started once and kept for every
            # request, rather than one per request; the others need nothing.
            council.open()
        except CouncilError as error:
            raise ApiError(
                500, f"council '{model}' cannot run: {error.one_line()}", type="server_error"
            ) from None
        served = ServedCouncil(model, council, deliberates)
        self._resolved[model] = served
        return served

    def close(self) -> None:
        """Stop what the councils keep running (the embedded model's servers)."""
        for served in self._resolved.values():
            served.council.close()

    async def resolve(self, model: str) -> ServedCouncil:
        """The council of `model`, resolved once (off the event loop: it reads files)."""
        if model in self._resolved:
            return self._resolved[model]
        lock = self._locks.setdefault(model, asyncio.Lock())
        async with lock:
            return await asyncio.to_thread(self.resolve_now, model)


def _deliberates(catalog: PresetCatalog, name: str) -> bool:
    """Whether the preset sets how a deliberation goes (rounds, speculation, threshold)."""
    from council.config.files import load_user_config
    from council.config.personas import PersonaCatalog

    preset = catalog.load(name, personas=PersonaCatalog.discover(), user=load_user_config())
    return any(key in preset.values for key in DELIBERATION_SETTINGS)
