"""A jury: what each juror is asked, how its verdict is read, pooled, and how far they agree.

`council judge` asks its jurors through the oracle's machinery (one call per juror,
all at once). Two kinds of case:

- one answer against a rubric: each juror scores every criterion 1-5 and approves or
  rejects; the jury's agreement is Krippendorff's alpha (interval) over the criteria;
- a pair of answers: each juror is asked twice, once with each answer first, as a
  ballot ("A", "B" or "tie"); a verdict that flips with the order is a tie, and the
  share of jurors whose verdict flipped is the position-flip rate. Agreement is
  Fleiss' kappa over the two orders' ballots.

Everything here is pure: the prompts, reading replies, pooling, statistics.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

from council.engine.agreement_stats import category_counts, fleiss_kappa, krippendorff_alpha
from council.engine.bias import BiasReport, bias_report
from council.engine.model import Ballot
from council.engine.prompts import json_schema_format
from council.engine.replies import first_json_object

__all__ = [
    "APPROVE",
    "PAIR_CHOICES",
    "REFERENCE_CRITERIA",
    "REJECT",
    "UNDECIDED",
    "JurorVerdict",
    "JuryVerdict",
    "criteria_of",
    "pair_bias",
    "pair_prompt",
    "pair_verdict",
    "pool_jury",
    "read_grades",
    "rubric_prompt",
    "rubric_response_format",
]

APPROVE, REJECT, UNDECIDED = "approve", "reject", "undecided"
PAIR_CHOICES = ("A", "B", "tie")
# A ballot given with B's answer shown first, said of the answers as they are named.
_SWAPPED = {"A": "B", "B": "A", "tie": "tie"}
SCORE_MIN, SCORE_MAX = 1, 5

RUBRIC_INSTRUCTIONS = """\
You are a juror. Grade the answer below against each criterion of the rubric, from 1
(fails it) to 5 (fully meets it), on its merit alone: not its length or its style.
Then say whether you approve the answer as it stands.

Reply with a single JSON object and nothing else:
  "reasoning": what is strong and weak in the answer, briefly, before you score,
  "scores": one integer from 1 to 5 per criterion, in the rubric's order,
  "verdict": "approve" or "reject"."""

REFERENCE_NOTE = """\
The reference is the answer known to be right. Grade the answer against it: one that
contradicts it, or misses what it asks for, is not correct however well it is put."""
# What `council eval --scorer jury` grades: the answer against the item's expected one.
REFERENCE_CRITERIA = ("agrees with the reference answer",)

PAIR_INSTRUCTIONS = """\
You are a juror. Two answers to the question above follow, as Answer A and Answer B.
Judge which is better on correctness, reasoning and usefulness to the person who
asked, not on length, style or which came first; "tie" when neither is better."""


def criteria_of(rubric: str) -> list[str]:
    """A rubric's criteria: one a line (list markers dropped), or comma-separated on one line."""
    lines = [line.strip().lstrip("-*•").strip() for line in rubric.splitlines()]
    lines = [line.lstrip("0123456789").lstrip(".)").strip() for line in lines if line]
    if len(lines) == 1 and "," in lines[0]:
        lines = [part.strip() for part in lines[0].split(",")]
    return [line for line in lines if line]


def _quoted(tag: str, text: str) -> str:
    return f"<{tag}>\n{text.strip()}\n</{tag.split()[0]}>"


def rubric_prompt(
    question: str, answer: str, criteria: Sequence[str], reference: str | None = None
) -> str:
    """A juror's turn for one answer: the question (if any), the answer, the rubric.

    `reference` (`council eval --scorer jury`): the expected answer, which the answer
    is graded against, shown after it so that it does not frame the reading.
    """
    rubric = "\n".join(f"{i}. {c}" for i, c in enumerate(criteria, 1))
    asked = [_quoted("question", question)] if question.strip() else []
    known = [] if reference is None else [_quoted("reference", reference), REFERENCE_NOTE]
    return "\n\n".join(
        [*asked, _quoted("answer", answer), *known, f"Rubric:\n{rubric}", RUBRIC_INSTRUCTIONS]
    )


def rubric_response_format() -> dict[str, Any]:
    """The JSON schema of a juror's grades, as `read_grades` reads them."""
    scores = {"type": "array", "items": {"type": "integer"}}
    verdict = {"type": "string", "enum": [APPROVE, REJECT]}
    return json_schema_format(
        "grades", {"reasoning": {"type": "string"}, "scores": scores, "verdict": verdict}
    )


