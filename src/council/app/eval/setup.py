"""What produced an eval result line: its strategy's setup, kept on the line and compared.

    setups = strategy_setups(strategies, request, alone)
    line["setup"], line["question_sha256"] = setups[strategy], question_digest(item)
    why = not_reusable(line, setups[strategy], question_digest(item))  # None: reusable

A line of `council eval --out` answers for one council: the strategy, its members
(name, model, endpoint, temperature, max_tokens, system prompt as a digest), the
arbiter, a deliberation's rounds and threshold, and the model options. A line whose
setup differs in any of them, or that records none (an older council wrote it), is
another council's answer: it is asked again, never reported as this one's. Timeouts,
retries and concurrency are left out: they change how an answer is waited for, not
what it says. How a stored answer is scored (scorer, expected, tolerance, judge) is
not part of the setup: a change there re-scores the stored answer (`needs_rescoring`).
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from typing import Any

from council.app.ask import AskRequest
from council.app.eval.strategies import COUNCIL_STRATEGIES, EvalItem, score_answer
from council.config.endpoint_settings import EndpointSettings
from council.config.personas import Persona
from council.engine.scoring import SCORER_REGISTRY, Tolerance

__all__ = [
    "NO_SETUP",
    "QUESTION_CHANGED",
    "LineRecord",
    "StoredLines",
    "Work",
    "changes",
    "member_setup",
    "needs_rescoring",
    "not_reusable",
    "question_digest",
    "scored_members",
    "scored_plainly",
    "sort_out",
    "stored_answer",
    "strategy_setups",
]

NO_SETUP = "no recorded setup"
QUESTION_CHANGED = "the item's question changed"
# A setup's keys as a person names what changed, in the order they are told.
_MEMBER_WORDS = {
    "name": "personas",
    "model": "models",
    "endpoint": "endpoint",
    "temperature": "temperature",
    "max_tokens": "max_tokens",
    "system": "system prompts",
}
_RUN_WORDS = {"rounds": "rounds", "threshold": "threshold", "options": "options"}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def question_digest(item: EvalItem) -> str:
    """The question as asked (with its options), as a digest: an edited item is another."""
    return _digest(item.question)


def _where(endpoint: EndpointSettings) -> str:
    if endpoint.local_model_path is not None:
        return f"local:{endpoint.local_model_path}"  # its URL is a new port every run
    return endpoint.base_url.rstrip("/")


def member_setup(persona: Persona, request: AskRequest) -> dict[str, Any]:
    """One member as it answers: name, model, endpoint, sampling, its system prompt's digest."""
    endpoint = request.endpoints.get(persona.endpoint or "", request.settings.endpoint)
    return {
        "name": persona.name,
        "model": persona.model or endpoint.model,
        "endpoint": _where(endpoint),
        "temperature": persona.temperature,
        "max_tokens": persona.max_tokens,
        "system": _digest(persona.system),
    }


def strategy_setups(
    strategies: list[str], request: AskRequest, alone: dict[str, Persona]
) -> dict[str, dict[str, Any]]:
    """Each strategy's setup, as its lines record it."""
    settings = request.settings
    setups: dict[str, dict[str, Any]] = {}
    for name in strategies:
        council = name in COUNCIL_STRATEGIES
        members = request.personas if council else [alone[name]]
        arbiter = request.arbiter if name in ("synthesize", "deliberate") else None
        deliberate = name == "deliberate"
        setups[name] = {
            "strategy": name,
            "personas": [member_setup(p, request) for p in members],
            "arbiter": None if arbiter is None else member_setup(arbiter, request),
            "fallback": [p.name for p in request.arbiter_fallback] if arbiter else [],
            "rounds": int(settings.get("rounds")) if deliberate else None,
            "threshold": float(settings.get("threshold")) if deliberate else None,
            "options": dict(request.options),
        }
    return setups


