"""Answers stored once: a run's document and Markdown refer to its calls' texts.

Each answer was in the history three times: `calls.text`, the `--json` document kept
for `council show` (`runs.document`) and the Markdown it printed (`runs.markdown`);
a 50 MB answer took 150 MB. Now a long answer (SHARED_FROM characters or more) is kept
in `calls.text` only; where the document held it stands `{"$call": "<call id>"}`,
and the Markdown, where it quoted one, is kept as JSON `{"$calls": [text, ref, ...]}`
whose references stand for the stripped answer (as the Markdown shows it). Rebuilt,
each is exactly what was recorded; one written before this holds plain texts and is
read as it is.

    stored = stored_document(document, by_text)      # by_text: {answer text: call id}
    document == full_document(stored, by_id)          # by_id: {call id: answer text}
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "SHARED_FROM",
    "full_document",
    "full_markdown",
    "refers",
    "stored_document",
    "stored_markdown",
]

# A shorter text is cheaper stored again than referred to.
SHARED_FROM = 256
_REF = "$call"
_MARKDOWN = "$calls"
_MARKER = '{"' + _MARKDOWN + '"'


def stored_document(document: Any, by_text: dict[str, str]) -> Any:
    """`document` with each long string that is a call's text replaced by a reference."""
    if isinstance(document, str):
        call_id = by_text.get(document) if len(document) >= SHARED_FROM else None
        return document if call_id is None else {_REF: call_id}
    if isinstance(document, dict):
        return {key: stored_document(value, by_text) for key, value in document.items()}
    if isinstance(document, list):
        return [stored_document(value, by_text) for value in document]
    return document


def refers(stored: str | None) -> bool:
    """Might this stored document or Markdown refer to calls' texts (cheap: no parsing)?"""
    return stored is not None and ('"' + _REF + '"' in stored or stored.startswith(_MARKER))


def full_document(stored: Any, by_id: dict[str, str]) -> Any:
    """A stored document with its references replaced by the calls' texts."""
    if isinstance(stored, dict):
        if set(stored) == {_REF} and stored[_REF] in by_id:
            return by_id[stored[_REF]]
        return {key: full_document(value, by_id) for key, value in stored.items()}
    if isinstance(stored, list):
        return [full_document(value, by_id) for value in stored]
    return stored


def stored_markdown(markdown: str, by_text: dict[str, str]) -> str:
    """The Markdown as kept: itself, or JSON pieces when it quoted long answers."""
    pieces: list[Any] = [markdown]
    for text, call_id in by_text.items():
        shown = text.strip()
        if len(shown) < SHARED_FROM:
            continue
        split: list[Any] = []
        for piece in pieces:
            if not isinstance(piece, str) or shown not in piece:
                split.append(piece)
                continue
            for index, part in enumerate(piece.split(shown)):
                if index:
                    split.append({_REF: call_id})
                split.append(part)
        pieces = split
    if len(pieces) == 1 and not markdown.startswith(_MARKER):
        return markdown
    return json.dumps({_MARKDOWN: pieces}, ensure_ascii=False)


def full_markdown(stored: str, by_id: dict[str, str]) -> str:
    """The Markdown as it was printed, from what `stored_markdown` kept."""
    if not stored.startswith(_MARKER):
        return stored
    try:
        pieces = json.loads(stored)[_MARKDOWN]
    except (ValueError, KeyError, TypeError):
        return stored
    if not isinstance(pieces, list):
        return stored
    out = []
    for piece in pieces:
        if isinstance(piece, dict):
            text = by_id.get(str(piece.get(_REF)))
            out.append("" if text is None else text.strip())
        else:
            out.append(str(piece))
    return "".join(out)
