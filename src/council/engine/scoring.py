"""Scoring `council eval`: whether an answer matches what was expected, and how sure a rate is.

    exact("Paris.", "paris")                              -> True
    choice_letter("the answer is b) Lyon", ["Paris", "Lyon"]) -> "B"
    number_matches("about 3,141.6", "3141.6", Tolerance(0.01))  -> True
    wilson(8, 10)                                         -> (0.490, 0.943)

Pure functions only (no I/O, no model): the eval runner predicts, these judge. The
`judge` scorer asks a persona instead; only reading its verdict (`read_judgement`)
is here, the rubric it is given is in prompts.py.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SCORERS",
    "SCORER_REGISTRY",
    "Scorer",
    "StrategySummary",
    "Tolerance",
    "check_expected",
    "choice_letter",
    "exact",
    "expected_letter",
    "final_answer",
    "letters",
    "normalise",
    "number_in",
    "number_matches",
    "parse_tolerance",
    "percentile",
    "read_judgement",
    "regex_matches",
    "score",
    "summarize",
    "wilson",
]

# The two-sided 95 % normal quantile.
Z_95 = 1.959963984540054

_SPACES = re.compile(r"\s+")
# What wraps an answer without being part of it: quotes, Markdown emphasis and code.
_WRAPPERS = "\"'`*_“”‘’"
_TRAILING = ".!?,;:。"
# "Answer: X", "The answer is X", "**Final answer:** X": the text after the last one.
# A dash before a digit is a minus sign, not a separator ("the answer is -1").
_ANSWER_MARK = re.compile(
    r"\b(?:final\s+)?answer(?:\s+is)?\b\s*(?:[:=]|-(?![\d.]))?\s*", re.IGNORECASE
)


def normalise(text: str) -> str:
    """Case folded, whitespace collapsed, wrappers and trailing punctuation stripped."""
    text = _SPACES.sub(" ", text).strip()
    previous = None
    while previous != text:
        previous = text
        text = text.strip(_WRAPPERS + " ").rstrip(_TRAILING).strip()
    return text.casefold()


def _candidates(answer: str) -> list[str]:
    """The whole answer, its last non-empty line, and what follows its last "Answer:"."""
    found = [answer]
    lines = [line for line in answer.splitlines() if line.strip()]
    if lines:
        found.append(lines[-1])
    marks = list(_ANSWER_MARK.finditer(answer))
    if marks:
        after = answer[marks[-1].end() :].strip()
        found.append(after.splitlines()[0] if after else "")
    return found


def final_answer(answer: str) -> str:
    """What an answer finally says, normalised: the text after its last "Answer:", else
    its last non-empty line ("" for an empty answer). Free answers are counted by it."""
    return normalise(_candidates(answer)[-1]) if answer.strip() else ""


def exact(answer: str, expected: str) -> bool:
    """The answer, its final line, or what follows its last "Answer:" equals `expected`
    (ignoring case, spacing, quotes, Markdown emphasis and trailing punctuation)."""
    want = normalise(expected)
    return any(normalise(candidate) == want for candidate in _candidates(answer))


def letters(count: int) -> list[str]:
    """The labels of `count` options: A, B, C, ..."""
    return [chr(ord("A") + i) for i in range(count)]


def expected_letter(expected: str, choices: Sequence[str]) -> str | None:
    """The letter `expected` names: a letter ("b", "(B)") or an option's text; None if neither."""
    labels = letters(len(choices))
    bare = normalise(expected).strip("()[]").upper()
    if bare in labels:
        return bare
    want = normalise(expected)
    for label, option in zip(labels, choices, strict=True):
        if normalise(str(option)) == want:
            return label
    return None


def _letter_patterns(labels: str) -> list[re.Pattern[str]]:
    mark = r"(?i:(?:final\s+)?answer(?:\s+is)?)\s*[:\-=]?\s*[*\s]*"
    return [
        # "Answer: (B)", "the answer is (b)"
        re.compile(mark + rf"\(([{labels}])\)", re.IGNORECASE),
        # "Answer: B", "answer is b) foo", "Answer: B.": a letter, then a delimiter or the end
        re.compile(mark + rf"([{labels}])(?:[).:,*\]]|\s*$)", re.IGNORECASE | re.MULTILINE),
        # "Answer: B because ..." — an upper-case letter on its own
        re.compile(mark + rf"([{labels.upper()}])\s"),
    ]