def pair_prompt(question: str, first: str, second: str) -> str:
    """A juror's turn for a pair, `first` shown as Answer A (the ballot's wording follows)."""
    asked = question.strip() or "(no question given: judge the answers as they stand)"
    return "\n\n".join(
        [
            asked,
            PAIR_INSTRUCTIONS,
            _quoted('answer label="A"', first),
            _quoted('answer label="B"', second),
        ]
    )


@dataclass(frozen=True)
class JurorVerdict:
    """One juror's verdict: "approve"/"reject" (rubric), "A"/"B"/"tie" (pair), None: none read.

    `orders` (pair): its ballot with A first and with B first, said of the answers as
    named (None: not read); `flipped` when they differ.
    """

    juror: str
    verdict: str | None
    reason: str = ""
    scores: tuple[int | None, ...] = ()
    orders: tuple[str | None, str | None] = (None, None)
    flipped: bool | None = None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"juror": self.juror, "verdict": self.verdict, "reason": self.reason}
        if self.scores:
            data["scores"] = list(self.scores)
            read = [s for s in self.scores if s is not None]
            data["mean_score"] = round(fmean(read), 4) if read else None
        if self.orders != (None, None) or self.flipped is not None:
            data["orders"] = {"a_first": self.orders[0], "b_first": self.orders[1]}
            data["flipped"] = self.flipped
        data["problem"] = self.problem
        return data


def _score(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = round(float(value))
    except ValueError:
        return None
    return number if SCORE_MIN <= number <= SCORE_MAX else None


def read_grades(juror: str, reply: str, criteria: int, pass_score: float) -> JurorVerdict:
    """A juror's grades: a score per criterion and its verdict; never an exception.

    A verdict it did not state follows its mean score against `pass_score`.
    """
    data = first_json_object(reply, "scores")
    if data is None:
        return JurorVerdict(juror, None, problem="no JSON object with 'scores' in the reply")
    raw = data.get("scores")
    if isinstance(raw, dict):  # {"criterion": 4, ...}: in the order given
        raw = list(raw.values())
    raw = raw if isinstance(raw, list) else []
    scores = tuple(_score(v) for v in raw[:criteria]) + (None,) * max(0, criteria - len(raw))
    reason = data.get("reasoning") or data.get("reason") or ""
    reason = " ".join(str(reason).split())
    stated = str(data.get("verdict", "")).strip().lower()
    read = [s for s in scores if s is not None]
    if stated not in (APPROVE, REJECT):
        if not read:
            return JurorVerdict(juror, None, reason, scores, problem="no verdict and no score")
        stated = APPROVE if fmean(read) >= pass_score else REJECT
    return JurorVerdict(juror, stated, reason, scores)


def pair_verdict(juror: str, a_first: Ballot | None, b_first: Ballot | None) -> JurorVerdict:
    """A juror's verdict on a pair from its two ballots; one that flips with the order is a tie."""
    first = a_first.choice if a_first is not None else None
    second = _SWAPPED.get(b_first.choice or "") if b_first is not None else None
    reasons = [b.reason for b in (a_first, b_first) if b is not None and b.reason]
    reason = " / ".join(reasons)
    if first is None or second is None:
        return JurorVerdict(
            juror, None, reason, orders=(first, second), problem="no ballot read in one order"
        )
    flipped = first != second
    return JurorVerdict(
        juror, "tie" if flipped else first, reason, orders=(first, second), flipped=flipped
    )


@dataclass(frozen=True)
class JuryVerdict:
    """The pooled verdict, every juror's, the jury's agreement and (pairs) its flip rate."""

    kind: str  # "rubric" or "pair"
    verdict: str  # approve/reject/undecided; A/B/tie/undecided
    jurors: tuple[JurorVerdict, ...]
    pool: str
    statistic: str
    agreement: float | None
    position_flip_rate: float | None = None
    criteria: tuple[str, ...] = ()
    mean_score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Reviewer bias (engine/bias.py); a rubric's one answer measures none of it.
    bias: BiasReport = field(default_factory=BiasReport)

    @property
    def failed(self) -> bool:
        return not any(j.verdict is not None for j in self.jurors)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "verdict": self.verdict,
            "pool": self.pool,
            "jurors": [j.to_dict() for j in self.jurors],
            "agreement": {"statistic": self.statistic, "value": _round(self.agreement)},
        }
        if self.kind == "pair":
            data["position_flip_rate"] = _round(self.position_flip_rate)
        else:
            data["criteria"] = list(self.criteria)
            data["mean_score"] = _round(self.mean_score)
        data["bias"] = self.bias.to_dict()
        return data


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _majority(verdicts: list[str]) -> str:
    counts = Counter(verdicts).most_common()
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
        return UNDECIDED
    return counts[0][0]


