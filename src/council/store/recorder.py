"""Writes a run's events into the history as they happen (a subscriber of the event bus).

    recorder = Recorder(HistoryWriter(path), command="oracle", plan=plan.to_dict(),
                        store_text=True)
    bus.subscribe(recorder.handle)             # calls are written as they finish
    ...
    recorder.finish(document=..., markdown=..., answer=...)
    recorder.close()                           # every write done; recorder.problem says if not

The recorder runs on the engine's event loop, so it never waits on SQLite: its
statements go to a `HistoryWriter`, whose own thread executes them. The question is
stored once (`council.store.question`). While the run goes, its process holds the
run's lock (`council.store.liveness`), so a live run is never resumed as if it had
died. Never stored: an API key or any header.
With `store_text` off, the metrics are kept but not the question, the context, the
answers or the rendered output.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from council.engine.events import (
    CallCancelled,
    CallEnded,
    CallFailed,
    CallRetrying,
    CallStarted,
    Event,
    LimitChanged,
    RoundDiscarded,
    RunFinished,
    RunStarted,
)
from council.errors import ErrorKind
from council.store import texts
from council.store.db import HistoryDB
from council.store.liveness import RunLock
from council.store.question import stored_document, stored_plan
from council.store.texts import SHARED_FROM
from council.store.writer import HistoryWriter

__all__ = ["RecordOptions", "Recorder"]


@dataclass(frozen=True)
class RecordOptions:
    """How a run is recorded in the history (None instead of this: not at all)."""

    store_text: bool = True
    preset: str | None = None
    resumed_from: str | None = None
    continued_from: str | None = None  # the run a follow-up (`--continue`) continued


@dataclass
class _Call:
    speculative: bool = False
    started: float | None = None
    rate_limited: int = 0
    model: str | None = None
    endpoint_host: str | None = None  # where it went; None: the run's own


class Recorder:
    """Writes a run's events into the history as they happen.

    A finished call is written the moment it ends (by the writer's thread), so a
    run that is interrupted or crashes keeps everything that finished; `close()`
    marks a run that never reported its end as crashed, and waits for the writes.
    A database error stops the recording (noted in `problem`) but never the run.
    Given a HistoryDB rather than a writer, the recorder writes to it through a
    writer of its own and leaves it open.
    """

    def __init__(
        self,
        history: HistoryDB | HistoryWriter,
        *,
        command: str,
        plan: dict[str, Any],
        store_text: bool,
        preset: str | None = None,
        resumed_from: str | None = None,
        continued_from: str | None = None,
    ) -> None:
        self.writer = history if isinstance(history, HistoryWriter) else HistoryWriter.on(history)
        self.command = command
        self.plan = plan if store_text else _without_text(plan)
        self.store_text = store_text
        self.preset = preset
        self.resumed_from = resumed_from
        self.continued_from = continued_from
        self.run_id: str | None = None
        self.finished = False
        self._query: str | None = None
        self._locks: list[RunLock] = []
        self._origin = 0.0
        self._calls: dict[str, _Call] = {}
        self._limit_changes: list[dict[str, object]] = []  # this run's, kept on its row
        self._endpoint_host: str | None = None
        self._texts: dict[str, str] = {}  # long answer texts stored -> their call's id

    @property
    def problem(self) -> str | None:
        """Why the history of this run is incomplete (None: it is not, as far as known yet)."""
        return self.writer.problem

    def handle(self, event: Event) -> None:
        if self.problem is not None:
            return
        self._handle(event)

    def _text(self, value: str | None) -> str | None:
        return value if self.store_text else None

    def _handle(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.run_id, self._origin = event.run_id, event.at
            self._endpoint_host = event.endpoint_host
            self._query = self._text(event.query)
            # This run is live, and so is the one it resumes: neither may be resumed meanwhile.
            for run_id in (event.run_id, self.resumed_from):
                lock = RunLock.hold(self.writer.path, run_id) if run_id else None
                if lock is not None:
                    self._locks.append(lock)
            self.writer.write(
                "INSERT INTO runs (id, started_at, command, query, preset, plan, status, "
                "store_text, resumed_from, continued_from) "
                "VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)",
                (
                    event.run_id,
                    time.time(),
                    self.command,
                    self._query,
                    self.preset,
                    json.dumps(stored_plan(self.plan, self._query), ensure_ascii=False),
                    int(self.store_text),
                    self.resumed_from,
                    self.continued_from,
                ),
            )
        elif isinstance(event, CallStarted):
            self._calls[event.call_id] = _Call(
                speculative=event.speculative,
                started=event.at - self._origin,
                model=event.model,
                endpoint_host=event.endpoint_host,
            )
        elif isinstance(event, CallRetrying):
            if event.error_kind == ErrorKind.RATE_LIMITED:
                self._calls.setdefault(event.call_id, _Call()).rate_limited += 1
        elif isinstance(event, CallEnded):
            if isinstance(event, CallFailed) and event.outcome.error_kind == ErrorKind.RATE_LIMITED:
                self._calls.setdefault(event.call_id, _Call()).rate_limited += 1
            self._insert_call(event)
        elif isinstance(event, RoundDiscarded):
            if event.item is None:
                self.writer.write(
                    "UPDATE calls SET kept = 0 WHERE run_id = ? AND round = ?",
                    (event.run_id, event.round),
                )
            else:  # one item's council in a batch: only its calls (ids "ITEM/...")
                prefix = f"{event.item}/"
                self.writer.write(
                    "UPDATE calls SET kept = 0 WHERE run_id = ? AND round = ? "
                    "AND substr(call_id, 1, ?) = ?",
                    (event.run_id, event.round, len(prefix), prefix),
                )
        elif isinstance(event, LimitChanged):
            change = {"host": event.host, "old": event.old, "new": event.new}
            self._limit_changes.append(change | {"reason": event.reason})
            self.writer.write(
                "UPDATE runs SET limit_changes = ? WHERE id = ?",
                (json.dumps(self._limit_changes, ensure_ascii=False), event.run_id),
            )
        elif isinstance(event, RunFinished):
            self.finished = True
            self.writer.write(
                "UPDATE runs SET status = ?, exit_code = ?, wall = ? WHERE id = ?",
                (event.status, event.exit_code, event.wall, event.run_id),
            )

    def _insert_call(self, event: CallEnded) -> None:
        """One row per call, written when it ends: answered, failed or cancelled."""
        call = self._calls.get(event.call_id, _Call())
        outcome = event.outcome
        if isinstance(event, CallCancelled):
            status, error_kind = "cancelled", event.reason  # interrupted, or superseded
        elif outcome.answered:
            status, error_kind = "answered", None
        elif outcome.error_kind == ErrorKind.NOT_AFFORDABLE:  # the budget's choice, not a failure
            status, error_kind = "not_started", outcome.error_kind
        else:
            status, error_kind = "failed", outcome.error_kind
        row = {
            "run_id": event.run_id,
            "call_id": event.call_id,
            "round": event.round,
            "persona": event.persona,
            "role": event.role,
            "model": call.model,
            "endpoint_host": call.endpoint_host or self._endpoint_host,
            "speculative": int(call.speculative),
            "kept": int(status != "cancelled"),
            "status": status,
            "error_kind": error_kind,
            "started": call.started,
            "ended": event.at - self._origin,
            # An outcome leaves unset what its kind does not have (a failure's tokens,
            # a cancelled call's ttft), so these are NULL where they were never known.
            "ttft": outcome.ttft,
            "latency": outcome.latency,
            "tokens_in": outcome.tokens_in,
            "tokens_out": outcome.tokens_out,
            "retries": outcome.retries,
            # An interrupted answer is kept as far as it streamed (status "cancelled").
            "text": self._text(outcome.text) if outcome.answered or outcome.partial else None,
            "rate_limited": call.rate_limited,
            "reused_from": outcome.reused_from,
            "finish_reason": outcome.finish_reason,
            "reasoning": self._text(outcome.reasoning),
            # Cut to fit the context window: by how much (numbers only, never text).
            "fitted": None if outcome.fitted is None else json.dumps(outcome.fitted.to_dict()),
            "queued": outcome.queued,
            "resends": outcome.resends,
            "cost_usd": outcome.cost_usd,
            "cost_estimated": int(outcome.cost_estimated),
            "prompt_cut_by_server": int(outcome.prompt_cut_by_server),
        }
        if row["text"] is not None and len(row["text"]) >= SHARED_FROM:
            self._texts[row["text"]] = event.call_id  # the document and Markdown refer to it
        columns = ", ".join(row)
        marks = ", ".join(f":{name}" for name in row)
        self.writer.write(f"INSERT OR REPLACE INTO calls ({columns}) VALUES ({marks})", row)

    def finish(
        self,
        *,
        answer: str | None,
        document: dict[str, Any],
        markdown: str,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        """Store what the run printed (for `council show`) and its run-level metrics."""
        if self.run_id is None or self.problem is not None:
            return
        stored = stored_document(document, self._query)
        stored = texts.stored_document(stored, self._texts)  # each answer once: calls.text
        values = {
            "answer": self._text(answer),
            "document": self._text(json.dumps(stored, ensure_ascii=False)),
            "markdown": self._text(texts.stored_markdown(markdown, self._texts)),
            **(metrics or {}),
        }
        assignments = ", ".join(f"{k} = :{k}" for k in values)
        self.writer.write(
            f"UPDATE runs SET {assignments} WHERE id = :id", {**values, "id": self.run_id}
        )

    def close(self) -> None:
        """Mark a run that never reported its end (a crash) as such; wait for every write."""
        if self.run_id is not None and not self.finished and self.problem is None:
            self.writer.write(
                "UPDATE runs SET status = 'crashed' WHERE id = ? AND status = 'running'",
                (self.run_id,),
            )
        self.writer.close()
        for lock in self._locks:  # after the last write: the row is final
            lock.release()


def _without_text(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan with the question, context and prompts taken out (`--no-store-text`)."""
    kept = {k: v for k, v in plan.items() if k not in ("query", "calls", "attachments")}
    kept["calls"] = [
        {k: v for k, v in call.items() if k != "messages"} for call in plan.get("calls", [])
    ]
    return kept