def choice_letter(answer: str, choices: Sequence[str]) -> str | None:
    """The option an answer picks, as a letter; None when it picks none, or several.

    Tolerant: "B", "(B)", "B) Lyon", "Answer: B", "the answer is b) Lyon", or the
    option's own text ("Lyon") when exactly one option's text is in the answer.
    """
    labels = letters(len(choices))
    if not labels:
        return None
    span = "".join(labels) + "".join(labels).lower()
    hits: list[tuple[int, str]] = []
    for pattern in _letter_patterns(span):
        hits.extend((m.start(1), m.group(1).upper()) for m in pattern.finditer(answer))
    if hits:
        return max(hits)[1]  # the last one stated: a model may correct itself
    bare = normalise(answer).strip("()[]").upper()
    if bare in labels:
        return bare
    first = answer.strip().splitlines()[0] if answer.strip() else ""
    leading = re.match(rf"^\W*\(?([{''.join(labels)}])[).:]", first.strip())
    if leading:
        return leading.group(1)
    said = normalise(answer)
    named = [
        label
        for label, option in zip(labels, choices, strict=True)
        if normalise(str(option)) and re.search(rf"\b{re.escape(normalise(str(option)))}\b", said)
    ]
    if len(named) == 1:
        return named[0]
    alone = set(re.findall(rf"\(([{''.join(labels)}])\)", answer))
    return alone.pop() if len(alone) == 1 else None


def regex_matches(answer: str, pattern: str) -> bool:
    """`pattern` is found anywhere in the answer (case ignored, ^ and $ match at lines)."""
    return re.search(pattern, answer, re.IGNORECASE | re.MULTILINE) is not None


@dataclass(frozen=True)
class Tolerance:
    """How close a number must be: `value` absolute, or relative (a fraction) when `relative`."""

    value: float = 1e-6
    relative: bool = False

    def accepts(self, got: float, want: float) -> bool:
        allowed = self.value * abs(want) if self.relative else self.value
        return abs(got - want) <= allowed + 1e-12

    def __str__(self) -> str:
        return f"{self.value * 100:g}%" if self.relative else f"{self.value:g}"


def parse_tolerance(text: str) -> Tolerance:
    """ "0.01" -> absolute 0.01; "1%" -> relative 1 %. ValueError for anything else."""
    raw = text.strip()
    relative = raw.endswith("%")
    value = float(raw[:-1] if relative else raw)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"not a tolerance: {text}")
    return Tolerance(value / 100 if relative else value, relative)


_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")


def _to_float(text: str) -> float | None:
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def number_in(answer: str) -> float | None:
    """The number an answer gives: the first after its last "Answer:" (or "="), else its
    last number. Thousands separators ("1,000") are read; None when there is none."""
    marks = [*_ANSWER_MARK.finditer(answer), *re.finditer(r"=\s*", answer)]
    if marks:
        after = answer[max(m.end() for m in marks) :]
        first = _NUMBER.search(after)
        if first:
            return _to_float(first.group(0))
    numbers = _NUMBER.findall(answer)
    return _to_float(numbers[-1]) if numbers else None


def number_matches(answer: str, expected: str, tolerance: Tolerance) -> bool:
    want = _to_float(str(expected))
    got = number_in(answer)
    return want is not None and got is not None and tolerance.accepts(got, want)


def read_judgement(text: str) -> bool | None:
    """A judge's verdict: True (pass), False (fail), None when it cannot be read.

    JSON first ({"verdict": "pass"}, {"pass": true}, {"correct": false}), then a
    PASS / FAIL / CORRECT / INCORRECT word, the first one stated.
    """
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        try:
            data = json.loads(text[start : end + 1])
        except ValueError:
            data = None
        if isinstance(data, dict):
            for key in ("pass", "correct", "passed"):
                if isinstance(data.get(key), bool):
                    return bool(data[key])
            verdict = data.get("verdict", data.get("grade"))
            if isinstance(verdict, str) and normalise(verdict) in _WORDS:
                return _WORDS[normalise(verdict)]
    word = re.search(r"\b(pass|fail|correct|incorrect|wrong)\b", text, re.IGNORECASE)
    return _WORDS[word.group(1).casefold()] if word else None