def pool_jury(
    kind: str,
    jurors: Sequence[JurorVerdict],
    pool: str,
    pass_score: float = 3.5,
    criteria: Sequence[str] = (),
    *,
    lengths: tuple[int, int] | None = None,
    models: dict[str, str | None] | None = None,
) -> JuryVerdict:
    """The jury's verdict by `pool` ("majority" of verdicts, or "mean"), with its agreement.

    A pair's bias report needs the two answers' `lengths` (and the jurors' `models`)."""
    read = [j for j in jurors if j.verdict is not None]
    if kind == "pair":
        pooled = _pool_pair(tuple(jurors), read, pool)
        return dataclasses.replace(pooled, bias=pair_bias(jurors, lengths, models))
    means = [fmean(s) for s in ([x for x in j.scores if x is not None] for j in read) if s]
    mean_score = fmean(means) if means else None
    if not read:
        verdict = UNDECIDED
    elif pool == "mean":
        verdict = (
            UNDECIDED if mean_score is None else APPROVE if mean_score >= pass_score else REJECT
        )
    else:
        verdict = _majority([j.verdict for j in read if j.verdict is not None])
    units = [
        [j.scores[i] if i < len(j.scores) else None for j in read] for i in range(len(criteria))
    ]
    return JuryVerdict(
        "rubric",
        verdict,
        tuple(jurors),
        pool,
        "krippendorff_alpha_interval",
        krippendorff_alpha(units, "interval") if len(read) >= 2 else None,
        criteria=tuple(criteria),
        mean_score=mean_score,
    )


def pair_bias(
    jurors: Sequence[JurorVerdict],
    lengths: tuple[int, int] | None,
    models: dict[str, str | None] | None = None,
) -> BiasReport:
    """A pair's bias: every juror judged both orders, so its position consistency is
    1 - the flip rate at no extra call; the length correlation is over each juror's
    verdict as scores (the winner 1, the loser 0, a tie 1/2 each); no self-preference."""
    both = [j for j in jurors if j.flipped is not None]
    scores = {
        j.juror: {"A": _PAIR_SCORES[j.verdict][0], "B": _PAIR_SCORES[j.verdict][1]}
        for j in both
        if j.verdict in _PAIR_SCORES
    }
    return bias_report(
        scores,
        {"A": lengths[0], "B": lengths[1]} if lengths is not None else {},
        consistent={j.juror: not j.flipped for j in both},
        models=models,
    )


# A pair's verdict as scores of (A, B).
_PAIR_SCORES = {"A": (1.0, 0.0), "B": (0.0, 1.0), "tie": (0.5, 0.5)}


def _pool_pair(
    jurors: tuple[JurorVerdict, ...], read: list[JurorVerdict], pool: str
) -> JuryVerdict:
    if not read:
        verdict = UNDECIDED
    elif pool == "mean":  # A counts 1, B 0, a tie 0.5
        share = fmean({"A": 1.0, "B": 0.0}.get(j.verdict or "", 0.5) for j in read)
        verdict = "A" if share > 0.5 else "B" if share < 0.5 else "tie"
    else:
        verdict = _majority([j.verdict for j in read if j.verdict is not None])
    both = [j for j in read if j.flipped is not None]
    flip_rate = sum(bool(j.flipped) for j in both) / len(both) if both else None
    # Agreement over the two orders as two items, each juror's ballot said of the answers.
    orders = [[j.orders[0] for j in both], [j.orders[1] for j in both]]
    kappa = fleiss_kappa(category_counts(orders)) if len(both) >= 2 else None
    return JuryVerdict("pair", verdict, jurors, pool, "fleiss_kappa", kappa, flip_rate)
