"""Reading arbiter verdicts leniently, and never crashing on a bad one."""

from __future__ import annotations

import pytest

from council.engine.convergence import ends_council, parse_verdict, position_change
from council.engine.model import Verdict

GOOD = '{"converged": true, "confidence": 0.9, "synthesis": "Do it.", "dissent": ["critic: risk"]}'


def test_plain_json():
    verdict = parse_verdict(GOOD)
    assert verdict == Verdict(True, 0.9, "Do it.", ("critic: risk",))
    assert verdict.problem is None


@pytest.mark.parametrize(
    "raw",
    [
        f"```json\n{GOOD}\n```",
        f"Here is my verdict:\n{GOOD}\nThanks.",
        f'{{"note": "draft"}} then {GOOD}',
    ],
)
def test_fences_and_text_around_the_object(raw):
    assert parse_verdict(raw).synthesis == "Do it."


def test_lenient_types():
    verdict = parse_verdict(
        '{"converged": "yes", "confidence": "85%", "synthesis": "S", "dissent": "skeptic"}'
    )
    assert verdict.converged is True
    assert verdict.confidence == pytest.approx(0.85)
    assert verdict.dissent == ("skeptic",)
    assert (
        parse_verdict('{"converged": false, "confidence": 70, "synthesis": "S"}').confidence == 0.7
    )
    assert (
        parse_verdict('{"converged": false, "confidence": 7, "synthesis": "S"}').confidence == 0.07
    )


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("I think they agree.", "no JSON object"),
        ('{"converged": "maybe", "confidence": 1, "synthesis": "S"}', "'converged'"),
        ('{"converged": true, "confidence": "high", "synthesis": "S"}', "'confidence'"),
        ('{"converged": true, "confidence": 1}', "'synthesis'"),
        ('{"converged": true, "confidence": 1, "synthesis": "S", "dissent": 3}', "'dissent'"),
        ('{"converged": true, "confidence": 0.9, "synthesis": "S"', "no JSON object"),
    ],
)
def test_unreadable_verdicts_do_not_converge(raw, problem):
    verdict = parse_verdict(raw)
    assert verdict.converged is False
    assert verdict.problem is not None and problem in verdict.problem
    assert verdict.synthesis == raw.strip()
    assert not ends_council(verdict, threshold=0.0)


def test_threshold():
    verdict = parse_verdict(GOOD)
    assert ends_council(verdict, threshold=0.8)
    assert not ends_council(verdict, threshold=0.95)
    not_converged = parse_verdict('{"converged": false, "confidence": 1, "synthesis": "S"}')
    assert not ends_council(not_converged, threshold=0.0)


def test_position_change():
    assert position_change("Yes, ship it now.", "yes ship it now") == 0.0
    assert position_change("alpha beta", "gamma delta") == 1.0
    assert 0 < position_change("ship it now", "do not ship it") < 1
    assert position_change("", "") == 0.0
