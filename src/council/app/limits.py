"""Carries what was learned about endpoints across runs: history → a pool's table → history.

    pool = EndpointPool()
    seed_learned([endpoint], pool)   # before a run: the limiter and fitting start from it
    save_learned([endpoint], pool)   # after it (also when stopped): the next run starts from it

The endpoint package learns into its `EndpointPool`'s table (`council.endpoint.learned`)
and never imports the store; this module is the one place that moves rows between the
two. A history that cannot be used costs nothing but the memory: the run goes on as if
nothing was kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from council.config.endpoint_settings import EndpointSettings
from council.endpoint.learned import Learned
from council.errors import CouncilError
from council.store.limits import KeptLimit, load_limits, normalize_url, save_limits

if TYPE_CHECKING:
    from council.endpoint.pool import EndpointPool

__all__ = ["origin_of", "save_learned", "seed_learned"]


def origin_of(endpoint: EndpointSettings) -> str:
    """Where the endpoint's URL came from: "profile NAME", "--base-url", "env" or the source."""
    source = endpoint.sources.get("base_url", "default")
    if source.startswith("endpoint "):
        return "profile " + source.removeprefix("endpoint ").split(" ", 1)[0]
    if "--base-url" in source:
        return "--base-url"
    if "_BASE_URL" in source:
        return "env"
    return source


def _remote(endpoints: Iterable[EndpointSettings]) -> dict[str, EndpointSettings]:
    """The endpoints worth remembering, by normalised URL; the embedded `local` one changes
    its port every run and stays at one call at a time anyway."""
    return {normalize_url(e.base_url): e for e in endpoints if e.local_model_path is None}


def seed_learned(endpoints: Iterable[EndpointSettings], pool: EndpointPool) -> None:
    """Put what earlier runs learned about these endpoints into the pool's table (once per
    endpoint and pool: a pool shared by many runs has learned more since)."""
    from council.store.db import HistoryDB

    wanted = {url: e for url, e in _remote(endpoints).items() if url not in pool.seeded}
    pool.seeded.update(wanted)
    path = HistoryDB.default_path()
    if not wanted or not path.exists():
        return
    try:
        with HistoryDB.open(path) as db:
            for url, endpoint in wanted.items():
                for row in load_limits(db, url):
                    pool.learned.seed(
                        endpoint.base_url,
                        row.model,
                        Learned(
                            capacity=row.capacity,
                            context_window=row.context_window,
                            window_source=row.window_source,
                            learned_at=row.learned_at,
                            took=row.took,
                            slots=row.slots,
                        ),
                    )
    except CouncilError:
        return  # the recorder says once, after the run, that the history is unusable


def save_learned(endpoints: Iterable[EndpointSettings], pool: EndpointPool) -> None:
    """Keep what the pool learned about these endpoints in the history."""
    from council.store.db import HistoryDB

    wanted = _remote(endpoints)
    rows = []
    for (url, model), seen in pool.learned.snapshot().items():
        endpoint = wanted.get(normalize_url(url))
        known = (seen.capacity, seen.context_window, seen.took, seen.slots)
        if endpoint is None or all(value is None for value in known):
            continue
        rows.append(
            KeptLimit(
                url,
                model,
                seen.capacity,
                seen.context_window,
                seen.window_source,
                seen.learned_at,
                origin_of(endpoint),
                seen.took,
                seen.slots,
            )
        )
    if not rows:
        return
    try:
        with HistoryDB.open() as db:
            save_limits(db, rows)
    except CouncilError:
        return
