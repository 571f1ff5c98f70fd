"""The agreement map as a person reads it: one compact line under the answer, or in full.

Every string in a map is the arbiter's, so untrusted: each is stripped of control
sequences here, before the terminal or a Markdown reader sees it. `--json` keeps
them exactly (`json_out`), as it does every answer.
"""

from __future__ import annotations

from council.engine.agreement import AgreementMap, Contradiction
from council.render.safe_text import strip_controls

__all__ = ["agreement_full", "agreement_line", "agreement_markdown"]


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _clean(text: str) -> str:
    return " ".join(strip_controls(text).split())  # one line each, whatever the model wrote


def _missing(found: AgreementMap) -> str | None:
    if not found.missing:
        return None
    who = ", ".join(f"{_clean(name)} ({_clean(why)})" for name, why in found.missing)
    return f"without the views of {who}"


def agreement_line(found: AgreementMap) -> str:
    """ "agreement: 3 shared · 1 contradiction · 2 unique insights · 1 blind spot · 0.80" """
    parts = [
        _count(len(found.consensus), "shared point", "shared points"),
        _count(len(found.contradictions), "contradiction", "contradictions"),
        _count(len(found.unique_insights), "unique insight", "unique insights"),
        _count(len(found.blind_spots), "blind spot", "blind spots"),
    ]
    if found.dissent:
        parts.append(_count(len(found.dissent), "dissent", "dissents"))
    if found.confidence is not None:
        parts.append(f"confidence {found.confidence:.2f}")
    missing = _missing(found)
    if missing is not None:
        parts.append(missing)
    return "agreement: " + " · ".join(parts)


def _contradiction(item: Contradiction) -> list[str]:
    lines = [_clean(item.point) or "(no point given)"]
    for side in item.sides:
        members = ", ".join(_clean(m) for m in side.members) or "?"
        lines.append(f"{members}: {_clean(side.position)}")
    if item.assumption:
        lines.append(f"differ on: {_clean(item.assumption)}")
    return lines


def _sections(found: AgreementMap) -> list[tuple[str, list[list[str]]]]:
    """(title, items), each item its lines (a contradiction's sides indented under it)."""
    return [
        ("Consensus", [[_clean(p)] for p in found.consensus]),
        ("Contradictions", [_contradiction(c) for c in found.contradictions]),
        (
            "Unique insights",
            [[f"{_clean(i.point)} ({_clean(i.member) or '?'})"] for i in found.unique_insights],
        ),
        ("Blind spots", [[_clean(p)] for p in found.blind_spots]),
        ("Dissent", [[_clean(d)] for d in found.dissent]),
    ]


def _bullets(items: list[list[str]]) -> str:
    # Each item a bullet; a contradiction's sides and assumption indented under it.
    bullets = ("\n".join([f"- {item[0]}", *(f"  {rest}" for rest in item[1:])]) for item in items)
    return "\n".join(bullets)


def agreement_full(found: AgreementMap) -> str:
    """Every field, as plain text (`--verbose` in the terminal)."""
    lines = [agreement_line(found)]
    lines += [f"{title}:\n{_bullets(items)}" for title, items in _sections(found) if items]
    return "\n".join(lines)


def agreement_markdown(found: AgreementMap) -> str:
    """The whole map as a Markdown section (the report and `council show` carry it whole)."""
    blocks = ["## Agreement map", f"_{agreement_line(found)}_"]
    blocks += [f"### {title}\n\n{_bullets(items)}" for title, items in _sections(found) if items]
    return "\n\n".join(blocks)
