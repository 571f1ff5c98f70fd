"""Endpoint settings, checked, with where each value came from.

`council.config.settings` resolves every setting through its layers (flag > preset >
env > project config > user config > default) and calls `build_endpoint` here. It is
the one resolver: scripts and tests go through `load_settings` too.
"""

from __future__ import annotations

import ipaddress
import math
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from council.config.checks import is_http_url
from council.config.defaults import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_FIRST_TOKEN_TIMEOUT,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
)
from council.errors import ConfigError, UsageError

__all__ = [
    "NO_KEY_PLACEHOLDER",
    "EndpointSettings",
    "build_endpoint",
    "is_loopback_url",
]

# Placeholder sent to loopback servers that need no key: the SDK insists on one.
NO_KEY_PLACEHOLDER = "no-key-needed"


def is_loopback_url(url: str) -> bool:
    """True for URLs on this machine, which need no key: `localhost` itself and literal
    loopback addresses (127.0.0.0/8, ::1, ::ffff:127.0.0.1).

    No other name: many resolvers send `*.localhost` (and `localhost.`) to DNS, so
    `http://evil.localhost:9/v1` in a shared preset may be anyone's machine.
    """
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


@dataclass(frozen=True)
class EndpointSettings:
    """Everything needed to talk to one endpoint.

    `api_key` is None only for loopback endpoints that were given no key; it is
    excluded from repr so it can never end up in a log or a traceback.
    """

    base_url: str
    model: str
    api_key_env: str
    api_key: str | None = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    max_concurrency: int | None = None
    headers: dict[str, str] = field(default_factory=dict)  # extra headers from a profile
    sources: dict[str, str] = field(default_factory=dict, compare=False)
    # A GGUF file council serves itself (the `local` endpoint); base_url is a
    # placeholder until that server runs.
    local_model_path: str | None = None
    # The profile's `context_window:`: one window in tokens for every model, or one
    # per model name; None: not configured (the server's word or a learned one then).
    context_window: int | dict[str, int] | None = None
    # The profile's `price:` (USD per million tokens; config/prices.py reads it); None: none.
    price: dict[str, Any] | None = None
    # The stored key (`council keys set NAME`) the profile names, sent when $api_key_env
    # is empty; "": none named. `key_from` says which of the two `api_key` is.
    api_key_name: str = ""
    key_from: str = field(default="", compare=False)

    def window_for(self, model: str) -> int | None:
        """The configured context window of `model` on this endpoint, if any."""
        if isinstance(self.context_window, dict):
            return self.context_window.get(model)
        return self.context_window

    @property
    def host(self) -> str:
        if self.local_model_path is not None:
            return "local"  # one name across runs, whatever port the server had
        parts = urlsplit(self.base_url)
        return parts.netloc or self.base_url

    @property
    def first_token_timeout(self) -> float:
        return min(DEFAULT_FIRST_TOKEN_TIMEOUT, self.timeout)

    @property
    def connect_timeout(self) -> float:
        return min(DEFAULT_CONNECT_TIMEOUT, self.timeout)

    @property
    def key_label(self) -> str:
        """Where the key sent comes from, for a person: never any part of the key."""
        if self.key_from == "stored":
            return f"the stored key {self.api_key_name!r}"
        if self.api_key_env:
            return f"${self.api_key_env}"
        return f"the stored key {self.api_key_name!r}" if self.api_key_name else "no key"

    def auth_hint(self) -> str:
        """What to do when the server refuses the key (HTTP 401/403)."""
        if self.api_key is None:  # the server wants one: say how to give it one
            if self.api_key_env:
                give = f"export {self.api_key_env}=<your key> (it is not set)"
            else:
                give = "give the endpoint's profile an api_key_env"
            return f"{give}, or store one with 'council keys set NAME' (api_key: NAME)"
        if self.key_from == "stored":
            return (
                f"check that {self.key_label} holds a valid key for {self.host} "
                f"(council keys set {self.api_key_name})"
            )
        return (
            f"check that ${self.api_key_env} holds a valid key for {self.host} "
            "(or pass --api-key-env NAME)"
        )

    @property
    def key_for_client(self) -> str:
        return self.api_key if self.api_key else NO_KEY_PLACEHOLDER

    def describe(self) -> dict[str, Any]:
        """Where calls go and where that came from, for dry runs: never the key itself."""
        described = {
            "host": self.host,
            "base_url": self.base_url,
            "local_model_path": self.local_model_path,
            "api_key_env": self.api_key_env or None,
            "api_key_set": self.api_key is not None,
            "headers": sorted(self.headers),
            "sources": self.sources,
        }
        if self.api_key_name:  # the name only, and only where a profile names one
            described["api_key_name"] = self.api_key_name
            described["api_key_from"] = self.key_from or None
        return described

    def limits(self, max_concurrency: int) -> dict[str, Any]:
        return {
            "timeout": self.timeout,
            "first_token_timeout": self.first_token_timeout,
            "retries": self.retries,
            "max_concurrency": max_concurrency,
        }


