"""Issue 26, point 3: reviewer bias measured in `--rank` and `council judge`, and
`council stats --bias`, against the fake server with reviewers that read their prompt."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from council import Council
from council.engine.bias import bias_report, place_shares, spearman
from council.render.rich_report import oracle_renderable
from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import invoke, oracle, oracle_json

QUESTION = "Which queue should we use for the billing events?"
PERSONAS = ("judge", "skeptic", "optimist", "pragmatist")
# Four lengths, none the same, and no author named in its text.
ANSWERS = {
    "judge": "Use Kafka.",
    "skeptic": "Use a Postgres table as a queue until the volume says otherwise.",
    "optimist": "Use SQS: managed, cheap at this volume.",
    "pragmatist": "Use RabbitMQ: simple routing, it is in the stack today, and the team knows it.",
}
BY_TEXT = {text: name for name, text in ANSWERS.items()}

# A reviewer: the authors of the answers shown, in label order -> that order, best first.
Reviewer = Callable[[str, list[str]], list[str]]


def shown_in(body: dict[str, Any]) -> list[str]:
    """The authors of the answers a ranking request shows, in label order."""
    content = body["messages"][-1]["content"]
    blocks = re.findall(r'<response label="Response [A-Z]">\n(.*?)\n</response>', content, re.S)
    return [BY_TEXT[text] for text in blocks]


def reviewer_reply(persona: str, rank: Reviewer) -> Reply:
    """A reviewer that reasons, then ranks what its prompt shows as `rank` says."""

    def respond(body: dict[str, Any]) -> str:
        shown = shown_in(body)
        labels = {name: f"Response {chr(ord('A') + i)}" for i, name in enumerate(shown)}
        ranking = [labels[name] for name in rank(persona, shown)]
        return json.dumps({"review": "Weighed each.", "ranking": ranking})

    return Reply(respond=respond)


def first_shown(_persona: str, shown: list[str]) -> list[str]:
    return list(shown)


# A preference that neither the order shown nor the length explains (lengths 10, 39,
# 78 and 64: ranked by this taste, their Spearman correlation is 0).
TASTE = ("optimist", "pragmatist", "judge", "skeptic")


def fixed_taste(_persona: str, shown: list[str]) -> list[str]:
    return sorted(shown, key=TASTE.index)  # the same preference whatever the order


def longest_first(_persona: str, shown: list[str]) -> list[str]:
    return sorted(shown, key=lambda name: -len(ANSWERS[name]))


def shortest_first(_persona: str, shown: list[str]) -> list[str]:
    return sorted(shown, key=lambda name: len(ANSWERS[name]))


def own_first(persona: str, shown: list[str]) -> list[str]:
    return sorted(shown, key=lambda name: (name != persona, name))


def own_last(persona: str, shown: list[str]) -> list[str]:
    return sorted(shown, key=lambda name: (name == persona, name))


def script(fake: FakeOpenAI, rank: Reviewer) -> None:
    """Every persona answers (round 1), then reviews as `rank` does, bias checks included."""
    fake.reset()  # nothing left queued from an earlier run
    for name, text in ANSWERS.items():
        fake.script(name, Reply(text=text), round=1)
        fake.script(name, reviewer_reply(name, rank), reviewer_reply(name, rank), round=2)
        fake.script(name, reviewer_reply(name, rank), reviewer_reply(name, rank), round=3)


def ranked(fake: FakeOpenAI, rank: Reviewer, *args: str) -> dict[str, Any]:
    script(fake, rank)
    code, doc = oracle_json(
        fake, "--rank", "-o", "seed", "5", "-p", ",".join(PERSONAS), *args, QUESTION
    )
    assert code == 0, doc
    return doc


def checks(fake: FakeOpenAI) -> list[tuple[str, list[str]]]:
    """The bias checks the fake received: (reviewer, the answers shown, in order)."""
    return [(r.persona or "", shown_in(r.body or {})) for r in fake.requests if r.round == "3"]


# -- the statistics -------------------------------------------------------------------------


def test_spearman_on_a_published_example_and_where_it_is_undefined() -> None:
    # Wikipedia, "Spearman's rank correlation coefficient": IQ against hours of TV a week.
    iq = [106, 100, 86, 101, 99, 103, 97, 113, 112, 110]
    tv = [7, 27, 2, 50, 28, 29, 20, 12, 6, 17]
    assert spearman(iq, tv) == pytest.approx(-29 / 165)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833)  # ties averaged
    assert spearman([1, 2, 3], [5, 5, 5]) is None and spearman([1], [2]) is None
    assert place_shares(["a", "b", "c"]) == {"a": 1.0, "b": 0.5, "c": 0.0}


def test_a_report_says_null_where_nothing_was_measured() -> None:
    report = bias_report({}, {}).to_dict()
    assert {k: report[k] for k in ("position_consistency", "length_correlation")} == {
        "position_consistency": None,
        "length_correlation": None,
    }
    assert report["self_preference"] is None and report["checked"] == {"position": 0, "self": 0}


# -- --rank: position consistency ----------------------------------------------------------------


@pytest.mark.parametrize(("rank", "expected"), [(first_shown, 0.0), (fixed_taste, 1.0)])
def test_position_consistency_of_reviewers_asked_again_in_reverse(
    fake: FakeOpenAI, rank: Reviewer, expected: float
) -> None:
    doc = ranked(fake, rank, "--position-checks", "4")
    bias = doc["bias"]
    assert bias["position_consistency"] == expected
    assert bias["checked"]["position"] == 4
    assert {r["position_consistent"] for r in bias["reviewers"].values()} == {bool(expected)}
    # Each re-ask showed that reviewer's answers in exactly the reverse order.
    asked = checks(fake)
    assert sorted(name for name, _ in asked) == sorted(PERSONAS)
    for name, order in asked:
        assert order == list(reversed(doc["ranking"]["shown"][name]))
    # The official ranking is the round-2 reviews' alone.
    assert doc["ranking"]["per_reviewer"] == {
        name: rank(name, shown) for name, shown in doc["ranking"]["shown"].items()
    }


def test_by_default_one_reviewer_is_re_asked_and_self_preference_is_not_measured(
    fake: FakeOpenAI,
) -> None:
    doc = ranked(fake, first_shown)
    assert len(checks(fake)) == 1  # one call more than before, at the same time as the reviews
    assert doc["bias"]["checked"] == {"position": 1, "self": 0}
    assert doc["bias"]["position_consistency"] == 0.0
    assert doc["bias"]["self_preference"] is None
    assert len(doc["reviews"]) == len(PERSONAS)


def test_position_checks_zero_makes_no_extra_call(fake: FakeOpenAI) -> None:
    doc = ranked(fake, first_shown, "--position-checks", "0")
    assert checks(fake) == [] and len(fake.requests) == 2 * len(PERSONAS)
    assert doc["bias"]["position_consistency"] is None
    assert doc["bias"]["length_correlation"] is not None  # no call needed for that


# -- --rank: length ------------------------------------------------------------------------------


@pytest.mark.parametrize(("rank", "sign"), [(longest_first, 1), (shortest_first, -1)])
def test_length_correlation_follows_a_reviewer_that_favours_length(
    fake: FakeOpenAI, rank: Reviewer, sign: int
) -> None:
    doc = ranked(fake, rank, "--position-checks", "0")
    rho = doc["bias"]["length_correlation"]
    assert rho is not None and sign * rho > 0.5
    assert {r["length_correlation"] for r in doc["bias"]["reviewers"].values()} == {float(sign)}


def test_a_reviewer_indifferent_to_length_shows_little_correlation(fake: FakeOpenAI) -> None:
    doc = ranked(fake, fixed_taste, "--position-checks", "0")
    rho = doc["bias"]["length_correlation"]
    assert rho is not None and abs(rho) < 0.5


# -- --rank: self-preference in shadow mode ------------------------------------------------------


@pytest.mark.parametrize(("rank", "expected"), [(own_first, 1.0), (own_last, 0.0)])
def test_shadow_reviews_measure_self_preference_and_never_count(
    fake: FakeOpenAI, rank: Reviewer, expected: float
) -> None:
    doc = ranked(fake, rank, "--position-checks", "0", "--self-check-rate", "1")
    bias = doc["bias"]
    assert bias["self_preference"] == expected
    assert bias["self_preference_chance"] == 0.25  # four answers shown in each
    assert bias["checked"] == {"position": 0, "self": 4}
    # The shadow review showed the reviewer its own answer among the others, anonymised.
    for _name, order in checks(fake):
        assert sorted(order) == sorted(PERSONAS)
    shadow = [r for r in fake.requests if r.round == "3"]
    assert all(
        not re.search(rf"\b{p}\b", r.body["messages"][-1]["content"])
        for r in shadow
        for p in PERSONAS
    )
    # The official ranking still excludes each reviewer's own answer.
    for name, ranking in doc["ranking"]["per_reviewer"].items():
        assert name not in ranking and len(ranking) == 3
    for request in fake.requests:
        if request.round == "2":
            assert request.persona not in shown_in(request.body)


def test_self_check_rate_samples_a_share_of_the_reviewers(fake: FakeOpenAI) -> None:
    doc = ranked(fake, own_first, "--position-checks", "0", "--self-check-rate", "0.5")
    sampled = sorted(name for name, _ in checks(fake))
    measured = sorted(n for n, r in doc["bias"]["reviewers"].items() if r["self_first"] is not None)
    assert sampled == measured and doc["bias"]["checked"]["self"] == len(sampled)
    again = ranked(fake, own_first, "--position-checks", "0", "--self-check-rate", "0.5")
    assert again["bias"]["reviewers"] == doc["bias"]["reviewers"]  # the seed draws the same


# -- outputs -------------------------------------------------------------------------------------


def test_markdown_terminal_history_and_the_api_carry_the_report(fake: FakeOpenAI) -> None:
    args = ("--position-checks", "4", "--self-check-rate", "1")
    doc = ranked(fake, own_first, *args)
    line = (
        "Reviewer bias: position consistency 100% (4 re-asked) · length ρ "
        f"{doc['bias']['length_correlation']:+.2f} · self-preference 100% own first "
        "(chance 25%, 4 shadow)"
    )
    script(fake, own_first)
    markdown = oracle(fake, "--rank", "-o", "seed", "5", "-p", ",".join(PERSONAS), *args, QUESTION)
    assert f"_{line}._" in markdown.stdout
    shown = invoke("show", "--json")
    assert json.loads(shown.stdout)["bias"] == doc["bias"]
    # The Python API: the same report in to_dict(), which is the --json document.
    script(fake, own_first)
    council = Council(personas=list(PERSONAS), base_url=fake.base_url, model="m")
    result = council.ask(
        QUESTION, rank=True, options={"seed": 5}, position_checks=4, self_check_rate=1.0
    )
    assert result.to_dict()["bias"] == {
        **doc["bias"],
        "reviewers": result.to_dict()["bias"]["reviewers"],
    }
    assert {r["model"] for r in result.to_dict()["bias"]["reviewers"].values()} == {"m"}
    console = Console(file=io.StringIO(), width=200, force_terminal=False)
    console.print(oracle_renderable(result.engine_result))
    assert line in console.file.getvalue()


def test_the_options_need_rank_and_sensible_values(fake: FakeOpenAI) -> None:
    for args, said in [
        (("--position-checks", "2"), "--position-checks measures --rank's reviewers"),
        (("--rank", "--self-check-rate", "1.5"), "--self-check-rate 1.5 is not a share"),
        (("--rank", "--position-checks", "-1"), "--position-checks -1 is negative"),
    ]:
        result = oracle(fake, *args, "-p", ",".join(PERSONAS), QUESTION)
        assert result.exit_code == 2 and said in result.output
        assert "Traceback" not in result.output
    assert fake.requests == []


# -- council judge --pair ------------------------------------------------------------------------


def ballot(choice: str) -> Reply:
    return Reply(text=json.dumps({"choice": choice, "confidence": 0.9, "reason": "Better."}))


def judge_pair(fake: FakeOpenAI, tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "a.txt").write_text("A long answer, with its reasons and a worked example.")
    (tmp_path / "b.txt").write_text("Short.")
    result = invoke(
        "judge", "--base-url", fake.base_url, "-p", "judge,critic,skeptic", "--json",
        "--pair", str(tmp_path / "a.txt"), str(tmp_path / "b.txt"), "q",
    )  # fmt: skip
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("orders", "consistency", "rho"),
    [
        (("A", "A"), 0.0, None),  # always the answer shown first: every verdict flips, a tie
        (("A", "B"), 1.0, 1.0),  # always the long answer (shown first, then second)
        (("B", "A"), 1.0, -1.0),  # always the short one
    ],
)
def test_a_pair_reports_its_bias_from_both_orders_without_a_call_more(
    fake: FakeOpenAI, tmp_path: Path, orders: tuple[str, str], consistency: float, rho: float | None
) -> None:
    for name in ("judge", "critic", "skeptic"):
        fake.script(name, ballot(orders[0]), ballot(orders[1]))
    doc = judge_pair(fake, tmp_path)
    bias = doc["bias"]
    assert bias["position_consistency"] == consistency == 1 - doc["position_flip_rate"]
    assert bias["length_correlation"] == rho
    assert bias["self_preference"] is None
    assert len(fake.requests) == 6  # three jurors, two orders: nothing added


def test_a_rubric_measures_no_bias(fake: FakeOpenAI, tmp_path: Path) -> None:
    (tmp_path / "answer.md").write_text("Use Postgres.")
    result = invoke(
        "judge", "--base-url", fake.base_url, "-p", "judge,critic", "--json",
        "--answer", str(tmp_path / "answer.md"), "--rubric", "correct", "q",
    )  # fmt: skip
    bias = json.loads(result.stdout)["bias"]
    assert [bias[k] for k in ("position_consistency", "length_correlation", "self_preference")] == [
        None,
        None,
        None,
    ]
    refused = invoke(
        "judge", "--base-url", fake.base_url, "--position-checks", "2",
        "--answer", str(tmp_path / "answer.md"), "--rubric", "correct", "q",
    )  # fmt: skip
    assert refused.exit_code == 2 and "--position-checks is not for council judge" in refused.output


# -- council stats --bias ------------------------------------------------------------------------


def test_stats_bias_aggregates_runs_by_persona_and_by_model(fake: FakeOpenAI) -> None:
    ranked(fake, first_shown, "--position-checks", "4")  # every reviewer inconsistent
    ranked(fake, fixed_taste, "--position-checks", "4", "--self-check-rate", "1")
    result = invoke("stats", "--bias", "--json")
    assert result.exit_code == 0
    stats = json.loads(result.stdout)
    assert stats["runs"] == 2
    personas = {g["name"]: g for g in stats["by_persona"]}
    assert set(personas) == set(PERSONAS)
    for group in personas.values():
        assert group["position_checked"] == 2 and group["position_consistency"] == 0.5
        assert group["self_checked"] == 1 and group["self_chance"] == 0.25
    # fixed_taste puts "optimist" first whenever it is shown, "skeptic" never.
    assert personas["optimist"]["self_preference"] == 1.0
    assert personas["skeptic"]["self_preference"] == 0.0
    (model,) = stats["by_model"]
    assert model["name"]
    assert model["position_checked"] == 8 and model["position_consistency"] == 0.5
    assert model["self_checked"] == 4 and model["self_preference"] == 0.25
    text = invoke("stats", "--bias").stdout
    assert "reviewer bias over 2 runs" in text and re.search(r"judge\s+50% \(2\)", text)


def test_stats_bias_with_no_report_says_so(fake: FakeOpenAI) -> None:
    result = invoke("stats", "--bias")
    assert result.exit_code == 0 and "no bias reports recorded yet" in result.stdout


def test_a_failed_check_is_not_measured_and_fails_nothing(fake: FakeOpenAI) -> None:
    fake.reset()  # every bias check fails; the reviews answer
    for name, text in ANSWERS.items():
        fake.script(name, Reply(text=text), round=1)
        fake.script(name, reviewer_reply(name, first_shown), round=2)
        fake.script(name, Reply(status=400, error_message="bad"), round=3)
    code, doc = oracle_json(
        fake, "--rank", "-p", ",".join(PERSONAS), "--position-checks", "4", QUESTION
    )
    assert code == 0  # the ranking asked for is whole
    assert len(checks(fake)) == 4 and doc["bias"]["position_consistency"] is None
    assert all(len(ranking) == 3 for ranking in doc["ranking"]["per_reviewer"].values())


def test_reviewers_are_asked_to_reason_before_they_rank(fake: FakeOpenAI) -> None:
    ranked(fake, first_shown, "--position-checks", "0")
    body = next(r.body for r in fake.requests if r.round == "2")
    assert "Reason before you rank" in body["messages"][-1]["content"]
    schema = body["response_format"]["json_schema"]["schema"]
    assert list(schema["properties"]) == ["review", "ranking"]  # the review is written first
    from council.engine.ranking import read_ranking

    reasoned = (
        "Response B is thin, Response A is fine, Response C is best.\n\n"
        "FINAL RANKING:\n1. Response C\n2. Response A\n3. Response B"
    )
    assert read_ranking(reasoned, ["A", "B", "C"]) == ["C", "A", "B"]


def test_the_live_view_shows_each_check_apart_from_the_review() -> None:
    from council.engine.events import CallStarted
    from council.render.live import LiveView

    console = Console(file=io.StringIO(), width=160, height=30)
    view = LiveView(console, ["judge"])
    for call_id, role, round_number in [
        ("r2-rank-judge", "reviewer", 2),
        ("r3-reversed-judge", "check", 3),
        ("r3-self-judge", "check", 3),
    ]:
        ids = {"run_id": "r", "call_id": call_id, "persona": "judge", "role": role}
        view.handle(CallStarted(**ids, round=round_number, model="m"))
    console.print(view.render())
    shown = console.file.getvalue()
    assert "ranking · judge" in shown
    assert "reversed check · judge" in shown and "self check · judge" in shown
    assert "synthesis · judge" not in shown


def test_stats_bias_takes_no_by(fake: FakeOpenAI) -> None:
    result = invoke("stats", "--bias", "--by", "model")
    assert result.exit_code == 2 and "--bias takes no --by model" in result.output


def test_a_batch_refuses_the_checks(fake: FakeOpenAI, tmp_path: Path) -> None:
    items = tmp_path / "items.txt"
    items.write_text("q1\nq2\n")
    out = str(tmp_path / "out.jsonl")
    result = invoke(
        "batch", str(items), "--base-url", fake.base_url, "--out", out, "--self-check-rate", "1"
    )
    assert result.exit_code == 2 and "measure --rank's reviewers" in result.output
    assert fake.requests == []


def test_a_budget_that_stops_a_check_leaves_the_run_whole(fake: FakeOpenAI) -> None:
    from council.engine.model import CallOutcome
    from council.engine.results import OracleResult
    from council.errors import ErrorKind

    result = OracleResult(run_id="r", plan=None)  # type: ignore[arg-type]
    stopped = CallOutcome(persona="judge", role="check", error_kind=ErrorKind.NOT_AFFORDABLE)
    result.calls.append(stopped)
    assert not result.budget_stopped
    result.calls.append(CallOutcome(persona="critic", error_kind=ErrorKind.NOT_AFFORDABLE))
    assert result.budget_stopped


def test_the_jury_report_and_the_dry_run_say_what_is_measured(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    for name in ("judge", "critic", "skeptic"):
        fake.script(name, ballot("A"), ballot("A"))
    (tmp_path / "a.txt").write_text("A long answer, with its reasons.")
    (tmp_path / "b.txt").write_text("Short.")
    report = invoke(
        "judge", "--base-url", fake.base_url, "-p", "judge,critic,skeptic",
        "--pair", str(tmp_path / "a.txt"), str(tmp_path / "b.txt"), "q",
    )  # fmt: skip
    assert (
        "_Reviewer bias: position consistency 0% (3 re-asked) · length ρ not measured · "
        "self-preference not measured._"
    ) in report.stdout
    dry = oracle(
        fake, "--dry-run", "--rank", "-p", ",".join(PERSONAS), "--self-check-rate", "0.2", "q"
    )
    assert "- bias checks: 1 reviewer(s) also rank in the reverse order; a 0.2 share" in dry.stdout
