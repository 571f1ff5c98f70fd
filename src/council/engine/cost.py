"""What one call cost, and what a plan's models cost: prices applied to tokens.

The price of a model on an endpoint comes from config/prices.py (the profile's
`price:`, else genai-prices for a known provider); the endpoint's own report of a
call's cost (OpenRouter's `usage.cost`) ranks between them, per call:

- an answer costs its tokens at the profile's price; else what the server reported;
  else its tokens at genai-prices' price; else it is unknown (None, never 0);
- tokens the server did not count are estimated, and the cost says so
  (`estimated`): the prompt as engine/fit.py estimates it (three characters a token,
  on the careful side), an answer's text at four characters a token, or a chunk a
  token, whichever is more;
- an attempt that failed after streaming part of an answer (a broken stream, then a
  retry) cost its prompt and what it streamed, estimated; the server never reports
  those, so without a price they stay out of the cost. An attempt that streamed
  nothing (a 429, a refused connection, a 4xx) is taken to cost nothing: servers
  bill answers, not refusals;
- a call cancelled in flight (a speculative round the council no longer needs,
  Ctrl-C) cost its prompt and the tokens it had streamed, estimated; one cancelled
  before it was sent cost nothing.

    price = price_of(endpoint, "gpt-4o-mini")
    spent = Spent(tokens_in=120, tokens_out=40)
    cost, estimated = spent.cost(price, reported=None)
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from council.config.endpoint_settings import EndpointSettings
from council.config.prices import PRICE_HINT, Price, catalog_price, configured_price
from council.engine.model import CallSpec
from council.errors import UsageError

if TYPE_CHECKING:
    from council.engine.budget import Budget
    from council.engine.plan import DeliberationPlan, OraclePlan

__all__ = [
    "ModelPrice",
    "Spent",
    "check_prices",
    "output_tokens_of",
    "plan_prices",
    "price_of",
    "total_cost",
    "worst_case_usd",
]


def price_of(endpoint: EndpointSettings, model: str) -> Price | None:
    """The price of `model` on `endpoint`, as known before any call: profile, then catalog."""
    configured = configured_price(endpoint.price, model)
    if configured is not None or endpoint.local_model_path is not None:
        return configured  # the embedded server is free only when its profile says so
    return catalog_price(endpoint.base_url, model)


@dataclass(frozen=True)
class ModelPrice:
    """A model a plan calls, where, and its price as known before the run (None: unknown)."""

    model: str
    host: str
    price: Price | None
    reports_cost: bool  # the endpoint reports each call's cost (OpenRouter's usage.cost)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "endpoint": self.host,
            "price": None if self.price is None else self.price.to_dict(),
            "source": self.source,
        }

    @property
    def source(self) -> str:
        if self.price is not None and self.price.source == "profile":
            return "profile"
        if self.reports_cost:
            return "reported by the endpoint per call"
        return self.price.source if self.price is not None else "unknown"


def plan_prices(plan: OraclePlan | DeliberationPlan) -> list[ModelPrice]:
    """Every (model, endpoint) a plan's members call, once each, with its price."""
    members = [*plan.personas, *plan.arbiter_fallback]
    if plan.arbiter is not None:
        members.append(plan.arbiter)
    found: dict[tuple[str, str], ModelPrice] = {}
    for member in members:
        endpoint = plan.endpoint_for(member.endpoint)
        model = member.model or endpoint.model
        if (model, endpoint.host) not in found:
            found[(model, endpoint.host)] = ModelPrice(
                model, endpoint.host, price_of(endpoint, model), _reports_cost(endpoint)
            )
    return list(found.values())


def _reports_cost(endpoint: EndpointSettings) -> bool:
    from council.config.prices import provider_for

    return endpoint.local_model_path is None and provider_for(endpoint.base_url) == "openrouter"