def build_endpoint(
    *,
    base_url: str,
    model: str,
    api_key_env: str | None,
    timeout: float | None,
    retries: int | None,
    max_concurrency: int | None,
    sources: dict[str, str],
    headers: dict[str, str] | None = None,
    require_key: bool = True,
    local_model_path: str | None = None,
    context_window: int | dict[str, int] | None = None,
    price: dict[str, Any] | None = None,
    api_key_name: str | None = None,
) -> EndpointSettings:
    """Check resolved endpoint values and read the key from `$api_key_env`, else from
    the stored key `api_key_name` (a profile's `api_key:`): the environment wins.

    `api_key_env` None (and no `api_key_name`) means no key is sent (a loopback URL
    named by a shared file, or a profile without one). `require_key=False` is for dry
    runs, which show the plan without calling anyone. Raises ConfigError for a missing key on a
    non-loopback endpoint, UsageError for values out of range.
    """
    url = base_url.rstrip("/")
    where = sources.get("base_url", "default")
    if not is_http_url(url):
        raise UsageError(
            f"base URL {url!r} ({where}) is not an http(s) URL",
            "give one like http://127.0.0.1:8000/v1 or https://api.openai.com/v1",
        )
    if api_key_env is not None and not api_key_env.replace("_", "").isalnum():
        raise UsageError(
            f"--api-key-env {api_key_env!r} is not an environment variable name",
            "pass the NAME of the variable holding the key, e.g. --api-key-env OPENROUTER_API_KEY",
        )
    key = (os.environ.get(api_key_env) or None) if api_key_env else None
    key_from = "env" if key is not None else ""
    if key is None and api_key_name:
        from council.config.keys import stored_key

        key = stored_key(api_key_name)
        key_from = "stored" if key is not None else ""
        if key is None and require_key and not is_loopback_url(url):
            unset = f"${api_key_env} is not set and " if api_key_env else ""
            raise ConfigError(
                f"no API key for {urlsplit(url).netloc}: {unset}no key is stored as "
                f"{api_key_name!r}",
                f"store it with 'council keys set {api_key_name}' (see 'council keys list')",
            )
    if api_key_env and key is None and require_key and not is_loopback_url(url):
        raise ConfigError(
            f"no API key for {urlsplit(url).netloc}: ${api_key_env} is not set",
            f"export {api_key_env}=<your key>, or pass --api-key-env NAME to read another variable",
        )
    if timeout is not None and not (0 < timeout < math.inf):  # nan fails this too
        raise UsageError(
            f"--timeout must be a positive number, got {timeout:g}",
            "give seconds, e.g. --timeout 60",
        )
    if retries is not None and retries < 0:
        raise UsageError(f"--retries must be 0 or more, got {retries}", "e.g. --retries 2")
    if max_concurrency is not None and max_concurrency < 1:
        raise UsageError(
            f"--max-concurrency must be at least 1, got {max_concurrency}",
            "e.g. --max-concurrency 8",
        )
    return EndpointSettings(
        base_url=url,
        model=model,
        api_key_env=api_key_env or "",
        api_key=key,
        timeout=DEFAULT_TIMEOUT if timeout is None else float(timeout),
        retries=DEFAULT_RETRIES if retries is None else retries,
        max_concurrency=max_concurrency,
        headers=dict(headers or {}),
        sources=sources,
        local_model_path=local_model_path,
        context_window=context_window,
        price=price,
        api_key_name=api_key_name or "",
        key_from=key_from,
    )
