"""Writes the history on a thread of its own, so that a locked database never stalls a run.

The recorder is an event subscriber, so it runs on the engine's event loop. SQLite
waits (up to the busy timeout, 10 s) while another council process holds the write
lock, and every stream, timer and the live view would wait with it. The recorder
hands its statements to this writer instead: they queue, and one thread executes
them in order.

    writer = HistoryWriter(path)                # opens the file on the writer's thread
    writer.write("UPDATE runs SET ...", (...))  # returns at once
    writer.close()                              # waits until every statement is written
    writer.problem                              # None, or why the history is incomplete

After the first failure nothing more is written (a run half recorded is better
than one recorded out of order), and `problem` says why.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from council.errors import CouncilError
from council.store.db import HistoryDB

__all__ = ["HistoryWriter"]

Parameters = tuple[Any, ...] | dict[str, Any]


class HistoryWriter:
    """A queue of SQL statements and the thread that executes them on one history."""

    def __init__(
        self,
        path: Path,
        open_history: Callable[[], HistoryDB] | None = None,
        *,
        owns: bool = True,
    ) -> None:
        """Write to the history at `path`, opened (on the writer's thread) by `open_history`.

        With `owns`, the writer closes the history when it is done.
        """
        self.path = path
        self.problem: str | None = None
        self.history: HistoryDB | None = None
        self._queue: queue.SimpleQueue[tuple[str, Parameters] | None] = queue.SimpleQueue()
        self._closed = False
        # A daemon: should the main thread die without close(), the process still exits.
        opener = open_history or (lambda: HistoryDB.open(path))
        self._thread = threading.Thread(
            target=self._run, args=(opener, owns), name="council-history", daemon=True
        )
        self._thread.start()

    @classmethod
    def on(cls, history: HistoryDB) -> HistoryWriter:
        """A writer for a history opened already, which its owner keeps and closes."""
        return cls(history.path, lambda: history, owns=False)

    def write(self, sql: str, parameters: Parameters = ()) -> None:
        """Queue one statement (each is its own transaction, in the order queued)."""
        if self._closed:
            raise RuntimeError("the history writer is closed")
        self._queue.put((sql, parameters))

    def close(self) -> None:
        """Wait until every statement queued is written (or the writer gave up), then stop."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
        self._thread.join()

    def _run(self, open_history: Callable[[], HistoryDB], owns: bool) -> None:
        try:
            self.history = open_history()
        except CouncilError as error:
            self.problem = f"{error.one_line()}; this run is not recorded"
        except Exception as exc:  # a bug: said at the end of the run, never raised into it
            self.problem = f"history not recorded ({type(exc).__name__}: {exc})"
        while (item := self._queue.get()) is not None:
            if self.history is None or self.problem is not None:
                continue  # drain: close() must not wait for statements never run
            try:
                self.history.write(*item)
            except sqlite3.Error as exc:
                self.problem = f"history not recorded ({exc}); the run itself is unaffected"
            except Exception as exc:  # e.g. a value SQLite cannot bind
                self.problem = (
                    f"history not recorded ({type(exc).__name__}: {exc}); "
                    "the run itself is unaffected"
                )
        if owns and self.history is not None:
            self.history.close()
