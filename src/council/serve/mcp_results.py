"""A council's `--json` document as an MCP tool result: text for the model, facts for programs.

    text, answer = council_answer(document)     # answer: a CouncilAnswer

The text leads with the answer, then how settled it is (confidence, dissent, who is
missing), then every member's own answer, so that a client which shows the model
only the text loses nothing. Model text is passed on as it came: the client is a
program, and the `--json` document carries it the same way.
"""

from __future__ import annotations

from typing import Any

from council.serve.mcp_schemas import CouncilAnswer, Member, Missing

__all__ = ["council_answer"]


def _members(document: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The answers and errors of the members in the round the answer rests on."""
    rounds = document.get("rounds")
    if rounds is None:  # an oracle
        return document.get("answers") or [], document.get("errors") or []
    kept = [r for r in rounds if r.get("answers") or r.get("errors")]
    if kept:
        return kept[-1].get("answers") or [], kept[-1].get("errors") or []
    failed = document.get("failed_round") or {}
    return [], failed.get("errors") or []


def _vote(document: dict[str, Any]) -> dict[str, Any] | None:
    if document.get("vote") is not None:
        return document["vote"]
    for kept in reversed(document.get("rounds") or []):
        if kept.get("vote") is not None:
            return kept["vote"]
    return None


def council_answer(document: dict[str, Any]) -> tuple[str, CouncilAnswer]:
    """The text a model reads and the structured answer, from a run's document."""
    answer = document.get("answer") or {}
    answers, errors = _members(document)
    vote = _vote(document)
    text = answer.get("text")
    if text is None and vote is not None and vote.get("winners"):
        text = ", ".join(vote["winners"])
    members = [
        Member(persona=a["persona"], model=a.get("model"), answer=a.get("text")) for a in answers
    ] + [
        Member(
            persona=e["persona"],
            model=e.get("model"),
            error=f"{e.get('error_kind')}: {e.get('message')}",
        )
        for e in errors
        if e.get("role", "persona") == "persona"
    ]
    result = CouncilAnswer(
        run_id=document.get("run_id"),
        status=str(document.get("status") or "ok"),
        answer=text,
        answered_by=answer.get("persona"),
        confidence=answer.get("confidence"),
        converged=answer.get("converged"),
        dissent=list(answer.get("dissent") or []),
        members=members,
        missing=[Missing(**m) for m in answer.get("missing") or []],
        rounds=max(1, len(document.get("rounds") or [None])),
        stop_reason=document.get("stop_reason"),
        vote=vote,
        cost_usd=document.get("cost_usd"),
        agreement=answer.get("agreement"),
        escalation=document.get("escalation"),
    )
    return _text(result), result


def _agreement_lines(agreement: dict[str, Any] | None) -> list[str]:
    """The agreement map's lists a model can act on (dissent is said already)."""
    if not agreement:
        return []
    parts = []
    if agreement.get("consensus"):
        parts.append("Consensus:\n" + "\n".join(f"- {p}" for p in agreement["consensus"]))
    contradictions = agreement.get("contradictions") or []
    if contradictions:
        lines = []
        for c in contradictions:
            sides = "; ".join(
                f"{', '.join(s.get('members') or []) or '?'}: {s.get('position', '')}"
                for s in c.get("sides") or []
            )
            differ = f" (they differ on: {c['assumption']})" if c.get("assumption") else ""
            lines.append(f"- {c.get('point', '')}: {sides}{differ}")
        parts.append("Contradictions:\n" + "\n".join(lines))
    insights = agreement.get("unique_insights") or []
    if insights:
        said = [f"- {i.get('point', '')} ({i.get('member', '?')})" for i in insights]
        parts.append("Unique insights:\n" + "\n".join(said))
    if agreement.get("blind_spots"):
        parts.append("Blind spots:\n" + "\n".join(f"- {p}" for p in agreement["blind_spots"]))
    return parts


def _text(result: CouncilAnswer) -> str:
    parts: list[str] = []
    if result.answer is not None:
        parts.append(result.answer.strip())
    else:
        parts.append("(No synthesis: each member's answer follows.)")
    facts: list[str] = []
    if result.confidence is not None:
        facts.append(f"confidence {result.confidence:.2f}")
    if result.converged is not None:
        facts.append("converged" if result.converged else "not converged")
    if result.rounds > 1:
        facts.append(f"{result.rounds} rounds")
    if result.vote is not None and result.vote.get("tally"):
        tally = ", ".join(f"{k}: {v}" for k, v in result.vote["tally"].items())
        facts.append(f"vote {tally}")
    if result.status != "ok":
        facts.append(f"status {result.status}")
    if facts:
        parts.append("Council: " + "; ".join(facts) + ".")
    if result.dissent:
        parts.append("Dissent:\n" + "\n".join(f"- {d}" for d in result.dissent))
    parts += _agreement_lines(result.agreement)
    if result.escalation is not None and not result.escalation.get("escalated"):
        saved = result.escalation.get("calls_saved")
        parts.append(f"Escalation: the first panel was sure; {saved} calls saved.")
    if result.missing:
        parts.append(
            "Missing: " + ", ".join(f"{m.persona} ({m.reason})" for m in result.missing) + "."
        )
    for member in result.members:
        said = member.answer.strip() if member.answer is not None else f"(failed: {member.error})"
        parts.append(f"--- {member.persona} ---\n{said}")
    tail = []
    if result.cost_usd is not None:
        tail.append(f"cost ${result.cost_usd:.4f}")
    if result.run_id is not None:
        tail.append(f"run {result.run_id} (show_run shows it again)")
    if tail:
        parts.append("; ".join(tail))
    return "\n\n".join(parts)
