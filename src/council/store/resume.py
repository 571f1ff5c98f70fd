"""Continuing an unfinished deliberation from the history, asking only what is missing.

The recorded plan holds the exact first-round messages (the question as sent,
context included, and every persona's system prompt) and the arbiter's prompt, so
the resumed council is the one that started, even if persona files changed since.
Kept, answered calls become a `ResumeState`; the engine reuses them and asks the rest.

A run that was resumed before (a later run's `resumed_from` names it) may be resumed
again, from its own record: `ResumedCouncil.resumed_as` lists those later runs, so
that the caller can say so before any token is spent.

A run still going in another process (its lock is held: `council.store.liveness`)
is not resumed: its calls would be asked twice. The lock is taken, not looked at:
of two resumes started at once, one holds it and the other is refused. A row left
`running` by a process that died is resumed like an interrupted one.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from council.config.personas import Persona
from council.engine.model import CallOutcome, Mode, ResumeState
from council.errors import UsageError
from council.store.db import HistoryDB
from council.store.liveness import RunLock

__all__ = [
    "EarlierResume",
    "ResumedCouncil",
    "load_resume",
    "recorded_persona",
    "recorded_settings",
]

# "died": a "running" row whose process is gone, as `history` and `show` call it.
RESUMABLE = ("interrupted", "crashed", "running", "died", "partial", "failed")


@dataclass(frozen=True)
class EarlierResume:
    """A run that resumed this one before: its id, when it started (unix time), its status."""

    run_id: str
    started_at: float
    status: str

    @property
    def resumable(self) -> bool:
        return self.status in RESUMABLE


@dataclass(frozen=True)
class ResumedCouncil:
    """What `deliberate --resume` needs to rebuild the plan, and the answers to reuse."""

    run_id: str
    query: str
    question: str
    personas: list[Persona]
    arbiter: Persona
    settings: dict[str, Any]  # rounds, threshold, speculative, max_wasted_tokens
    endpoint: dict[str, Any]  # base_url, model, api_key_env, api_key_name as the run used them
    preset: str | None
    state: ResumeState
    # Runs that resumed this one already, oldest first: resuming again asks again.
    resumed_as: tuple[EarlierResume, ...] = ()
    # The run's model options (`-o`), as its plan recorded them.
    options: dict[str, Any] = field(default_factory=dict)
    # The run's lock, held by this process from the check on (None: none could be made).
    lock: RunLock | None = field(default=None, compare=False)


def recorded_persona(call: dict[str, Any], default_model: str) -> Persona:
    messages = call.get("messages") or []
    system = next((m["content"] for m in messages if m.get("role") == "system"), "")
    model = call.get("model")
    return Persona(
        name=call["persona"],
        description="resumed from the history",
        system=system,
        model=model if model and model != default_model else None,
        temperature=call.get("temperature"),
        max_tokens=call.get("max_tokens"),
    )


def recorded_settings(plan: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A recorded plan's settings (rounds, threshold, speculative, max_wasted_tokens) and
    endpoint (base_url, model, api_key_env, api_key_name), as a later run layers them
    below its flags."""
    endpoint = plan.get("endpoint") or {}
    settings = {
        key: plan.get(key) for key in ("rounds", "threshold", "speculative", "max_wasted_tokens")
    }
    return settings, {
        "base_url": endpoint.get("base_url"),
        "model": plan.get("model") or "",
        "api_key_env": endpoint.get("api_key_env"),
        "api_key_name": endpoint.get("api_key_name"),  # a stored key's name, if one
    }


def _refuse_live(run_id: str) -> UsageError:
    return UsageError(
        f"run {run_id} is still going in another council process (or being resumed there)",
        "wait for it to end, or stop it (Ctrl-C) and resume it then",
    )


def _take(history: HistoryDB, run_id: str) -> RunLock | None:
    """The run's lock, taken: the check that nobody runs it and the claim are one step.

    Two `council resume ID` started at once: one takes it, the other is refused. None
    where no lock can be made here (a read-only directory): liveness is unknown.
    """
    lock = RunLock.hold(history.path, run_id)
    if lock is None and RunLock.held(history.path, run_id):
        raise _refuse_live(run_id)
    return lock


def load_resume(history: HistoryDB, run_id: str) -> ResumedCouncil:
    """The council of an unfinished `deliberate` run and its answers; UsageError if it can't be.

    The run's lock is taken first and kept on the result (`lock`): the caller holds it
    until its resumed run ends, and releases it.
    """
    lock = _take(history, run_id)  # by the id given: its row may not be written yet
    try:
        rid = history.find_run(run_id)["id"]
        if rid != run_id:  # a prefix: the lock is the full id's
            if lock is not None:
                lock.release()
                lock = None  # not released twice if the full id's is refused
            lock = _take(history, rid)
        resumed = _load(history, rid)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return dataclasses.replace(resumed, lock=lock)


def _load(history: HistoryDB, rid: str) -> ResumedCouncil:
    """The council of run `rid`, whose lock this process holds."""
    run = history.find_run(rid)
    if run["command"] != Mode.DELIBERATE:
        raise UsageError(
            f"run {rid} was made by 'council {run['command']}'; only deliberations resume",
            f"see what it got with 'council show {rid}', or ask again",
        )
    if run["status"] not in RESUMABLE:
        raise UsageError(
            f"run {rid} finished ({run['status']}); there is nothing to resume",
            f"see it with 'council show {rid}'",
        )
    if not run["store_text"]:
        raise UsageError(
            f"run {rid} was recorded without its texts (--no-store-text)",
            "it cannot be resumed; start the council again",
        )
    plan = json.loads(run["plan"])
    model = plan.get("model") or ""
    calls = plan.get("calls") or []
    first_round = [c for c in calls if c.get("role") == "persona" and c.get("round") == 1]
    verdict = next((c for c in calls if c.get("role") == "arbiter"), None)
    if not first_round or verdict is None:
        raise UsageError(f"run {rid} has no recorded plan to resume from", "start it again")
    question = next(m["content"] for m in first_round[0]["messages"] if m["role"] == "user")
    state = ResumeState(run_id=rid)
    for row in history.calls(rid):
        if row["status"] != "answered" or not row["kept"] or row["text"] is None:
            continue
        answer = CallOutcome(
            persona=row["persona"],
            role=row["role"],
            text=row["text"],
            latency=row["latency"] or 0.0,
            ttft=row["ttft"],
            tokens_in=row["tokens_in"],
            tokens_out=row["tokens_out"],
            retries=row["retries"] or 0,
            finish_reason=row["finish_reason"],
            reasoning=row["reasoning"],
        )
        if row["role"] == "arbiter":
            state.verdicts[row["round"]] = answer
        else:
            state.answers.setdefault(row["round"], {})[row["persona"]] = answer
    settings, endpoint = recorded_settings(plan)
    return ResumedCouncil(
        run_id=rid,
        query=run["query"] or plan.get("query") or "",
        question=question,
        personas=[recorded_persona(c, model) for c in first_round],
        arbiter=recorded_persona(verdict, model),
        settings=settings,
        endpoint=endpoint,
        preset=run["preset"],
        state=state,
        resumed_as=tuple(
            EarlierResume(row["id"], row["started_at"], row["status"])
            for row in history.resumes_of(rid)
        ),
        options=dict(plan.get("options") or {}),
    )
