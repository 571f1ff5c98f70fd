"""Reading a ballot from a model's reply, whatever shape it came in.

A persona is asked for `{"choice": ..., "confidence": 0..1, "reason": "..."}`
(in JSON mode where the endpoint supports it). Models wrap it in code fences or
prose, write "Choice: B", or answer with a bare "B", "(B)", "Option B" or "B.";
all of these are ballots. Choices are normalised (case, whitespace, trailing
punctuation; "Option B" is B when the choices are letters) so that equal
answers are counted together. A reply that cannot be read is an abstention,
never an exception: one odd reply must not cost the vote.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from council.engine.agreement import confidence_of
from council.engine.convergence import _json_objects
from council.engine.model import Ballot

__all__ = ["choice_key", "normalise_choice", "parse_choices", "read_ballot"]

# A reply this short (in words) with no other shape is read as the choice itself.
BARE_WORDS = 8
_CHOICE_KEYS = ("choice", "answer", "vote", "option")
_STATED = re.compile(
    r"^\W*(?:final\s+)?(?:choice|answer|vote|option)\s*[:=-]\s*(?P<choice>.+?)\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_CONFIDENCE = re.compile(r"confidence\W*[:=]\s*([0-9.]+\s*%?)", re.IGNORECASE)
_REASON = re.compile(r"^\W*(?:reason|because)\s*[:=-]\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
# "Option B", "(B)", "B.", "b)", "**B**": one letter, dressed.
_LETTER = re.compile(r"^(?:option|choice|answer)?\s*[(\[]?\s*([a-z])\s*[)\].:]?$", re.IGNORECASE)
_TRAILING = ".,;:!?。"


def parse_choices(value: str | None) -> tuple[str, ...]:
    """`--choices A,B,C,D` as a tuple of distinct choices, as given; () when not given."""
    if value is None:
        return ()
    seen: dict[str, str] = {}
    for item in value.split(","):
        item = " ".join(item.split())
        if item and choice_key(item) not in seen:
            seen[choice_key(item)] = item
    return tuple(seen.values())


def choice_key(text: str) -> str:
    """What two answers must share to count as one: case, spaces and trailing dots aside."""
    return " ".join(text.split()).strip(_TRAILING + " *_`\"'").casefold()


def _letters(choices: Sequence[str]) -> bool:
    return bool(choices) and all(len(c) == 1 and c.isalpha() for c in choices)


def normalise_choice(raw: str, choices: Sequence[str] = ()) -> str | None:
    """The choice `raw` names: one of `choices` as given (None when it names none), or,
    with no choices, the answer tidied (its case as written, its first spelling counts)."""
    text = " ".join(raw.strip().strip("*_`\"'").split()).rstrip(_TRAILING).strip()
    if not text:
        return None
    letter = _LETTER.match(text)
    if not choices:
        return letter.group(1).upper() if letter else text
    by_key = {choice_key(c): c for c in choices}
    if choice_key(text) in by_key:
        return by_key[choice_key(text)]
    if letter and _letters(choices):
        return by_key.get(letter.group(1).casefold())
    # "B) Rust, because ..." or "Yes, because ...": a choice leading a longer line.
    first = re.split(r"[\s,.;:)\]]+", text.lstrip("(["), maxsplit=1)[0]
    if first and choice_key(first) in by_key:
        return by_key[choice_key(first)]
    return None


def _from_json(data: dict[str, Any]) -> tuple[Any, Any, Any]:
    lowered = {str(k).casefold(): v for k, v in data.items()}
    choice = next((lowered[k] for k in _CHOICE_KEYS if k in lowered), None)
    return choice, lowered.get("confidence"), lowered.get("reason")


def _is_choice(value: Any) -> bool:
    """A JSON choice is a text or a number: a small model nests objects and lists in it,
    which are no choice (str() of them would become a choice of its own)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return False
    return bool(str(value).strip())


def _one_line(text: Any) -> str:
    return " ".join(str(text).split()) if text is not None else ""


def read_ballot(persona: str, reply: str, choices: Sequence[str] = ()) -> Ballot:
    """The ballot in `reply`: a JSON object with a choice, a "Choice: X" line, or a bare
    answer; an abstention (choice None, `raw_ok` False) saying why when none is there."""
    objects = _json_objects(reply)
    candidates = [o for o in objects if _is_choice(_from_json(o)[0])]
    if candidates:
        raw, confidence, reason = _from_json(candidates[0])
        return _ballot(persona, str(raw), confidence_of(confidence), _one_line(reason), choices)
    if any(_from_json(o)[0] is not None for o in objects):
        why = "the ballot's choice is not a text or a number"
        return Ballot(persona, None, None, why, raw_ok=False)
    stated = _STATED.findall(reply)
    if stated:  # the last one: a reply may think aloud before it decides
        confidence = _CONFIDENCE.search(reply)
        reason = _REASON.search(reply)
        return _ballot(
            persona,
            stated[-1],
            confidence_of(confidence.group(1)) if confidence else None,
            reason.group(1) if reason else "",
            choices,
        )
    text = reply.strip()
    if text and len(text.split()) <= BARE_WORDS and "\n" not in text:
        return _ballot(persona, text, None, "", choices)
    if choices and text:
        first_line = text.splitlines()[0]
        if normalise_choice(first_line, choices) is not None:
            return _ballot(persona, first_line, None, _one_line(text[len(first_line) :]), choices)
    return Ballot(persona, None, None, "no ballot could be read from the reply", raw_ok=False)


def _ballot(
    persona: str, raw: str, confidence: float | None, reason: str, choices: Sequence[str]
) -> Ballot:
    choice = normalise_choice(raw, choices)
    if choice is None:
        shown = " ".join(raw.split())[:60]
        options = ", ".join(choices)
        why = f"{shown!r} is not one of {options}" if choices else "the choice is empty"
        return Ballot(persona, None, confidence, why, raw_ok=False)
    return Ballot(persona, choice, confidence, " ".join(reason.split()), raw_ok=True)