_WORDS = {"pass": True, "correct": True, "fail": False, "incorrect": False, "wrong": False}


def check_expected(
    scorer: str, expected: Any, choices: Sequence[str] | None, tolerance: Tolerance | None = None
) -> str | None:
    """Why an item cannot be scored by `scorer` (a bad line's reason), or None when it can."""
    del tolerance
    if expected is None or (isinstance(expected, str) and not expected.strip()):
        return 'no "expected" answer'
    if not isinstance(expected, str | int | float) or isinstance(expected, bool):
        return '"expected" is not a string or a number'
    if choices is not None and (
        not isinstance(choices, list)
        or not 2 <= len(choices) <= 26
        or not all(isinstance(c, str | int | float) for c in choices)
    ):
        return '"choices" is not a list of 2 to 26 options'
    known = SCORER_REGISTRY.get(scorer)
    if known is None or known.check is None:
        return None
    return known.check(str(expected), None if choices is None else [str(c) for c in choices])


# -- the scorers: a new one is one entry in SCORER_REGISTRY -----------------------------------

Choices = Sequence[str] | None


@dataclass(frozen=True)
class Scorer:
    """How answers are scored: what it reads from an answer and whether that is right,
    and why an item's `expected` (and choices) cannot be scored by it (None: they can).

    `asks_model`: the scorer is a model's judgement (`judge`), which the eval runs; its
    `score` is only the plain reading used where there is no judgement to ask for.
    """

    score: Callable[[str, str, Choices, Tolerance], tuple[Any, bool]]
    check: Callable[[str, Choices], str | None] | None = None
    asks_model: bool = False


