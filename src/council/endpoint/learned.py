"""What was learned about each endpoint and model: its capacity, context window, tokenizer.

The limiter writes `capacity` when a server turns calls away, `took` when it took
calls at once without turning one away, and `slots` when the server states them
(llama.cpp's `GET /props`); fitting writes
`context_window` when a server states it or refuses a prompt as too long, and the
prompt counts (`token_ratio`, `counted`, `largest_count`) when a server counts a
prompt it was sent. A `LearnedTable` holds the records; an `EndpointPool` owns one
(`pool.py`), so what is learned lives as long as the pool, not the process. The
application layer seeds the table from the history before a run and saves it
after (the endpoint package never imports the store), so the next run starts from
what the last one learned; the prompt counts are not kept.

    table = LearnedTable()
    learned = table.learned_for("http://127.0.0.1:8080/v1", "llama3.1")
    learned.capacity, learned.context_window
"""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["KEPT", "Learned", "LearnedTable"]

# What a run's history keeps of a record (`app/limits.py`); the prompt counts are not kept.
KEPT = ("capacity", "context_window", "took", "slots", "window_source", "learned_at")


@dataclass
class Learned:
    """Limits learned for one endpoint (base URL) and model; None means not learned yet.

    `window_source` says where the context window came from: "profile", "server"
    (its own description), "error" (a context error's numbers), "cut prompt" (the
    server counted a large prompt at a fraction of its size: it cut it to its window)
    or "history".
    """

    capacity: int | None = None
    context_window: int | None = None
    took: int | None = None  # the most calls it took at once without turning one away
    slots: int | None = None  # what the server states it has; 0: asked, it states none
    window_source: str | None = None
    learned_at: float | None = None
    # What the server counted of prompts we had estimated (engine/fit.py), not kept
    # between runs: its count over our estimate at most (never below 1: the estimate only
    # ever grows more careful), whether it counted any, and the largest prompt it counted
    # (its window holds at least that).
    token_ratio: float = 1.0
    counted: bool = False
    largest_count: int = 0

    def touch(self) -> None:
        self.learned_at = time.time()


class LearnedTable:
    """Learned records by (base URL, model); a record is made empty on first use."""

    def __init__(self) -> None:
        self._records: dict[tuple[str, str], Learned] = {}

    def learned_for(self, base_url: str, model: str) -> Learned:
        """The (shared, mutable) record for `base_url` and `model`, created empty when new."""
        return self._records.setdefault((base_url.rstrip("/"), model), Learned())

    def seed(self, base_url: str, model: str, kept: Learned) -> None:
        """Start from what an earlier run learned (the app calls this before a run).

        Into the record in place: a limiter of a pool shared by runs holds it, and what
        the server counted of prompts is not kept between runs, so it stays.
        """
        record = self.learned_for(base_url, model)
        for name in KEPT:
            setattr(record, name, getattr(kept, name))

    def snapshot(self) -> dict[tuple[str, str], Learned]:
        """Everything learned so far, to be saved after a run."""
        return dict(self._records)
