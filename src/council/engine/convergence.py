"""Reading the arbiter's verdict, and measuring how much an answer moved between rounds.

The arbiter is asked for a JSON object
`{"converged": bool, "confidence": 0..1, "synthesis": str, "dissent": [str]}` and the
agreement map's fields (`agreement.py`), read each on its own.
Models wrap it in code fences, add prose around it, write confidence as a
percentage or booleans as strings; `parse_verdict` accepts all of that, and a
reply it cannot read becomes a "not converged" verdict carrying the reason,
never an exception: a bad verdict must not end or crash a council.
"""

from __future__ import annotations

import re

from council.engine.agreement import AGREEMENT_PROPERTIES, read_agreement
from council.engine.model import Verdict
from council.engine.replies import as_bool, as_confidence, json_objects

__all__ = [
    "ends_council",
    "parse_verdict",
    "position_change",
    "position_label",
]

_WORD = re.compile(r"[a-z0-9']+")


def ends_council(verdict: Verdict, threshold: float) -> bool:
    """A converged verdict at or above the confidence threshold ends the council."""
    return verdict.problem is None and verdict.converged and verdict.confidence >= threshold


def _unreadable(raw: str, problem: str) -> Verdict:
    return Verdict(converged=False, confidence=0.0, synthesis=raw.strip(), problem=problem)


def parse_verdict(raw: str) -> Verdict:
    """The verdict in an arbiter's reply: the first JSON object with a `converged` key."""
    candidates = [o for o in json_objects(raw) if "converged" in o]
    if not candidates:
        return _unreadable(raw, "the arbiter's reply has no JSON object with a 'converged' key")
    data = candidates[0]
    converged = as_bool(data.get("converged"))
    if converged is None:
        return _unreadable(raw, "'converged' is not true or false")
    confidence = as_confidence(data.get("confidence", 0.0))
    if confidence is None:
        return _unreadable(raw, "'confidence' is not a number from 0 to 1")
    synthesis = data.get("synthesis")
    if not isinstance(synthesis, str) or not synthesis.strip():
        return _unreadable(raw, "'synthesis' is missing or empty")
    dissent = data.get("dissent") or []
    if isinstance(dissent, str):
        dissent = [dissent]
    if not isinstance(dissent, list):
        return _unreadable(raw, "'dissent' is not a list")
    return Verdict(
        converged=converged,
        confidence=confidence,
        synthesis=synthesis.strip(),
        dissent=tuple(str(d).strip() for d in dissent if str(d).strip()),
        # The map's own fields, when the arbiter gave any (a verdict without them has none).
        agreement=read_agreement(data) if any(k in data for k in AGREEMENT_PROPERTIES) else None,
    )


def position_change(before: str, after: str) -> float:
    """How much an answer moved between rounds: 0 (same words) to 1 (nothing in common).

    A cheap lexical measure (1 - Jaccard similarity of the word sets), good enough
    to flag who rewrote their answer and who kept it; not a judgement of meaning.
    """
    a, b = set(_WORD.findall(before.lower())), set(_WORD.findall(after.lower()))
    if not a and not b:
        return 0.0
    return 1.0 - len(a & b) / len(a | b)


_STATED_POSITION = re.compile(r"^\W*position\W*:\W*(kept|changed)\b", re.IGNORECASE)
# A revision that shares less than half its words with the previous answer reads as a change.
_UNSTATED_CHANGE = 0.5


def position_label(before: str | None, after: str) -> str:
    """Did a persona keep or change its position between rounds?

    The persona is asked to say so on its first line ("Position: kept|changed");
    when it did not, the lexical measure stands in and the label says it is a guess.
    """
    if before is None:
        return "new"  # no answer of its own in the previous round
    first_line = after.strip().splitlines()[0] if after.strip() else ""
    stated = _STATED_POSITION.match(first_line)
    if stated:
        return stated.group(1).lower()
    return "changed?" if position_change(before, after) >= _UNSTATED_CHANGE else "kept?"
