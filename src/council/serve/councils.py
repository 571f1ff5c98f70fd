"""The councils a server offers: one model id per preset the user can see, and `council`.

`council` is the council the user's config resolves (as `council oracle -s` runs it);
a preset's id is its name, and it runs in the preset's mode: a deliberation when the
preset sets rounds or speculation, an oracle with synthesis otherwise. Each id is
resolved the first time it is asked for (config files, preset, personas, keys) and
kept for the life of the server; each request then gets its own plan, with the
client's system message, conversation and options.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, replace
from typing import Any

from council.app.ask import (
    AskRequest,
    deliberation_plan,
    oracle_plan,
    resolve_council,
)
from council.app.flags import AskFlags
from council.config.endpoint_settings import EndpointSettings
from council.config.presets import PresetCatalog
from council.engine.plan import DeliberationPlan, OraclePlan
from council.errors import CouncilError
from council.serve.protocol import ApiError, ChatCall

__all__ = ["COUNCIL_ID", "Council", "Councils"]

# The id of the council the user's own config resolves.
COUNCIL_ID = "council"
# Preset settings that make a deliberation of it.
DELIBERATION_SETTINGS = ("rounds", "speculative", "threshold")


@dataclass(frozen=True)
class Council:
    """One model id's council, resolved: who sits on it and how it runs."""

    id: str
    request: AskRequest
    deliberates: bool

    @property
    def mode(self) -> str:
        return "deliberate" if self.deliberates else "oracle"

    def plan(self, call: ChatCall) -> OraclePlan | DeliberationPlan:
        """This request's plan: its question and conversation, system message and options."""
        personas = [_with_system(p, call.system) for p in self.request.personas]
        request = replace(
            self.request, personas=personas, options={**self.request.options, **call.options}
        )
        query = question_with_conversation(call)
        if self.deliberates:
            return deliberation_plan(request, query, max_wasted_tokens=None)
        return oracle_plan(request, query, synthesize=True)


def _with_system(persona: Any, system: str | None) -> Any:
    """The persona with the client's system message appended, as `--system` appends it."""
    if system is None:
        return persona
    return replace(persona, system=f"{persona.system.rstrip()}\n\n{system.strip()}")


def question_with_conversation(call: ChatCall) -> str:
    """The question, after the conversation so far when there was one (every member reads it)."""
    if not call.conversation:
        return call.question
    turns = "\n\n".join(
        f"{'User' if role == 'user' else 'Assistant'}: {text}" for role, text in call.conversation
    )
    return f"The conversation so far:\n\n{turns}\n\nThe user's latest message:\n\n{call.question}"


class Councils:
    """Every model id the server offers, resolved on first use and kept.

    `settings` are the setting flags `council serve` was given (endpoint, base URL,
    model, timeout...), by the asking commands' parameter names: they win over a
    preset's, as on the command line.
    """

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        self.settings = dict(settings or {})
        self._resolved: dict[str, Council] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # The endpoints served here (the embedded model): started once, for the server's life.
        self.served: dict[str, EndpointSettings] = {}
        self.stack = contextlib.ExitStack()
        self._serving = threading.Lock()

    def ids(self) -> list[str]:
        """`council`, then the presets the user can see, by name."""
        names = [n for n in PresetCatalog.discover().names() if n != COUNCIL_ID]
        return [COUNCIL_ID, *names]

    def resolve_now(self, model: str) -> Council:
        """The council of `model`, resolved on this thread (ApiError 404 for an unknown id)."""
        if model in self._resolved:
            return self._resolved[model]
        preset = None if model == COUNCIL_ID else model
        if preset is not None and preset not in PresetCatalog.discover().names():
            raise ApiError(
                404,
                f"The model '{model}' does not exist: GET /v1/models lists this server's councils",
                code="model_not_found",
                param="model",
            )
        flags = AskFlags(preset=preset, no_stdin=True)
        try:
            request = resolve_council(flags, flags.setting_values(**self.settings))
        except CouncilError as error:
            hint = f"; {error.hint}" if error.hint else ""
            raise ApiError(
                500, f"council '{model}' cannot run: {error.message}{hint}", type="server_error"
            ) from None
        values = request.settings
        deliberates = preset is not None and any(
            values.sources.get(name, "").startswith("preset") for name in DELIBERATION_SETTINGS
        )
        council = Council(model, request, deliberates)
        self._resolved[model] = council
        return council

    async def resolve(self, model: str) -> Council:
        """The council of `model`, resolved once (off the event loop: it reads files)."""
        if model in self._resolved:
            return self._resolved[model]
        lock = self._locks.setdefault(model, asyncio.Lock())
        async with lock:
            return await asyncio.to_thread(self.resolve_now, model)

    def endpoints(self) -> list[EndpointSettings]:
        """Every endpoint of the councils resolved so far (their learned limits are kept)."""
        seen: list[EndpointSettings] = []
        for council in self._resolved.values():
            for endpoint in (
                council.request.settings.endpoint,
                *council.request.endpoints.values(),
            ):
                if endpoint not in seen:
                    seen.append(endpoint)
        return seen

    def served_plan(self, plan: OraclePlan | DeliberationPlan) -> Any:
        """The plan with the embedded model's endpoint replaced by its running server's.

        The server starts on first use and runs until `close`: one llama.cpp child for
        every request, not one per request.
        """
        from council.endpoint.local import serving

        def served(endpoint: EndpointSettings) -> EndpointSettings:
            path = endpoint.local_model_path
            if path is None:
                return endpoint
            with self._serving:
                if path not in self.served:
                    self.served[path] = self.stack.enter_context(serving(endpoint))
            return replace(endpoint, base_url=self.served[path].base_url)

        return replace(
            plan,
            endpoint=served(plan.endpoint),
            endpoints={name: served(e) for name, e in plan.endpoints.items()},
        )

    def close(self) -> None:
        with self._serving:
            self.stack.close()
