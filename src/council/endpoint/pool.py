"""Every endpoint's one limiter and what was learned about it, owned by whoever runs councils.

A CLI command makes one pool for its run (or its batch, or its eval); a long-lived
process (a server running many councils at once) keeps one for all of them, so each
endpoint has exactly one limiter that keeps learning across runs. The application
layer seeds `pool.learned` from the history before runs and saves it after. A pool's
limiters belong to the event loop that first used them: one pool per event loop.

    pool = EndpointPool()
    limiter = pool.limiter(settings, ceiling=8)   # the same one for every call to it
    pool.learned.learned_for(settings.base_url, "gpt-4o-mini").capacity
"""

from __future__ import annotations

from council.config.endpoint_settings import EndpointSettings
from council.endpoint.learned import LearnedTable
from council.endpoint.limiter import EndpointLimiter

__all__ = ["EndpointPool"]


class EndpointPool:
    """Limiters by endpoint (base URL and key variable), and the table they learn into."""

    def __init__(self) -> None:
        self.learned = LearnedTable()
        # The endpoints (normalised URLs) already seeded from the history: in a pool shared
        # by many runs the table is newer than the history, so each is seeded once.
        self.seeded: set[str] = set()
        self._limiters: dict[tuple[str, str], EndpointLimiter] = {}

    def limiter(self, settings: EndpointSettings, ceiling: int) -> EndpointLimiter:
        """The endpoint's limiter, made on first use.

        Every model on one endpoint shares its slots; what it learns is kept for the
        settings' model. A later run with another ceiling gets it applied (the limit
        never starts above the ceiling): a new limiter, from what the table learned.
        """
        fixed = settings.local_model_path is not None
        key = (settings.base_url.rstrip("/"), settings.api_key_env)
        limiter = self._limiters.get(key)
        if limiter is None or (limiter.ceiling, limiter.fixed) != (max(1, ceiling), fixed):
            limiter = EndpointLimiter(
                settings.host,
                settings.base_url,
                settings.model,
                ceiling,
                fixed=fixed,
                table=self.learned,
            )
            self._limiters[key] = limiter
        return limiter