def check_prices(plan: OraclePlan | DeliberationPlan, budget: Budget | None) -> None:
    """Before anything is sent: UsageError (exit 2) when --budget-usd meets an unpriced model.

    Without a USD limit, the prices are looked up on a thread meanwhile: importing
    genai-prices takes a few hundred milliseconds, which the first call to end would
    otherwise spend holding up the event loop.
    """
    if budget is None or budget.usd is None:
        threading.Thread(target=plan_prices, args=(plan,), daemon=True).start()
        return
    for known in plan_prices(plan):
        if known.price is None:
            raise UsageError(
                f"--budget-usd cannot be kept: no price is known for model {known.model} "
                f"on {known.host}",
                PRICE_HINT + ", or use --max-tokens-total instead",
            )


def output_tokens_of(text_chars: int, chunks: int) -> int:
    """Output tokens estimated from a streamed text: four characters or a chunk a token."""
    return max(chunks, math.ceil(text_chars / 4))


@dataclass(frozen=True)
class Spent:
    """The tokens of one call: counted by the server (None: not) and estimated."""

    tokens_in: int | None = None
    tokens_out: int | None = None
    estimated_in: int = 0
    estimated_out: int = 0

    def tokens(self) -> tuple[int, int, bool]:
        """(in, out, estimated): the server's counts where it gave them, else the estimates."""
        estimated = self.tokens_in is None or self.tokens_out is None
        tokens_in = self.tokens_in if self.tokens_in is not None else self.estimated_in
        tokens_out = self.tokens_out if self.tokens_out is not None else self.estimated_out
        return tokens_in, tokens_out, estimated

    def cost(self, price: Price | None, reported: float | None) -> tuple[float | None, bool]:
        """(USD or None when unknown, estimated?) in the order of the module doc."""
        tokens_in, tokens_out, estimated = self.tokens()
        if price is not None and price.source == "profile":
            return price.cost(tokens_in, tokens_out), estimated
        if reported is not None:
            return reported, False
        if price is not None:
            return price.cost(tokens_in, tokens_out), estimated
        return None, False


def total_cost(costs: list[float | None]) -> float | None:
    """The sum of the known costs; None when none is known, or when the known ones are
    all free (never sent, reused) and some other is unknown: that is no "$0"."""
    known = [c for c in costs if c is not None]
    if not known or (len(known) < len(costs) and sum(known) == 0):
        return None
    return sum(known)


def worst_case_usd(plan: OraclePlan | DeliberationPlan) -> float | None:
    """What the plan costs if every call writes its whole max_tokens; None: a price is unknown.

    Every quoted answer counts at its writer's max_tokens; retries and fallback
    judges (asked only when a call fails) are left out.
    """
    from council.engine.budget import ASSUMED_ANSWER_TOKENS
    from council.engine.fit import raw_estimate
    from council.engine.plan import OraclePlan

    def room(call: CallSpec) -> int:
        return call.max_tokens or ASSUMED_ANSWER_TOKENS

    def cost(call: CallSpec, quoted: int) -> float | None:
        price = price_of(plan.endpoint_for(call.endpoint), call.model)
        if price is None:
            return None
        return price.cost(raw_estimate(call.messages) + quoted, room(call))

    blanks = [(p.name, "") for p in plan.personas]
    costs: list[float | None] = []
    if isinstance(plan, OraclePlan):
        costs += [cost(call, 0) for call in plan.calls]
        if plan.arbiter is not None:
            costs.append(cost(plan.synthesis_call(blanks), sum(room(c) for c in plan.calls)))
    else:
        first = [plan.persona_call(p, 1) for p in plan.personas]
        answers = sum(room(c) for c in first)
        for number in range(1, plan.rounds + 1):
            costs += [cost(call, answers if number > 1 else 0) for call in first]
            costs.append(cost(plan.verdict_call(number, blanks), answers))
    if any(c is None for c in costs):
        return None
    return sum(c for c in costs if c is not None)
