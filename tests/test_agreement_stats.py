"""Issue 26, point 2: the jury's agreement statistics, on published worked examples."""

from __future__ import annotations

import pytest

from council.engine.agreement_stats import (
    category_counts,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
)

# Fleiss (1971), as Wikipedia's "Fleiss' kappa" worked example: 14 raters, 10 items,
# 5 categories; P-bar = 0.378, P-bar-e = 0.213, kappa = 0.210.
FLEISS_EXAMPLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: four
# observers, twelve units, missing values; alpha nominal 0.743, interval 0.849.
_ = None
OBSERVERS = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, _, _, _],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _, 3],
    [_, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _],
]
UNITS = [list(unit) for unit in zip(*OBSERVERS, strict=True)]


def test_fleiss_kappa_on_fleiss_1971() -> None:
    assert fleiss_kappa(FLEISS_EXAMPLE) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_kappa_from_labels_and_its_limits() -> None:
    labels = [["a", "a", "b"], ["b", "b", "b"], ["a", "b", "a"]]
    assert category_counts(labels) == [[2, 1], [0, 3], [2, 1]]
    assert fleiss_kappa(category_counts([["x", "x"], ["x", "x"]])) is None  # no room to disagree
    assert fleiss_kappa(category_counts([["a", "a"], ["b", "b"]])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same number of raters"):
        fleiss_kappa([[1, 1], [2, 0, 1]])


def test_cohen_kappa_on_the_textbook_example() -> None:
    # Wikipedia's "Cohen's kappa": 50 proposals, yes/yes 20, yes/no 5, no/yes 10, no/no 15.
    first = ["yes"] * 25 + ["no"] * 25
    second = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(first, second) == pytest.approx(0.4)
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None


def test_krippendorff_alpha_on_krippendorff_2011() -> None:
    assert krippendorff_alpha(UNITS, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(UNITS, "interval") == pytest.approx(0.849, abs=5e-4)


def test_krippendorff_alpha_binary_two_observers() -> None:
    # Krippendorff (2011), section A: two observers, ten units, binary; alpha 0.095.
    first = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0]
    second = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    units = [list(pair) for pair in zip(first, second, strict=True)]
    assert krippendorff_alpha(units, "nominal") == pytest.approx(0.095, abs=5e-4)
    assert krippendorff_alpha([[3, 3], [3, None]]) is None
