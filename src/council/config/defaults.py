"""Every default council uses, in one place: what a run does when no flag, preset, env or file says.

`DEFAULTS` is the bottom layer of settings resolution (`council config show` lists
these as "default"); the limits below it apply where nothing set them, and are
shown with the plan (`--dry-run`).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DEFAULTS",
    "DEFAULT_API_KEY_ENV",
    "DEFAULT_ARBITER",
    "DEFAULT_BASE_URL",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_FIRST_TOKEN_TIMEOUT",
    "DEFAULT_MAX_CONCURRENCY_CAP",
    "DEFAULT_MODEL",
    "DEFAULT_OUTAGE_LIMIT",
    "DEFAULT_PERSONAS",
    "DEFAULT_RETRIES",
    "DEFAULT_ROUNDS",
    "DEFAULT_SPECULATIVE",
    "DEFAULT_THRESHOLD",
    "DEFAULT_TIMEOUT",
]

# Where calls go, and with which key variable.
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"

# Who sits on the council.
DEFAULT_PERSONAS = ("judge", "critic", "skeptic")
DEFAULT_ARBITER = "arbiter"

# How a deliberation ends.
DEFAULT_ROUNDS = 3
DEFAULT_THRESHOLD = 0.8  # confidence a converged verdict needs to end the council
DEFAULT_SPECULATIVE = False

# Limits of every call.
DEFAULT_TIMEOUT = 120.0  # seconds per call, retries included
DEFAULT_RETRIES = 2
# A call that has not produced its first token within this long is stalled
# (or the connection is): give up on that attempt and retry.
DEFAULT_FIRST_TOKEN_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 10.0
# The ceiling of calls in flight at once per endpoint when neither --max-concurrency
# nor the profile's max_concurrency sets one; the endpoint's limiter learns less
# where the server has fewer slots.
DEFAULT_MAX_CONCURRENCY_CAP = 8
# `council batch`: the longest continuous outage of the endpoint (every call failing
# to connect: a model server restarting) its items wait through before they fail.
DEFAULT_OUTAGE_LIMIT = 300.0

# The settings layer "default", as resolution and `council config show` see it.
DEFAULTS: dict[str, Any] = {
    "base_url": DEFAULT_BASE_URL,
    "model": DEFAULT_MODEL,
    "personas": list(DEFAULT_PERSONAS),
    "arbiter": DEFAULT_ARBITER,
    "rounds": DEFAULT_ROUNDS,
    "threshold": DEFAULT_THRESHOLD,
    "speculative": DEFAULT_SPECULATIVE,
}