def _final_line(answer: str) -> str:
    lines = [line.strip() for line in answer.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def _score_exact(answer: str, expected: str, choices: Choices, tolerance: Tolerance) -> Any:
    return _final_line(answer), exact(answer, expected)


def _score_choice(answer: str, expected: str, choices: Choices, tolerance: Tolerance) -> Any:
    assert choices is not None  # checked on reading: the choice scorer needs choices
    got = choice_letter(answer, choices)
    return got, got is not None and got == expected_letter(expected, choices)


def _check_choice(expected: str, choices: Choices) -> str | None:
    if choices is None:
        return 'the choice scorer needs "choices"'
    if expected_letter(expected, choices) is None:
        return f'"expected" ({expected}) is neither a letter nor one of the choices'
    return None


def _score_regex(answer: str, expected: str, choices: Choices, tolerance: Tolerance) -> Any:
    return None, regex_matches(answer, expected)


def _check_regex(expected: str, choices: Choices) -> str | None:
    try:
        re.compile(expected)
    except re.error as error:
        return f'"expected" is not a regular expression: {error}'
    return None


def _score_number(answer: str, expected: str, choices: Choices, tolerance: Tolerance) -> Any:
    return number_in(answer), number_matches(answer, expected, tolerance)


def _check_number(expected: str, choices: Choices) -> str | None:
    return f'"expected" ({expected}) is not a number' if _to_float(expected) is None else None


SCORER_REGISTRY: dict[str, Scorer] = {
    "exact": Scorer(_score_exact),
    "choice": Scorer(_score_choice, _check_choice),
    "regex": Scorer(_score_regex, _check_regex),
    "number": Scorer(_score_number, _check_number),
    "judge": Scorer(_score_exact, asks_model=True),
    # A jury of personas grades against `expected` (app/eval/jury.py); kappa vs the labels.
    "jury": Scorer(_score_exact, asks_model=True),
}
SCORERS = tuple(SCORER_REGISTRY)


def score(
    scorer: str, answer: str, expected: str, choices: Choices, tolerance: Tolerance
) -> tuple[Any, bool]:
    """(what `scorer` read from the answer, whether it is right); exact for an unknown one."""
    known = SCORER_REGISTRY.get(scorer, SCORER_REGISTRY["exact"])
    return known.score(answer, expected, choices, tolerance)


def wilson(correct: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a rate of `correct` in `n` (95 % by default).

    Unlike p ± z·se it stays within [0, 1] and is sound for small n and rates near
    0 or 1. n = 0 says nothing: (0.0, 1.0).
    """
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    # At 0 and n the bound is exactly the rate (rounding would put it a hair past it).
    low = 0.0 if correct <= 0 else max(0.0, centre - half)
    high = 1.0 if correct >= n else min(1.0, centre + half)
    return low, high


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), linear between the nearest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    at = (len(ordered) - 1) * q / 100
    low, high = math.floor(at), math.ceil(at)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


@dataclass(frozen=True)
class StrategySummary:
    """One strategy over an eval's items: accuracy with its Wilson interval, and its cost.

    `failed` items are those where the strategy produced no answer (every call
    failed): they count as wrong. `cost_usd` None: no call's cost was known.
    The judge's own calls (`--scorer judge`) are counted apart, in `judge_*`. Token
    counts None: no call reported them.
    """

    name: str
    n: int
    correct: int
    failed: int
    calls: int
    tokens_in: int | None  # None: no call reported it
    tokens_out: int | None
    cost_usd: float | None
    latency_p50: float | None
    latency_p95: float | None
    judge_calls: int = 0
    judge_tokens: int = 0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.correct, self.n) if self.n else None

    def to_dict(self) -> dict[str, Any]:
        low, high = self.interval or (None, None)
        accuracy = self.accuracy
        return {
            "name": self.name,
            "accuracy": round(accuracy, 6) if accuracy is not None else None,
            "ci_low": round(low, 6) if low is not None else None,
            "ci_high": round(high, 6) if high is not None else None,
            "n": self.n,
            "correct": self.correct,
            "failed": self.failed,
            "calls": self.calls,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": self.cost_usd,
            "latency_p50": _rounded(self.latency_p50),
            "latency_p95": _rounded(self.latency_p95),
            "judge_calls": self.judge_calls,
            "judge_tokens": self.judge_tokens,
        }


def _rounded(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


def summarize(lines: Iterable[dict[str, Any]], order: Sequence[str] = ()) -> list[StrategySummary]:
    """Per strategy, from eval result lines ({"strategy", "correct", "status", "metrics"}).

    Strategies come in `order` first, then as first seen.
    """
    grouped: dict[str, list[dict[str, Any]]] = {name: [] for name in order}
    for line in lines:
        grouped.setdefault(str(line.get("strategy")), []).append(line)
    return [_summary(name, rows) for name, rows in grouped.items()]


def _known_sum(values: Iterable[Any]) -> int | None:
    """The sum of the counts that are known; None when none is."""
    known = [int(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return sum(known) if known else None


def _summary(name: str, rows: list[dict[str, Any]]) -> StrategySummary:
    metrics = [row.get("metrics") or {} for row in rows]
    known = [m["cost_usd"] for m in metrics if isinstance(m.get("cost_usd"), int | float)]
    # Free runs beside runs of unknown cost are no "$0": the cost is unknown.
    costs = known if sum(known) or len(known) == len(metrics) else []
    latencies = [float(m["latency"]) for m in metrics if isinstance(m.get("latency"), int | float)]
    return StrategySummary(
        name=name,
        n=len(rows),
        correct=sum(1 for row in rows if row.get("correct") is True),
        failed=sum(1 for row in rows if row.get("status") == "failed"),
        calls=sum(int(m.get("calls") or 0) for m in metrics),
        tokens_in=_known_sum(m.get("tokens_in") for m in metrics),
        tokens_out=_known_sum(m.get("tokens_out") for m in metrics),
        cost_usd=round(sum(costs), 6) if costs else None,
        latency_p50=percentile(latencies, 50),
        latency_p95=percentile(latencies, 95),
        judge_calls=sum(int(m.get("judge_calls") or 0) for m in metrics),
        judge_tokens=sum(
            int(m.get("judge_tokens_in") or 0) + int(m.get("judge_tokens_out") or 0)
            for m in metrics
        ),
    )
