"""`council eval`: scorers, Wilson intervals, and strategies end to end on the fake server."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from council.engine.scoring import (
    StrategySummary,
    Tolerance,
    check_expected,
    choice_letter,
    exact,
    expected_letter,
    normalise,
    number_in,
    number_matches,
    parse_tolerance,
    percentile,
    read_judgement,
    regex_matches,
    summarize,
    wilson,
)
from tests.fake_openai import Reply
from tests.helpers import invoke

CITIES = ["Paris", "Lyon", "Nice", "Lille"]
JSON_KEYS = {
    "name",
    "accuracy",
    "ci_low",
    "ci_high",
    "n",
    "correct",
    "calls",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "latency_p50",
    "latency_p95",
}

# -- scorers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        "Paris",
        "paris.",
        "  PARIS!  ",
        "**Paris**",
        '"Paris"',
        "It is in France.\nParis",
        "Let me think.\nAnswer: Paris",
        "The answer is Paris.",
        "**Final answer:** `Paris`",
    ],
)
def test_exact_accepts_the_answer_however_it_is_dressed(answer: str) -> None:
    assert exact(answer, "Paris")


@pytest.mark.parametrize(
    "answer", ["Lyon", "Paris is big", "Not Paris", "Answer: Paris, or maybe Lyon", ""]
)
def test_exact_refuses_another_answer(answer: str) -> None:
    assert not exact(answer, "Paris")


@pytest.mark.parametrize(
    ("answer", "letter"),
    [
        ("B", "B"),
        ("(B)", "B"),
        ("b", "B"),
        ("Answer: B", "B"),
        ("answer: b", "B"),
        ("the answer is b) Lyon", "B"),
        ("The answer is (c).", "C"),
        ("**Answer:** D", "D"),
        ("B) Lyon, because of the silk trade.", "B"),
        ("Lyon", "B"),
        ("I would say Lyon, the silk city.", "B"),
        ("Answer: A. No, wait. Answer: C", "C"),
        ("The answer is a bit unclear, but it must be Nice", "C"),
    ],
)
def test_choice_reads_a_letter_or_an_option(answer: str, letter: str) -> None:
    assert choice_letter(answer, CITIES) == letter


@pytest.mark.parametrize("answer", ["Paris or Lyon", "I do not know", "Answer: E", ""])
def test_choice_reads_nothing_from_no_single_option(answer: str) -> None:
    assert choice_letter(answer, CITIES) is None


def test_expected_may_be_a_letter_or_the_option_text() -> None:
    assert expected_letter("c", CITIES) == "C"
    assert expected_letter("(B)", CITIES) == "B"
    assert expected_letter("lille", CITIES) == "D"
    assert expected_letter("Marseille", CITIES) is None


@given(st.integers(2, 26), st.data())
def test_any_stated_letter_is_read(count: int, data: st.DataObject) -> None:
    choices = [f"option number {i}" for i in range(count)]
    letter = chr(ord("A") + data.draw(st.integers(0, count - 1)))
    form = data.draw(st.sampled_from(["Answer: {}", "({})", "{}", "The answer is {}.", "{}) x"]))
    assert choice_letter(form.format(letter), choices) == letter


@given(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 ,'-]{0,30}", fullmatch=True).filter(
        lambda s: "answer" not in s.lower()
    )
)
def test_an_answer_line_is_exact_whatever_comes_before(text: str) -> None:
    assert exact(f"Some reasoning first.\nAnswer: {text}", text)
    assert normalise(normalise(text)) == normalise(text)


def test_regex_searches_ignoring_case() -> None:
    assert regex_matches("The result is O(n log n).", r"O\(n\s*log\s*n\)")
    assert regex_matches("YES, it is", r"^yes\b")
    assert not regex_matches("no", r"^yes\b")


@pytest.mark.parametrize(
    ("answer", "number"),
    [
        ("42", 42.0),
        ("about 3,141.6 metres", 3141.6),
        ("2 + 2 = 4", 4.0),
        ("The answer is 12 apples, not 13", 12.0),
        ("first 1, then 2, finally -7.5", -7.5),
        ("1.5e3", 1500.0),
        ("no number", None),
    ],
)
def test_the_number_an_answer_gives(answer: str, number: float | None) -> None:
    assert number_in(answer) == number


def test_number_tolerance_absolute_and_relative() -> None:
    assert number_matches("100.5", "100", parse_tolerance("1%"))
    assert not number_matches("103", "100", parse_tolerance("1%"))
    assert number_matches("0.3", "0.30000001", Tolerance())
    assert not number_matches("0.31", "0.3", Tolerance())
    assert number_matches("0.31", "0.3", parse_tolerance("0.02"))
    with pytest.raises(ValueError):
        parse_tolerance("-1")


@given(st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_any_number_stated_is_read_back(value: float) -> None:
    assert number_matches(f"So the answer is {value!r}.", repr(value), Tolerance())


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ('{"verdict": "pass", "reason": "same"}', True),
        ('Here: {"verdict": "FAIL", "reason": "no"}', False),
        ('{"pass": true}', True),
        ('{"correct": false}', False),
        ("PASS - it matches", True),
        ("Incorrect: it says Lyon", False),
        ("I cannot tell", None),
    ],
)
def test_a_judges_verdict_is_read_from_json_or_words(reply: str, verdict: bool | None) -> None:
    assert read_judgement(reply) is verdict


def test_items_a_scorer_cannot_score_are_refused_with_a_reason() -> None:
    assert check_expected("exact", "Paris", None) is None
    assert "no" in (check_expected("exact", "", None) or "")
    assert "needs" in (check_expected("choice", "A", None) or "")
    assert "neither" in (check_expected("choice", "Z", CITIES) or "")
    assert "regular expression" in (check_expected("regex", "(", None) or "")
    assert "not a number" in (check_expected("number", "many", None) or "")
    assert "list" in (check_expected("exact", "A", ["only one"]) or "")


# -- Wilson intervals and summaries ------------------------------------------------------


@pytest.mark.parametrize(
    ("correct", "n", "low", "high"),
    [
        (8, 10, 0.4902, 0.9433),  # the textbook example
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (50, 100, 0.4038, 0.5962),
        (1, 1, 0.2065, 1.0),
    ],
)
def test_wilson_interval_known_values(correct: int, n: int, low: float, high: float) -> None:
    got = wilson(correct, n)
    assert got == pytest.approx((low, high), abs=5e-5)


@given(st.integers(1, 10_000), st.data())
def test_wilson_interval_holds_the_rate_within_0_and_1(n: int, data: st.DataObject) -> None:
    correct = data.draw(st.integers(0, n))
    low, high = wilson(correct, n)
    assert 0.0 <= low <= correct / n <= high <= 1.0
    assert high - low <= 2 * 1.96 * math.sqrt(0.25 / n) + 1e-9  # never wider than the worst case


def test_percentiles_and_summary() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    lines = [
        {"strategy": "a", "status": "ok", "correct": True, "metrics": {"calls": 1, "latency": 1}},
        {"strategy": "a", "status": "failed", "correct": False, "metrics": {"calls": 1}},
        {"strategy": "b", "status": "ok", "correct": True, "metrics": {"cost_usd": 0.5}},
    ]
    a, b = summarize(lines, ["a", "b"])
    assert (a.n, a.correct, a.failed, a.calls, a.cost_usd) == (2, 1, 1, 2, None)
    assert (b.accuracy, b.cost_usd) == (1.0, 0.5)
    empty = StrategySummary("x", 0, 0, 0, 0, None, None, None, None, None).to_dict()
    assert empty["accuracy"] is None and empty["tokens_in"] is None


# -- end to end --------------------------------------------------------------------------


def write_items(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return path


def city_items(tmp_path: Path, count: int = 4) -> Path:
    items = [
        {"id": f"q{i}", "query": f"Which city, {i}?", "choices": CITIES, "expected": "C"}
        for i in range(count)
    ]
    return write_items(tmp_path / "cities.jsonl", items)


def run_eval(fake: Any, data: Path, *args: str) -> Any:
    return invoke("eval", str(data), "--base-url", fake.base_url, "--max-concurrency", "1", *args)


def eval_json(fake: Any, data: Path, *args: str) -> dict[str, Any]:
    result = run_eval(fake, data, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in document["strategies"]}


def test_a_persona_alone_and_synthesize_are_scored_side_by_side(fake, tmp_path):
    data = city_items(tmp_path)
    right, wrong = Reply(text="Nice it is.\nAnswer: C"), Reply(text="Answer: B")
    fake.script("skeptic", right, right, right, wrong)
    fake.script("arbiter", Reply(text="## Recommendation\n**Answer:** C"), wrong, right, wrong)
    document = eval_json(fake, data, "-p", "judge,critic", "--strategies", "skeptic,synthesize")
    skeptic, synthesize = by_name(document).values()
    assert set(skeptic) >= JSON_KEYS
    assert (skeptic["accuracy"], skeptic["correct"], skeptic["n"]) == (0.75, 3, 4)
    assert (skeptic["ci_low"], skeptic["ci_high"]) == pytest.approx(wilson(3, 4), abs=1e-6)
    assert (synthesize["accuracy"], synthesize["n"]) == (0.5, 4)
    # One call per item alone; two personas and the arbiter per item for synthesize.
    assert (skeptic["calls"], synthesize["calls"]) == (4, 12)
    assert len(fake.requests_for("skeptic")) == 4 and len(fake.requests_for("arbiter")) == 4
    assert skeptic["tokens_in"] > 0 and skeptic["tokens_out"] > 0
    assert skeptic["cost_usd"] is None  # no price known: unknown, never 0
    assert skeptic["latency_p50"] <= skeptic["latency_p95"]
    # Each item was asked with its options lettered and how to answer.
    prompt = fake.requests_for("skeptic")[0].body["messages"][-1]["content"]
    assert "C) Nice" in prompt and "Answer: <letter>" in prompt


def verdict(synthesis: str) -> Reply:
    body = {"converged": True, "confidence": 0.9, "synthesis": synthesis, "dissent": []}
    return Reply(text=json.dumps(body))


def test_deliberate_is_scored_on_its_final_answer(fake, tmp_path):
    items = [{"id": f"n{i}", "query": "6 × 7?", "expected": "42"} for i in range(3)]
    data = write_items(tmp_path / "sums.jsonl", items)
    fake.script("arbiter", verdict("Answer: 42"), verdict("Answer: 41"), verdict("It is 42.\n42"))
    document = eval_json(
        fake, data, "-p", "judge,critic", "--strategies", "deliberate", "--rounds", "1"
    )
    (deliberate,) = document["strategies"]
    assert (deliberate["correct"], deliberate["n"], deliberate["calls"]) == (2, 3, 9)
    assert deliberate["accuracy"] == pytest.approx(2 / 3, abs=1e-6)


def test_number_scorer_with_a_relative_tolerance(fake, tmp_path):
    items = [{"id": f"m{i}", "query": "How far?", "expected": "100"} for i in range(2)]
    data = write_items(tmp_path / "far.jsonl", items)
    fake.script("skeptic", Reply(text="About 100.5 km."), Reply(text="Answer: 103"))
    document = eval_json(
        fake, data, "--strategies", "skeptic", "--scorer", "number", "--tolerance", "1%"
    )
    assert document["strategies"][0]["correct"] == 1


def test_judge_scorer_grades_with_a_persona_and_counts_its_calls_apart(fake, tmp_path):
    question = "Why is the sky blue?"
    items = [{"id": f"o{i}", "query": question, "expected": "Rayleigh"} for i in (1, 2)]
    data = write_items(tmp_path / "open.jsonl", items)
    fake.script("historian", Reply(text='{"verdict": "pass"}'), Reply(text="FAIL: no"))
    document = eval_json(
        fake,
        data,
        "--strategies",
        "skeptic",
        "--scorer",
        "judge",
        "--judge-persona",
        "historian",
    )
    (skeptic,) = document["strategies"]
    assert (skeptic["correct"], skeptic["calls"], skeptic["judge_calls"]) == (1, 2, 2)
    rubric = fake.requests_for("historian")[0].body["messages"][-1]["content"]
    assert "<reference>\nRayleigh\n</reference>" in rubric and "skeptic says" in rubric


def test_eval_resumes_from_its_out_file_without_asking_again(fake, tmp_path):
    data = city_items(tmp_path, count=3)
    out = tmp_path / "results.jsonl"
    fake.script("skeptic", Reply(text="Answer: C"), Reply(status=400), Reply(text="Answer: C"))
    first = run_eval(fake, data, "--strategies", "skeptic", "--out", str(out), "--retries", "0")
    assert first.exit_code == 0, first.output
    assert len(fake.requests_for("skeptic")) == 3
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == ["q0::skeptic", "q1::skeptic", "q2::skeptic"]
    assert [line["status"] for line in lines].count("failed") == 1
    for line in lines:
        assert {"id", "strategy", "answer", "predicted", "expected", "correct", "metrics"} <= set(
            line
        )
    # Again: only the failed pair is asked; the report covers the whole file.
    fake.script("skeptic", Reply(text="(C)"))
    document = eval_json(fake, data, "--strategies", "skeptic", "--out", str(out))
    assert len(fake.requests_for("skeptic")) == 4
    assert (document["asked"], document["reused"]) == (1, 2)
    assert by_name(document)["skeptic"]["correct"] == 3
    # A third time nothing is asked at all, and --items lists what was wrong (nothing).
    third = run_eval(fake, data, "--strategies", "skeptic", "--out", str(out), "--items")
    assert third.exit_code == 0 and len(fake.requests_for("skeptic")) == 4
    assert "skeptic: 0 of 3 wrong" in third.stdout
    assert len(out.read_text().splitlines()) == 3  # one line per pair, the redone one replaced


def test_zero_accuracy_still_exits_0_with_a_table_and_wrong_items(fake, tmp_path):
    data = city_items(tmp_path, count=2)
    csv_path = tmp_path / "table.csv"
    result = run_eval(fake, data, "--strategies", "skeptic", "--csv", str(csv_path), "--items")
    assert result.exit_code == 0, result.output
    assert "| skeptic | 0.0 % | 0.0–65.8 % | 2 |" in result.stdout
    assert "skeptic: 2 of 2 wrong" in result.stdout
    assert "- q0: got" in result.stdout and "expected C" in result.stdout
    rows = list(csv.DictReader(csv_path.open()))
    assert [(r["name"], r["accuracy"], r["n"], r["cost_usd"], r["kind"]) for r in rows] == [
        ("skeptic", "0.0", "2", "", "strategy"),
        # With no council strategy, the baselines are read from the persona-alone one.
        ("best single (skeptic)", "0.0", "2", "", "baseline"),
        ("majority vote", "0.0", "2", "", "baseline"),
    ]
    assert float(rows[0]["ci_high"]) == pytest.approx(wilson(0, 2)[1], abs=1e-6)


def test_default_strategies_are_the_first_persona_and_a_vote(fake, tmp_path):
    document = eval_json(fake, city_items(tmp_path, count=1), "-p", "critic,judge")
    assert [s["name"] for s in document["strategies"]] == ["critic", "vote"]


def test_vote_is_scored_on_the_majority_of_real_ballots(fake, tmp_path):
    data = city_items(tmp_path, count=2)

    def ballot(choice: str) -> Reply:
        return Reply(text=json.dumps({"choice": choice, "confidence": 0.8, "reason": "r"}))

    # Item by item, in order (--max-concurrency 1): q0 C by majority, q1 B by majority.
    fake.script("judge", ballot("C"), ballot("B"))
    fake.script("critic", ballot("C"), ballot("B"))
    fake.script("skeptic", ballot("A"), ballot("C"))
    document = eval_json(fake, data, "-p", "judge,critic,skeptic", "--strategies", "vote")
    (vote,) = document["strategies"]
    assert (vote["name"], vote["n"], vote["correct"]) == ("vote", 2, 1)
    assert vote["accuracy"] == 0.5
    # The ballots were asked with the item's option letters as the choices.
    assert all('"A", "B", "C", "D"' in str(r.body) for r in fake.requests if r.body)


def test_rank_is_scored_on_the_answer_ranked_first(fake, tmp_path):
    data = city_items(tmp_path, count=1)
    fake.script(
        "judge", Reply(text="Answer: C"), Reply(text="FINAL RANKING:\n1. Response A\n2. Response B")
    )
    fake.script(
        "critic",
        Reply(text="Answer: B"),
        Reply(text="FINAL RANKING:\n1. Response A\n2. Response B"),
    )
    fake.script(
        "skeptic",
        Reply(text="Answer: D"),
        Reply(text="FINAL RANKING:\n1. Response A\n2. Response B"),
    )
    document = eval_json(fake, data, "-p", "judge,critic,skeptic", "--strategies", "rank")
    (rank,) = document["strategies"]
    assert rank["name"] == "rank" and rank["n"] == 1
    assert rank["calls"] == 6  # three answers, three reviews
    assert rank["correct"] in (0, 1)  # which answer is first depends on the seeded labels


def test_an_items_own_scorer_is_used_unless_the_flag_names_one(fake, tmp_path):
    data = write_items(
        tmp_path / "mixed.jsonl",
        [
            {"id": "n", "query": "12 x 12?", "expected": "144", "scorer": "number"},
            {"id": "w", "query": "Opposite of hot?", "expected": "cold"},
            {"id": "bad", "query": "?", "expected": "x", "scorer": "vibes"},
        ],
    )
    fake.script("skeptic", Reply(text="12 × 12 = 144"), Reply(text="cold"))
    result = run_eval(fake, data, "--strategies", "skeptic", "--json")
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)["strategies"]
    assert (entry["n"], entry["correct"]) == (2, 2)  # "12 × 12 = 144" is 144 as a number
    assert f"{data}:3: unknown scorer 'vibes'" in result.stderr
    fake.script("skeptic", Reply(text="12 × 12 = 144"), Reply(text="cold"))
    flagged = run_eval(fake, data, "--strategies", "skeptic", "--json", "--scorer", "exact")
    (entry,) = json.loads(flagged.stdout)["strategies"]
    assert (entry["n"], entry["correct"]) == (2, 1)  # the flag wins: not exactly "144"


def test_bad_lines_are_reported_with_their_numbers_and_skipped(fake, tmp_path):
    data = tmp_path / "mixed.jsonl"
    data.write_text(
        '{"id": "a", "query": "2+2?", "expected": "4"}\n'
        "not json\n"
        '{"id": "b", "query": "Pick", "choices": ["x", "y"], "expected": "Z"}\n'
        '{"id": "c", "query": "no answer given"}\n',
        encoding="utf-8",
    )
    result = run_eval(fake, data, "--strategies", "skeptic")
    assert result.exit_code == 0, result.output
    assert f"{data}:2:" in result.stderr and f"{data}:3:" in result.stderr
    assert f'{data}:4: no "expected" answer' in result.stderr
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.jsonl"], "missing.jsonl"),
        (["EMPTY", "--strategies", "skeptic"], "has no item to evaluate"),
        (["DATA", "--strategies", "nobody"], "nobody"),
        (["DATA", "--scorer", "fuzzy"], "unknown scorer 'fuzzy'"),
        (["DATA", "--scorer", "number", "--tolerance", "lots"], "--tolerance lots"),
        (["DATA", "--strategies", "skeptic,skeptic"], "twice"),
        (["DATA", "--out", "-"], "--out needs a file"),
    ],
)
def test_a_bad_data_file_or_flag_is_one_line_and_exit_2(fake, tmp_path, args, message):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    data = city_items(tmp_path, count=1)
    args = [{"EMPTY": str(empty), "DATA": str(data)}.get(a, a) for a in args]
    result = invoke("eval", *args, "--base-url", fake.base_url)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert not fake.requests


def test_an_endpoint_that_is_down_is_exit_1_in_one_line(tmp_path):
    data = city_items(tmp_path, count=2)
    result = invoke(
        "eval", str(data), "--base-url", "http://127.0.0.1:9/v1", "--retries", "0",
        "--strategies", "skeptic",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "cannot reach" in result.stderr and result.stderr.count("\n") == 1


def test_items_run_concurrently_under_the_cap(fake, tmp_path):
    fake.default = Reply(ttft=0.2, tokens=2)
    data = city_items(tmp_path, count=6)
    result = invoke(
        "eval", str(data), "--base-url", fake.base_url, "--max-concurrency", "3",
        "--strategies", "skeptic", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert fake.peak_concurrency == 3 and len(fake.requests) == 6


def test_the_example_set_reads_and_scores_as_shipped():
    from council.app.batch.items import read_items

    path = Path(__file__).parent.parent / "examples" / "eval-basics.jsonl"
    items = list(read_items(str(path), strict=True))
    assert len(items) == 20
    for item in items:
        choices = item.fields.get("choices")
        scorer = "choice" if choices else "exact"
        assert check_expected(scorer, item.fields["expected"], choices) is None, item.id


def test_eval_help_shows_examples_and_defaults_without_openai():
    from tests.test_help import flowing, help_text

    text = help_text("eval", "--help", columns=100)
    words = flowing(text)
    assert "Examples:" in text and "council eval examples/eval-basics.jsonl" in words
    assert "[default: choice for items with choices, else exact]" in words
    assert "[default: the arbiter]" in words
    for panel in ("Evaluation", "Endpoint", "Output"):
        assert f"─ {panel} ─" in text
    assert max(len(line) for line in text.splitlines()) <= 100


def test_vote_and_rank_answers_from_their_results():
    from types import SimpleNamespace

    from council.app.eval.strategies import answer_of

    answered = SimpleNamespace(answered=True, text="Answer: B", message="")
    won = SimpleNamespace(vote=SimpleNamespace(winner="B", winners=("B",)))
    tied = SimpleNamespace(vote=SimpleNamespace(winner=None, winners=("A", "B")))
    ranked = SimpleNamespace(
        ranking=SimpleNamespace(order=("critic", "judge")), outcomes={"critic": answered}
    )
    assert answer_of("vote", won, {}) == ("B", "")
    answer, note = answer_of("vote", tied, {})
    assert answer == "" and note == "tie (A, B): counted wrong"
    assert answer_of("rank", ranked, {}) == ("Answer: B", "top: critic")


def until(predicate: Any, timeout: float) -> None:
    """Wait for `predicate()` to hold, looking every 20 ms; fail after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("signum", "code", "how"), [(15, 143, "stopped by SIGTERM"), (2, 130, "interrupted")]
)
def test_a_stopped_eval_keeps_what_finished_and_says_how_to_go_on(
    fake, tmp_path, signum, code, how
):
    from tests.helpers import council_process

    data = city_items(tmp_path, count=4)
    out = tmp_path / "results.jsonl"
    answer = Reply(text="Answer: C")
    fake.script("skeptic", answer, answer, Reply(gate="never"), Reply(gate="never"))
    process = council_process(
        "eval", str(data), "--base-url", fake.base_url, "--strategies", "skeptic",
        "--out", str(out), "--max-concurrency", "4",
    )  # fmt: skip
    try:
        fake.wait_for(lambda f: f.in_flight == 2 and len(f.requests) == 4, timeout=20)
        # The file is not the fake's state (its wait_for wakes on the fake's changes only).
        until(lambda: out.exists() and len(out.read_text().splitlines()) == 2, timeout=20)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == code, stderr
    assert f"council: eval {how}; 2 of 4 runs had finished" in stderr
    assert "the same command goes on" in stderr
    assert "| skeptic | 100.0 % |" in stdout  # the report of what finished
    assert len(out.read_text().splitlines()) == 2
