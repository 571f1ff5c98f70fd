"""What this process learned about each endpoint and model: its capacity and context window.

The limiter writes `capacity` when a server turns calls away, `took` when it took
calls at once without turning one away, and `slots` when the server states them
(llama.cpp's `GET /props`); fitting writes
`context_window` when a server states it or refuses a prompt as too long. The
application layer seeds this table from the history before a run and saves it
after (the endpoint package never imports the store), so the next run starts from
what the last one learned.

    learned = learned_for("http://127.0.0.1:8080/v1", "llama3.1")
    learned.capacity, learned.context_window
"""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["Learned", "forget_all", "learned_for", "seed", "snapshot"]


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

    def touch(self) -> None:
        self.learned_at = time.time()


_TABLE: dict[tuple[str, str], Learned] = {}


def learned_for(base_url: str, model: str) -> Learned:
    """The (shared, mutable) record for `base_url` and `model`, created empty when new."""
    return _TABLE.setdefault((base_url.rstrip("/"), model), Learned())


def seed(base_url: str, model: str, learned: Learned) -> None:
    """Start from what an earlier run learned (the app calls this before a run)."""
    _TABLE[(base_url.rstrip("/"), model)] = learned


def snapshot() -> dict[tuple[str, str], Learned]:
    """Everything learned so far, to be saved after a run."""
    return dict(_TABLE)


def forget_all() -> None:
    """Drop everything learned in this process (tests, and `endpoints reset`)."""
    _TABLE.clear()
