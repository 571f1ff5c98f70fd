"""The limits learned per endpoint and model, kept in the history between runs.

    with HistoryDB.open() as db:
        rows = load_limits(db, "http://127.0.0.1:8080/v1")   # that endpoint's models
        save_limits(db, [KeptLimit(...)])                    # what a run learned
        forget_limits(db, "http://127.0.0.1:8080/v1")        # `endpoints reset`

Rows are keyed by the normalised base URL (`normalize_url`) and the model, so that
`HTTP://Host:80/v1/` and `http://host/v1` are one endpoint. The store knows only rows:
the application layer turns them into what the endpoint package learns with.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from council.store.db import HistoryDB

__all__ = ["KeptLimit", "forget_limits", "load_limits", "normalize_url", "save_limits"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_url(url: str) -> str:
    """scheme://host:port/path, lower-cased where case does not matter, no trailing slash."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is not a number: keep the text as given
        return url.strip().rstrip("/")
    netloc = f"{host}:{port}" if port else host
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


@dataclass(frozen=True)
class KeptLimit:
    """One endpoint and model's learned limits, as the history keeps them."""

    base_url: str
    model: str
    capacity: int | None
    context_window: int | None
    window_source: str | None
    learned_at: float | None
    origin: str | None = None  # where the URL came from: "profile NAME", "--base-url", "env"
    took: int | None = None  # the most calls it took at once without turning one away
    slots: int | None = None  # the slots it states (llama.cpp /props); 0: asked, none stated


_COLUMNS = (
    "base_url, model, capacity, context_window, window_source, learned_at, origin, took, slots"
)


def load_limits(db: HistoryDB, base_url: str | None = None) -> list[KeptLimit]:
    """Everything kept, or only `base_url`'s (any spelling of it), oldest endpoint first."""
    sql = f"SELECT {_COLUMNS} FROM endpoint_limits"
    parameters: tuple[str, ...] = ()
    if base_url is not None:
        sql += " WHERE base_url = ?"
        parameters = (normalize_url(base_url),)
    rows = db.db.execute(sql + " ORDER BY base_url, model", parameters).fetchall()
    return [KeptLimit(*tuple(row)) for row in rows]


def save_limits(db: HistoryDB, limits: list[KeptLimit]) -> None:
    """Keep each row; a value not learned this time keeps what an earlier run learned."""
    for limit in limits:
        db.write(
            f"INSERT INTO endpoint_limits ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (base_url, model) DO UPDATE SET "
            "capacity = COALESCE(excluded.capacity, capacity), "
            "context_window = COALESCE(excluded.context_window, context_window), "
            "window_source = CASE WHEN excluded.context_window IS NULL THEN window_source "
            "ELSE excluded.window_source END, "
            "learned_at = COALESCE(excluded.learned_at, learned_at), "
            "origin = COALESCE(excluded.origin, origin), "
            "took = COALESCE(excluded.took, took), "
            "slots = COALESCE(excluded.slots, slots)",
            (
                normalize_url(limit.base_url),
                limit.model,
                limit.capacity,
                limit.context_window,
                limit.window_source,
                limit.learned_at,
                limit.origin,
                limit.took,
                limit.slots,
            ),
        )


def forget_limits(db: HistoryDB, base_url: str) -> int:
    """Forget what was learned about `base_url` (every model); how many rows went."""
    cursor = db.db.execute(
        "DELETE FROM endpoint_limits WHERE base_url = ?", (normalize_url(base_url),)
    )
    return cursor.rowcount
