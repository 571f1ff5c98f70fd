"""What a model costs, in USD per million tokens, and where that price comes from.

In order (the first that knows wins):

1. the endpoint profile's `price:` in the user's own config, one price for every
   model of the profile or one per model name:

       price: {input: 0.15, output: 0.6}
       price: {gpt-4o-mini: {input: 0.15, output: 0.6}, gpt-4o: {input: 2.5, output: 10}}

   An explicit `price: {input: 0, output: 0}` is a known price of zero (a local
   server that costs nothing). Only the user's profiles may set prices: a shared
   file (preset, project config) defines no endpoints, so it cannot lower a price
   to slip past a budget.
2. the endpoint's own report of a call's cost (OpenRouter's `usage.cost`), read
   per call by the endpoint (`StreamResult.cost_usd`); it has no price up front;
3. `genai-prices`, a maintained price database shipped with its data (no network:
   its bundled snapshot is used, never updated at run time), for the models of
   known providers, the provider told by the base URL's host. A host it does not
   know (a local server, a private proxy) has no price.

`genai_prices` is imported only when a known provider's price is looked up: help,
dry runs of local endpoints and runs without a price never pay for it.

    price = configured_price(endpoint.price, "gpt-4o-mini")   # Price or None
    price = catalog_price("https://api.openai.com/v1", "gpt-4o-mini")
    price.cost(tokens_in=1200, tokens_out=300)                # USD
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "PRICE_HINT",
    "Price",
    "PriceSetting",
    "catalog_price",
    "configured_price",
    "provider_for",
]

# A profile's `price:` as read: one {input, output} for every model, or one per model.
PriceSetting = dict[str, Any]

# How to give a model a price, for the errors that need one.
PRICE_HINT = (
    "set price: {input: USD, output: USD} (per million tokens) in the endpoint's profile "
    "(council config path)"
)

# Hosts whose models genai-prices knows, by the provider id it files them under.
# A suffix match: "eu.api.openai.com" is openai too.
PROVIDER_HOSTS = {
    "api.openai.com": "openai",
    "openrouter.ai": "openrouter",
    "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "google",
    "api.mistral.ai": "mistral",
    "api.groq.com": "groq",
    "api.deepseek.com": "deepseek",
    "api.x.ai": "x-ai",
    "api.together.xyz": "together",
    "api.fireworks.ai": "fireworks",
}


@dataclass(frozen=True)
class Price:
    """USD per million input and output tokens, and where that came from."""

    input: float
    output: float
    source: str  # "profile", "genai-prices (openai)"

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.input + tokens_out * self.output) / 1_000_000

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input, "output": self.output, "source": self.source}


def configured_price(setting: PriceSetting | None, model: str) -> Price | None:
    """The profile's price of `model` (checked by config/checks.py), or None."""
    if not setting:
        return None
    one = setting if set(setting) == {"input", "output"} else setting.get(model)
    if not isinstance(one, dict):
        return None
    return Price(float(one["input"]), float(one["output"]), "profile")


def provider_for(base_url: str) -> str | None:
    """The genai-prices provider of a base URL's host; None for a host it does not know."""
    host = (urlsplit(base_url).hostname or "").lower()
    for known, provider in PROVIDER_HOSTS.items():
        if host == known or host.endswith("." + known):
            return provider
    return None


def catalog_price(base_url: str, model: str) -> Price | None:
    """genai-prices' price of `model` at the provider of `base_url`; None when unknown."""
    provider = provider_for(base_url)
    if provider is None:
        return None
    return _catalog(provider, model)


@functools.cache
def _catalog(provider: str, model: str) -> Price | None:
    try:
        from genai_prices import Usage, calc_price
    except ImportError:  # installed without it: prices come from profiles only
        return None
    million = 1_000_000
    try:
        per_input = calc_price(
            Usage(input_tokens=million, output_tokens=0), model, provider_id=provider
        )
        per_output = calc_price(
            Usage(input_tokens=0, output_tokens=million), model, provider_id=provider
        )
    except (LookupError, ValueError, TypeError):  # a model it does not know
        return None
    prices = (float(per_input.total_price), float(per_output.total_price))
    if not all(math.isfinite(p) and p >= 0 for p in prices):
        return None
    return Price(prices[0], prices[1], f"genai-prices ({provider})")
