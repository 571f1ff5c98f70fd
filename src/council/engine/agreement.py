"""The agreement map: where a council's members agree, contradict each other, and what
no one addressed, as the arbiter reports it.

Six fields, the same for `oracle -s` and for every deliberation verdict:

    consensus        points every member shares
    contradictions   each: the point, the sides ({members, position}) and the
                     assumption the sides differ on
    unique_insights  each: a point only one member made, and who
    blind_spots      what no member addressed
    dissent          remaining disagreements, each naming who holds it
    confidence       0..1, how settled the council's answer is

A deliberation's verdict is asked as JSON with a schema (`prompts.py`); the oracle's
synthesis is free text that streams to the user, so its map comes in the same call,
after the answer, between `<agreement>` and `</agreement>` (`split_synthesis`): the
answer's text arrives first, unchanged, and no call is added. The arbiter's strings
are untrusted: read tolerantly here (a missing or ill-typed field is empty, never an
error) and stripped of control sequences by whoever shows them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from council.engine.agreement_schema import AGREEMENT_PROPERTIES
from council.engine.replies import as_confidence

__all__ = [
    "AGREEMENT_PROPERTIES",
    "AgreementMap",
    "Contradiction",
    "Insight",
    "Side",
    "read_agreement",
    "split_synthesis",
]


@dataclass(frozen=True)
class Side:
    members: tuple[str, ...]
    position: str

    def to_dict(self) -> dict[str, Any]:
        return {"members": list(self.members), "position": self.position}


@dataclass(frozen=True)
class Contradiction:
    point: str
    sides: tuple[Side, ...]
    assumption: str

    def to_dict(self) -> dict[str, Any]:
        sides = [s.to_dict() for s in self.sides]
        return {"point": self.point, "sides": sides, "assumption": self.assumption}


@dataclass(frozen=True)
class Insight:
    point: str
    member: str

    def to_dict(self) -> dict[str, Any]:
        return {"point": self.point, "member": self.member}


@dataclass(frozen=True)
class AgreementMap:
    """What the arbiter found; `missing` ((member, why)) is the council's, not the arbiter's:
    a map of a council some members missed says whose views it lacks."""

    consensus: tuple[str, ...] = ()
    contradictions: tuple[Contradiction, ...] = ()
    unique_insights: tuple[Insight, ...] = ()
    blind_spots: tuple[str, ...] = ()
    dissent: tuple[str, ...] = ()
    confidence: float | None = None
    missing: tuple[tuple[str, str], ...] = ()

    @property
    def empty(self) -> bool:
        return not (
            self.consensus
            or self.contradictions
            or self.unique_insights
            or self.blind_spots
            or self.dissent
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "consensus": list(self.consensus),
            "contradictions": [c.to_dict() for c in self.contradictions],
            "unique_insights": [i.to_dict() for i in self.unique_insights],
            "blind_spots": list(self.blind_spots),
            "dissent": list(self.dissent),
            "confidence": self.confidence,
            "missing": [{"persona": name, "reason": why} for name, why in self.missing],
        }


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _texts(value: Any) -> tuple[str, ...]:
    """A list of strings; one string alone is a list of one; anything else is empty."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    return tuple(t for t in (_text(v) for v in value) if t)


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _side(data: dict[str, Any]) -> Side | None:
    side = Side(_texts(data.get("members")), _text(data.get("position")))
    return side if side.members or side.position else None


def _contradiction(data: dict[str, Any]) -> Contradiction | None:
    sides = tuple(s for s in (_side(d) for d in _dicts(data.get("sides"))) if s is not None)
    found = Contradiction(_text(data.get("point")), sides, _text(data.get("assumption")))
    return found if found.point or found.sides else None


def read_agreement(data: Any) -> AgreementMap | None:
    """The map in a parsed JSON object, every field read on its own; None when it is no object."""
    if not isinstance(data, dict):
        return None
    contradictions = (_contradiction(d) for d in _dicts(data.get("contradictions")))
    insights = (
        Insight(_text(d.get("point")), _text(d.get("member")))
        for d in _dicts(data.get("unique_insights"))
    )
    return AgreementMap(
        consensus=_texts(data.get("consensus")),
        contradictions=tuple(c for c in contradictions if c is not None),
        unique_insights=tuple(i for i in insights if i.point),
        blind_spots=_texts(data.get("blind_spots")),
        dissent=_texts(data.get("dissent")),
        confidence=as_confidence(data.get("confidence")),
    )


# The block the oracle's arbiter ends its synthesis with; its closing tag may be missing
# (a reply cut at max_tokens), and a model may fence the JSON.
_BLOCK = re.compile(r"\n?[ \t]*<agreement>(.*?)(?:</agreement>\s*|\Z)", re.DOTALL | re.IGNORECASE)


def split_synthesis(text: str) -> tuple[str, AgreementMap | None]:
    """The synthesis's answer, and the map it ends with (None when there is none to read).

    The block is taken out of the answer whether or not its JSON can be read: it is
    the map's, never part of what the person asked for.
    """
    match = _BLOCK.search(text)
    if match is None:
        return text, None
    answer = (text[: match.start()] + text[match.end() :]).strip()
    body = match.group(1)
    start = body.find("{")
    try:
        data, _ = json.JSONDecoder().raw_decode(body, start) if start != -1 else (None, 0)
    except json.JSONDecodeError:
        data = None
    return answer, read_agreement(data)