def _member_changes(old: Any, new: list[dict[str, Any]]) -> list[str]:
    if not isinstance(old, list) or len(old) != len(new):
        return ["personas"]
    pairs = list(zip(old, new, strict=True))
    if any(not isinstance(o, dict) or o.get("name") != n["name"] for o, n in pairs):
        return ["personas"]  # other members: other prompts and models go without saying
    return [w for key, w in _MEMBER_WORDS.items() if any(o.get(key) != n[key] for o, n in pairs)]


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two setups, in words ("personas", "rounds"...)."""
    found = _member_changes(old.get("personas"), new["personas"])
    arbiters = [a for a in (old.get("arbiter"), new["arbiter"]) if a is not None]
    if len(arbiters) == 1 or old.get("fallback") != new["fallback"]:
        found.append("arbiter")
    elif arbiters:
        found += [w for w in _member_changes([arbiters[0]], [arbiters[1]]) if w not in found]
    found += [word for key, word in _RUN_WORDS.items() if old.get(key) != new[key]]
    return found or ["setup"]


def not_reusable(line: dict[str, Any], setup: dict[str, Any], question: str) -> str | None:
    """Why a stored line is not this council's answer to this question; None: it is.

    The reason is NO_SETUP, QUESTION_CHANGED, or "another setup (what changed)".
    """
    old = line.get("setup")
    if not isinstance(old, dict) or "question_sha256" not in line:
        return NO_SETUP
    if old != setup:
        return f"another setup ({', '.join(changes(old, setup))})"
    if line["question_sha256"] != question:
        return QUESTION_CHANGED
    return None


def needs_rescoring(
    line: dict[str, Any],
    item: EvalItem,
    tolerance: str,
    judge: dict[str, Any] | None,
    jury: list[dict[str, Any]] | None = None,
) -> str | None:
    """Why a reusable answer must be scored again (scorer, expected, tolerance, judge or
    jury changed); None: its score stands."""
    if line.get("scorer") != item.scorer:
        return f"scorer {line.get('scorer')} → {item.scorer}"
    if line.get("expected") != item.expected:
        return "expected answer changed"
    if item.scorer == "number" and line.get("tolerance") != tolerance:
        return f"tolerance {line.get('tolerance')} → {tolerance}"
    if item.scorer == "judge" and line.get("judge") != judge:
        return "judge changed"
    if item.scorer == "jury" and line.get("jury_setup") != jury:
        return "jury changed"
    return None


# -- the lines an eval writes, and what it does with stored ones ----------------------------


Work = tuple[EvalItem, str, dict[str, Any] | None]  # a pair to ask, or a line to re-score


def scored_plainly(
    item: EvalItem, answer: str, note: str, tolerance: Tolerance
) -> tuple[Any, bool, str]:
    """(predicted, correct, note) under a scorer that asks nobody (not the judge)."""
    if not answer:
        return None, False, note  # a tie: no answer to score
    predicted, correct = score_answer(item, answer, tolerance)
    return predicted, correct, note


def scored_members(
    item: EvalItem, members: list[dict[str, Any]] | None, tolerance: Tolerance
) -> list[dict[str, Any]] | None:
    """Each member's own answer scored as the item is; under a scorer that asks a model,
    left ungraded (`correct` None): grading them would cost a call each."""
    if members is None:
        return None
    graded = not SCORER_REGISTRY[item.scorer].asks_model
    scored = []
    for member in members:
        answer = member.get("answer")
        predicted, correct = None, None if not graded else False
        if graded and answer is not None:
            predicted, correct, _ = scored_plainly(item, str(answer), "", tolerance)
        scored.append({**member, "predicted": predicted, "correct": correct})
    return scored


def stored_answer(stored: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """A stored line's answer, its strategy's note, its metrics without its judge's."""
    metrics = {k: v for k, v in (stored.get("metrics") or {}).items() if not k.startswith("judge_")}
    return str(stored["answer"]), _strategy_note(stored.get("note")), metrics


