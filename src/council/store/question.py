"""The question stored once: how a run's plan and document refer to it, and how they are rebuilt.

A run's question was in the history many times over: `runs.query`, the plan's
`query`, every recorded call's messages (the question as sent, context files
included, in each persona's call, the arbiter's and a round-2 example), and the
`--json` document's `query`. A 200 kB question with its context made a megabyte.

Now `runs.query` holds the query; the plan holds the question as sent once, under
`$question`, itself with a reference where the query stands; and every text that
held them holds references instead:

    {"$": "query"}                                   the query itself
    {"$with": "question", "parts": ["", "\\n..."]}   "question".join(parts)

A plan or document written before this holds plain strings and is read as it is.
Rebuilt, each is exactly what was recorded before (`council show --json`,
`history export` and `deliberate --resume` see no difference).

    stored = stored_plan(plan, query)             # what the recorder writes
    plan == full_plan(stored, query)              # what every reader gets back
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["full_document", "full_plan", "stored_document", "stored_plan"]

_QUESTION = "$question"


def _split(text: str, name: str, value: str) -> Any:
    """`text` with each `value` in it replaced by a reference to `name` (when there is one)."""
    if not value or value not in text:
        return text
    return {"$with": name, "parts": text.split(value)}


def _join(stored: Any, values: dict[str, str | None]) -> Any:
    """A stored text rebuilt: references replaced by the values they name."""
    if isinstance(stored, dict) and set(stored) == {"$"}:
        return values.get(stored["$"])
    if isinstance(stored, dict) and set(stored) == {"$with", "parts"}:
        value = values.get(stored["$with"])
        if value is None:
            return stored  # nothing to rebuild it with (texts not stored): leave it as it is
        return value.join(stored["parts"])
    return stored


def _messages(plan: dict[str, Any]) -> list[dict[str, Any]]:
    calls = plan.get("calls")
    if not isinstance(calls, list):
        return []
    found: list[dict[str, Any]] = []
    for call in calls:
        messages = call.get("messages") if isinstance(call, dict) else None
        if isinstance(messages, list):
            found += [m for m in messages if isinstance(m, dict)]
    return found


def _question_as_sent(plan: dict[str, Any]) -> str | None:
    """The first call's user message: the question as sent to every persona in round 1."""
    calls = plan.get("calls")
    if not isinstance(calls, list) or not calls or not isinstance(calls[0], dict):
        return None
    users = [m for m in calls[0].get("messages") or [] if m.get("role") == "user"]
    content = users[-1].get("content") if users else None
    return content if isinstance(content, str) and content else None


def stored_plan(plan: dict[str, Any], query: str | None) -> dict[str, Any]:
    """The plan as the history keeps it: the question once, references where it stood."""
    if not query or plan.get("query") != query:
        return plan
    stored = copy.deepcopy(plan)
    stored["query"] = {"$": "query"}
    question = _question_as_sent(plan)
    if question is not None:
        for message in _messages(stored):
            content = message.get("content")
            if isinstance(content, str):
                message["content"] = _split(content, "question", question)
        stored[_QUESTION] = _split(question, "query", query)
    return stored


def full_plan(stored: dict[str, Any], query: str | None) -> dict[str, Any]:
    """A recorded plan as it was run: every reference replaced by what it stands for."""
    if _QUESTION not in stored and stored.get("query") != {"$": "query"}:
        return stored  # recorded before the question was stored once
    plan = dict(stored)
    question = _join(plan.pop(_QUESTION, None), {"query": query})
    values = {"query": query, "question": question if isinstance(question, str) else None}
    plan["query"] = _join(plan.get("query"), values)
    if isinstance(plan.get("calls"), list):
        plan["calls"] = copy.deepcopy(plan["calls"])
        for message in _messages(plan):
            message["content"] = _join(message.get("content"), values)
    return plan


def stored_document(document: dict[str, Any], query: str | None) -> dict[str, Any]:
    """A `--json` document as the history keeps it: its `query` a reference."""
    if not query or document.get("query") != query:
        return document
    return {**document, "query": {"$": "query"}}


def full_document(stored: dict[str, Any], query: str | None) -> dict[str, Any]:
    if stored.get("query") != {"$": "query"}:
        return stored
    return {**stored, "query": query}
