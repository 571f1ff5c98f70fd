"""What a follow-up (`council oracle --continue`) continues: an earlier run's council and
the conversation so far, read from the history.

The conversation is every question and answer of the chain of runs that continued
each other, oldest first: a follow-up's own question is recorded folded after the
conversation it was given (`with_conversation`), so it is taken back out by removing
that same prefix. The council (personas with their system prompts as sent, arbiter,
endpoint, model, settings, model options) is the recorded plan's, as `--resume` reads it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from council.config.personas import Persona
from council.engine.model import Mode
from council.errors import UsageError
from council.store.db import HistoryDB
from council.store.resume import recorded_persona, recorded_settings

__all__ = ["EarlierRun", "load_earlier"]

# A chain of follow-ups longer than this is not walked further (and a loop never).
_MOST_TURNS = 100

_COMMANDS = (Mode.ORACLE.value, Mode.DELIBERATE.value)

# `with_conversation(question, turns)`, passed in: the store does not import the app.
Folder = Callable[[str, list[dict[str, str]]], str]


@dataclass(frozen=True)
class EarlierRun:
    """The run a follow-up continues: its council and the conversation up to its answer."""

    run_id: str
    command: str
    conversation: list[dict[str, str]]  # {"role": "user"|"assistant", "content": ...}
    personas: list[Persona]
    # The arbiter as it was asked, where the plan holds its prompt (a deliberation's);
    # else by name only (an oracle's synthesis is written after the answers).
    arbiter: Persona | None
    arbiter_name: str | None  # None: the run had no arbiter (an oracle without -s)
    settings: dict[str, Any]  # rounds, threshold, speculative, max_wasted_tokens
    endpoint: dict[str, Any]  # base_url, model, api_key_env as the run used them
    preset: str | None
    options: dict[str, Any] = field(default_factory=dict)


def _latest_id(history: HistoryDB) -> str:
    row = history.db.execute(
        "SELECT id FROM runs WHERE command IN (?, ?) ORDER BY started_at DESC, id DESC LIMIT 1",
        _COMMANDS,
    ).fetchone()
    if row is None:
        raise UsageError(
            f"no earlier council oracle or deliberate run in {history.path} to continue",
            'ask a question first, e.g. council oracle "..."',
        )
    return str(row["id"])


def _answer(run: dict[str, Any]) -> str:
    """The council's answer as the run printed it: the synthesis (or verdict, or the
    majority), else every member's answer under its name; UsageError when there is none."""
    rid = run["id"]
    if not run["store_text"]:
        raise UsageError(
            f"run {rid} was recorded without its texts (--no-store-text): there is no "
            "answer to continue from",
            "ask the question again with the context it needs",
        )
    try:
        document = json.loads(run["document"] or "null")
    except ValueError:
        document = None
    if isinstance(document, dict):
        answer = document.get("answer") or {}
        if isinstance(answer.get("text"), str) and answer["text"].strip():
            return str(answer["text"])
        members = [
            f"{a['persona']}: {a['text'].strip()}"
            for a in document.get("answers") or []
            if isinstance(a, dict) and isinstance(a.get("text"), str) and a["text"].strip()
        ]
        if members:
            return "\n\n".join(members)
    raise UsageError(
        f"run {rid} ({run['status']}) has no answer to continue from",
        f"see it with 'council show {rid}', or continue another run with --continue-from ID",
    )


def _conversation(history: HistoryDB, run: dict[str, Any], fold: Folder) -> list[dict[str, str]]:
    """The chain's turns up to and including `run`'s answer, oldest first."""
    chain = [run]
    while chain[-1].get("continued_from") and len(chain) < _MOST_TURNS:
        try:
            earlier = history.find_run(chain[-1]["continued_from"])
        except UsageError:  # pruned or deleted: the conversation starts after it
            break
        if any(earlier["id"] == r["id"] for r in chain):
            break
        chain.append(earlier)
    turns: list[dict[str, str]] = []
    for index, step in enumerate(reversed(chain)):
        query = step["query"] or ""
        if index and turns:  # asked after the turns before it: take them back out
            prefix = fold("", turns)
            query = query.removeprefix(prefix)
        try:
            answer = _answer(step)
        except UsageError:
            if step is run:
                raise
            continue  # an earlier step without its answer: left out, the rest still reads
        turns += [
            {"role": "user", "content": query},
            {"role": "assistant", "content": answer},
        ]
    return turns


def load_earlier(history: HistoryDB, run_id: str | None, fold: Folder) -> EarlierRun:
    """The run to continue (None: the latest oracle or deliberate run); UsageError when
    there is none, it is unknown, or it has no answer."""
    run = history.find_run(run_id if run_id is not None else _latest_id(history))
    rid = run["id"]
    if run["command"] not in _COMMANDS:
        raise UsageError(
            f"run {rid} was made by 'council {run['command']}'; only oracle and deliberate "
            "runs take follow-ups",
            "give the id of one of those ('council history' lists them)",
        )
    conversation = _conversation(history, run, fold)
    plan = json.loads(run["plan"])
    model = plan.get("model") or ""
    calls = plan.get("calls") or []
    first = [c for c in calls if c.get("role") == "persona" and c.get("round") == 1]
    arbiter = next((c for c in calls if c.get("role") == "arbiter"), None)
    settings, endpoint = recorded_settings(plan)
    return EarlierRun(
        run_id=rid,
        command=run["command"],
        conversation=conversation,
        personas=[recorded_persona(c, model) for c in first],
        arbiter=recorded_persona(arbiter, model) if arbiter else None,
        arbiter_name=plan.get("arbiter") if isinstance(plan.get("arbiter"), str) else None,
        settings=settings,
        endpoint=endpoint,
        preset=run["preset"],
        options=dict(plan.get("options") or {}),
    )