def _strategy_note(note: Any) -> str:
    """A stored line's note without what its judge said (re-scoring says it anew)."""
    text = note if isinstance(note, str) else ""
    for why in ("the judge's reply could not be read", "the judge's call failed"):
        text = text.replace(f"; {why}: counted wrong", "").replace(f"{why}: counted wrong", "")
    return text


@dataclass
class LineRecord:
    """What a result line records: the answer, its score, and what produced it."""

    setups: dict[str, dict[str, Any]]
    tolerance: str
    judge: dict[str, Any] | None  # the judge's setup, for --scorer judge
    jury: list[dict[str, Any]] | None = None  # the jurors' setups, for --scorer jury

    def line(
        self,
        item: EvalItem,
        strategy: str,
        answer: str | None,
        scored: tuple[Any, bool, str],
        metrics: dict[str, Any],
        extra: dict[str, Any] | None = None,
        members: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        predicted, correct, note = scored
        line: dict[str, Any] = {
            "id": f"{item.item.id}::{strategy}",
            "item": item.item.id,
            "strategy": strategy,
            "status": "ok" if answer is not None else "failed",
            "scorer": item.scorer,
            "answer": answer,
            "predicted": predicted,
            "expected": item.expected,
            "correct": correct,
            "note": note or None,
            "metrics": metrics,
            "setup": self.setups[strategy],
            "question_sha256": question_digest(item),
        }
        if members is not None:  # each member's own answer: what the baselines read
            line["members"] = members
        if item.scorer == "number":
            line["tolerance"] = self.tolerance
        if item.scorer == "judge":
            line["judge"] = self.judge
        if item.scorer == "jury":
            line["jury_setup"] = self.jury
        return {**line, **(extra or {})}


_SAID = {
    NO_SETUP: "record no setup (an older council wrote them)",
    QUESTION_CHANGED: "answer an item whose question changed since",
}


@dataclass
class StoredLines:
    """What an eval does with each item × strategy: ask it, re-score its answer, or reuse it."""

    work: list[Work] = field(default_factory=list)
    rescore: list[str] = field(default_factory=list)  # ids re-scored, not asked
    redone: dict[str, int] = field(default_factory=dict)  # why a stored line is asked again
    rescore_why: dict[str, int] = field(default_factory=dict)

    def tell(self, out: str | None) -> None:
        """One line on stderr for the stored lines asked again, one for those re-scored."""
        if self.redone:
            why = "; ".join(f"{count} {reason}" for reason, count in self.redone.items())
            total = sum(self.redone.values())
            sys.stderr.write(f"council: eval: asking {total} runs of {out} again: {why}\n")
        if self.rescore:
            why = "; ".join(f"{reason}: {count}" for reason, count in self.rescore_why.items())
            sys.stderr.write(
                f"council: eval: re-scoring {len(self.rescore)} stored answers of {out} "
                f"without asking again ({why})\n"
            )


def sort_out(
    items: list[EvalItem],
    strategies: list[str],
    earlier: dict[str, dict[str, Any]],
    record: LineRecord,
) -> StoredLines:
    """Each pair: asked (new, failed before, or from another setup), re-scored, or reused."""
    plan = StoredLines()
    for item in items:
        for strategy in strategies:
            line = earlier.get(f"{item.item.id}::{strategy}")
            why = None
            if line is not None:
                why = not_reusable(line, record.setups[strategy], question_digest(item))
                if why is None and line.get("status") != "ok":
                    why = "had failed"
                elif why is not None:
                    why = _SAID.get(why, f"came from {why}")
            if line is None or why is not None:
                plan.work.append((item, strategy, None))
                if why is not None:
                    plan.redone[why] = plan.redone.get(why, 0) + 1
                continue
            rescoring = needs_rescoring(line, item, record.tolerance, record.judge, record.jury)
            if rescoring is not None:
                plan.work.append((item, strategy, line))
                plan.rescore.append(str(line["id"]))
                plan.rescore_why[rescoring] = plan.rescore_why.get(rescoring, 0) + 1
    return plan
