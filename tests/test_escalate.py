"""`--escalate`: a small first panel; the full council only when it is in doubt.

Against the fake server: what each persona was asked (the request log) is the proof
that an easy question costs only the panel's calls and that a hard one asks nobody twice.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from council import Council
from council.engine.escalate import majority_choice
from council.engine.escalation import decide, panel_names
from council.engine.model import Ballot
from tests.fake_openai import Reply
from tests.helpers import history_rows, invoke, oracle, oracle_json

PERSONAS = "judge,critic,skeptic,optimist"
QUESTION = "Is 2**31 - 1 a prime number?"


def _sure(answer: str, confidence: int) -> Reply:
    return Reply(text=f"It is a Mersenne prime.\nAnswer: {answer}\nConfidence: {confidence}%")


def _asked(fake) -> list[str]:
    return [r.persona for r in fake.requests]


# -- the decision --------------------------------------------------------------------------


def _ballot(name: str, choice: str | None, confidence: float | None) -> Ballot:
    return Ballot(name, choice, confidence, "", raw_ok=choice is not None)


def test_the_panel_agrees_only_on_one_choice_each_sure_enough():
    sure = [_ballot("a", "Yes", 0.9), _ballot("b", "yes.", 0.85)]
    assert decide(sure, 2, 0.8).agreed
    assert decide(sure, 2, 0.8).confidence == 0.85
    split = decide([_ballot("a", "Yes", 0.9), _ballot("b", "No", 0.9)], 2, 0.8)
    assert not split.agreed and "differs" in split.reason
    unsure = decide([_ballot("a", "Yes", 0.9), _ballot("b", "Yes", 0.6)], 2, 0.8)
    assert not unsure.agreed and unsure.confidence == 0.6
    unstated = decide([_ballot("a", "Yes", None)], 1, 0.8)
    assert not unstated.agreed and "not stated" in unstated.reason
    assert not decide([_ballot("a", None, None)], 1, 0.0).agreed
    assert majority_choice([_ballot("a", "Yes", 1), _ballot("b", "yes", 1), _ballot("c", "No", 1)])
    assert majority_choice([_ballot("a", "Yes", 1), _ballot("b", "No", 1)]) is None


def test_a_panel_is_part_of_the_council():
    members = ["judge", "critic", "skeptic"]
    assert panel_names(members, 2) == ("judge", "critic")
    assert panel_names(members, ["skeptic", "judge"]) == ("judge", "skeptic")
    for bad in (0, 4, 3, ["nobody"], ["judge", "critic", "skeptic"]):
        with pytest.raises(ValueError):
            panel_names(members, bad)


# -- oracle --escalate against the fake server ---------------------------------------------


def test_an_easy_question_makes_only_the_panels_calls(fake):
    fake.report_cost = (1.0, 2.0)
    fake.script("judge", _sure("Yes", 95))
    code, doc = oracle_json(fake, "--escalate", "-s", "-p", PERSONAS, QUESTION)
    assert code == 0, doc
    assert _asked(fake) == ["judge"]  # no other persona, no arbiter
    # Every persona of an escalating run is asked to state its answer and confidence.
    assert "Confidence: <how sure you are" in fake.requests[0].body["messages"][-1]["content"]
    escalation = doc["escalation"]
    assert escalation["escalated"] is False
    assert escalation["calls_full"] == 5 and escalation["calls_saved"] == 4
    assert escalation["cost_saved_usd"] == pytest.approx(doc["cost_usd"] * 4, rel=1e-3)
    assert "panel's mean cost a call" in escalation["basis"]
    assert escalation["decision"]["confidence"] == 0.95
    assert doc["answer"]["text"].startswith("It is a Mersenne prime.")
    assert doc["answer"]["persona"] == "judge"
    assert doc["errors"] == [] and doc["status"] == "ok"  # the others were spared, not failed
    fake.script("judge", _sure("Yes", 95))
    shown = oracle(fake, "--escalate", "-s", "-p", PERSONAS, QUESTION)
    assert "escalation: the panel (judge) agreed" in shown.stdout
    assert "4 of 5 calls saved" in shown.stdout


def test_a_hard_question_escalates_and_asks_nobody_twice(fake):
    fake.script("judge", _sure("Yes", 55))
    code, doc = oracle_json(fake, "--escalate", "-s", "-p", PERSONAS, QUESTION)
    assert code == 0, doc
    asked = _asked(fake)
    assert sorted(asked) == ["arbiter", "critic", "judge", "optimist", "skeptic"]
    assert asked[0] == "judge" and asked.count("judge") == 1
    escalation = doc["escalation"]
    assert escalation["escalated"] is True and escalation["calls_saved"] == 0
    assert "below 0.8" in escalation["decision"]["reason"]
    # The panel's answer is among those the arbiter read, as it was given.
    arbiter = fake.requests_for("arbiter")[0].body["messages"][-1]["content"]
    assert "Answer: Yes\nConfidence: 55%" in arbiter
    assert [a["persona"] for a in doc["answers"]] == PERSONAS.split(",")


def test_a_panel_of_two_that_differs_escalates(fake):
    fake.script("judge", _sure("Yes", 95))
    fake.script("critic", _sure("No", 95))
    code, doc = oracle_json(fake, "--escalate", "--panel", "2", "-p", PERSONAS, QUESTION)
    assert code == 0
    assert doc["escalation"]["escalated"] is True
    assert "differs" in doc["escalation"]["decision"]["reason"]
    assert sorted(_asked(fake)) == sorted(PERSONAS.split(","))


def test_a_vote_escalates_with_the_panels_ballots_counted(fake, monkeypatch):
    monkeypatch.setenv("COUNCIL_VOTE_EARLY_STOP", "0")
    fake.script("judge", Reply(text='{"choice": "A", "confidence": 0.5, "reason": "hm"}'))
    fake.script("critic", Reply(text='{"choice": "B", "confidence": 0.9, "reason": "x"}'))
    fake.script("skeptic", Reply(text='{"choice": "B", "confidence": 0.9, "reason": "x"}'))
    fake.script("optimist", Reply(text='{"choice": "A", "confidence": 0.9, "reason": "x"}'))
    args = ("--escalate", "--vote", "--choices", "A,B", "-p", PERSONAS, QUESTION)
    code, doc = oracle_json(fake, *args)
    assert code == 0
    assert _asked(fake).count("judge") == 1
    assert doc["vote"]["tally"] == {"A": 2, "B": 2}  # the panel's ballot counted once
    fake.reset()
    fake.script("judge", Reply(text='{"choice": "B", "confidence": 0.9, "reason": "x"}'))
    code, doc = oracle_json(fake, *args)
    assert _asked(fake) == ["judge"] and doc["answer"]["text"] == "B"


def test_shadow_rate_one_runs_both_and_records_the_comparison(fake):
    fake.script("judge", _sure("Yes", 95))
    for name in ("critic", "skeptic", "optimist"):
        fake.script(name, _sure("No", 90))
    code, doc = oracle_json(fake, "--escalate", "--shadow-rate", "1", "-p", PERSONAS, QUESTION)
    assert code == 0
    assert sorted(_asked(fake)) == sorted(PERSONAS.split(","))
    escalation = doc["escalation"]
    assert escalation["shadow"] is True and escalation["decision"]["agreed"] is True
    assert escalation["escalated"] is False and escalation["calls_saved"] == 0
    assert escalation["full_choice"] == "No" and escalation["changed"] is True
    fake.reset()
    for name in PERSONAS.split(","):
        fake.script(name, _sure("yes", 95))
    shown = oracle(fake, "--escalate", "--shadow-rate", "1", "-p", PERSONAS, QUESTION)
    assert "shadow run, the panel (judge) agreed" in shown.stdout
    assert "the full council kept its answer" in shown.stdout
    # The history keeps the document, escalation and all.
    last = history_rows("SELECT id FROM runs ORDER BY started_at")[-1]
    recorded = json.loads(invoke("show", last["id"], "--json").stdout)
    assert recorded["escalation"]["changed"] is False and recorded["escalation"]["shadow"]


def test_the_python_api_escalates(fake):
    fake.script("judge", _sure("Yes", 95))
    council = Council(PERSONAS.split(","), base_url=fake.base_url, history=False)
    result = council.ask(QUESTION, escalate=True)
    assert _asked(fake) == ["judge"]
    assert result.escalation is not None and result.escalation["calls_saved"] == 4
    fake.reset()
    fake.script("judge", _sure("Yes", 95))
    result = council.ask(QUESTION, escalate={"panel": 2, "threshold": 0.9})
    assert sorted(_asked(fake)[:2]) == ["critic", "judge"]  # the panel first, then the rest
    assert result.escalation is not None and result.escalation["escalated"] is True
    assert len(_asked(fake)) == 5 and _asked(fake).count("judge") == 1


# -- presets and usage errors ---------------------------------------------------------------


def _preset(root: Path, body: str) -> Path:
    path = root / ".council" / "presets" / "triage.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"name: triage\npersonas: [judge, critic, skeptic]\n{body}")
    return path


def test_a_preset_escalates(fake, project):
    _preset(project, "escalate:\n  panel: 1\n  threshold: 0.9\n")
    fake.script("judge", _sure("Yes", 95))
    code, doc = oracle_json(fake, "--preset", "triage", QUESTION)
    assert code == 0 and _asked(fake) == ["judge"]
    assert doc["escalation"]["threshold"] == 0.9
    fake.reset()
    code, doc = oracle_json(fake, "--preset", "triage", "--no-escalate", QUESTION)
    assert doc["escalation"] is None and len(_asked(fake)) == 3


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("escalate: sometimes\n", ":3:11: escalate: expected true, false, or a mapping"),
        ("escalate:\n  panel: 5\n", ":4:10: panel: expected 1, 2 or 3"),
        ("escalate:\n  threshold: 2\n", ":4:14: threshold: expected a number from 0 to 1"),
        ("escalate:\n  shadow: 0.1\n", ":4:3: shadow: unknown key"),
    ],
)
def test_a_bad_preset_value_is_a_file_line_error(project, body, message):
    path = _preset(project, body)
    result = invoke("presets", "validate", str(path))
    assert result.exit_code == 2
    assert f"{path}{message}" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--shadow-rate", "0.1"), "--shadow-rate goes with --escalate"),
        (("--escalate", "--panel", "4"), "a panel is 1 to 3 personas"),
        (("--escalate", "--panel", "nobody"), "nobody not in the council"),
        (("--escalate", "--escalate-threshold", "1.5"), "--escalate-threshold 1.5"),
        (("--escalate", "--rank"), "does not go with --escalate"),
    ],
)
def test_usage_errors_are_one_line(fake, args, message):
    result = oracle(fake, *args, "-p", PERSONAS, QUESTION)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert fake.requests == []


# -- council eval's escalate strategy -------------------------------------------------------


def test_eval_escalate_saves_calls_on_the_easy_items(fake, tmp_path):
    items = [
        {"id": f"q{i}", "query": f"Which city, {i}?", "choices": ["Lyon", "Nice"], "expected": "B"}
        for i in range(4)
    ]
    data = tmp_path / "cities.jsonl"
    data.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    # Three easy items (the panel is sure), one hard (it is not): the arbiter answers it.
    fake.script("judge", _sure("B", 95), _sure("B", 95), _sure("B", 40), _sure("B", 95))
    fake.script("arbiter", Reply(text="Answer: B"))
    args = ("eval", str(data), "--base-url", fake.base_url, "--max-concurrency", "1")
    result = invoke(*args, "-p", "judge,critic,skeptic", "--strategies", "escalate", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    (strategy,) = document["strategies"]
    assert strategy["name"] == "escalate" and strategy["correct"] == 4
    # 3 items × 1 call, 1 item × (3 personas + the arbiter): 7 of 16 calls.
    assert strategy["calls"] == 7 and len(fake.requests) == 7
    summary = document["escalation"]
    assert (summary["runs"], summary["escalated"]) == (4, 1)
    assert (summary["calls_saved"], summary["calls_full"]) == (9, 16)
    fake.reset()
    fake.default = _sure("B", 95)
    shown = invoke(*args, "-p", "judge,critic,skeptic", "--strategies", "escalate")
    assert "escalation: 0 of 4 runs escalated; 12 of 16 calls saved (75%)" in shown.stdout


# -- council deliberate --escalate ----------------------------------------------------------


def _deliberate_json(fake, *args: str) -> tuple[int, dict]:
    result = invoke("deliberate", "--base-url", fake.base_url, "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def test_a_deliberation_stops_on_an_agreeing_panel(fake):
    fake.report_cost = (1.0, 2.0)
    fake.script("judge", _sure("Yes", 95))
    code, doc = _deliberate_json(fake, "--escalate", "-p", PERSONAS, "--rounds", "2", QUESTION)
    assert code == 0, doc
    assert _asked(fake) == ["judge"]  # no other persona, no verdict
    assert doc["stop_reason"] == "panel_agreed" and len(doc["rounds"]) == 1
    assert doc["answer"]["persona"] == "judge" and "Mersenne" in doc["answer"]["text"]
    assert doc["answer"]["confidence"] == 0.95
    escalation = doc["escalation"]
    assert escalation["calls_full"] == 5 and escalation["calls_saved"] == 4
    assert doc["cost_usd"] > 0  # the panel's call is in the run's cost


def test_a_doubting_panel_leaves_round_one_to_the_rest(fake):
    fake.script("judge", _sure("Yes", 40))
    verdict = {"converged": True, "confidence": 0.9, "synthesis": "Yes.", "dissent": []}
    fake.script("arbiter", Reply(text=json.dumps(verdict)))
    code, doc = _deliberate_json(fake, "--escalate", "-p", PERSONAS, "--rounds", "2", QUESTION)
    assert code == 0, doc
    asked = _asked(fake)
    assert asked[0] == "judge" and asked.count("judge") == 1 and asked[-1] == "arbiter"
    assert sorted(asked[1:4]) == ["critic", "optimist", "skeptic"]
    assert doc["stop_reason"] == "converged" and doc["escalation"]["escalated"] is True
    (first,) = doc["rounds"]
    assert [a["persona"] for a in first["answers"]] == PERSONAS.split(",")
    assert "Confidence: 40%" in fake.requests_for("arbiter")[0].body["messages"][-1]["content"]
    timeline = [c["persona"] for c in doc["timeline"] if c["round"] == 1 and c["role"] == "persona"]
    assert sorted(timeline) == sorted(PERSONAS.split(","))  # the panel's call in it, once
    calls = history_rows("SELECT persona FROM calls WHERE round = 1 AND role = 'persona'")
    assert sorted(r["persona"] for r in calls) == sorted(PERSONAS.split(","))  # once each


def test_a_shadow_deliberation_runs_the_full_council_and_compares(fake):
    for name in PERSONAS.split(","):
        fake.script(name, _sure("Yes", 95))
    verdict = {"converged": True, "confidence": 0.9, "synthesis": "Yes.", "dissent": []}
    fake.script("arbiter", Reply(text=json.dumps(verdict)))
    args = ("--escalate", "--shadow-rate", "1", "-p", PERSONAS, "--rounds", "1", QUESTION)
    code, doc = _deliberate_json(fake, *args)
    assert code == 0, doc
    assert len(_asked(fake)) == 5 and doc["stop_reason"] != "panel_agreed"
    assert doc["escalation"]["shadow"] and doc["escalation"]["changed"] is False
    assert doc["escalation"]["full_choice"] == "Yes"
    fake.script("judge", _sure("Yes", 95))
    shown = invoke(
        "deliberate", "--base-url", fake.base_url, "--escalate", "-p", PERSONAS, QUESTION
    )
    assert "The first panel (judge) agreed in round 1" in shown.stdout
    assert "4 of 5 calls saved" in shown.stdout


def test_a_dry_run_says_who_is_asked_first(fake):
    shown = oracle(fake, "--escalate", "--panel", "judge,skeptic", "--dry-run", "-p", PERSONAS, "q")
    assert shown.exit_code == 0
    assert "- escalate: judge, skeptic first; the rest only if" in shown.stdout
    code, plan = oracle_json(
        fake, "--escalate", "--shadow-rate", "1", "--dry-run", "-p", PERSONAS, "q"
    )
    assert code == 0
    assert plan["escalation"] == {
        "panel": ["judge"], "threshold": 0.8, "shadow_rate": 1.0, "shadow": True
    }  # fmt: skip
    assert fake.requests == []


def test_shadow_runs_are_summed_up():
    from council.app.escalate import escalation_line, escalation_summary

    def line(escalated: bool, saved: int, shadow: bool = False, changed: bool | None = None):
        run = {"escalated": escalated, "agreed": not escalated, "calls_saved": saved}
        run |= {"calls_full": 4, "cost_saved_usd": None, "shadow": shadow, "changed": changed}
        return {"strategy": "escalate", "metrics": {"escalation": run}}

    lines = [line(False, 3), line(True, 0), line(False, 0, True, True), line(False, 0, True, False)]
    lines.append({"strategy": "judge", "metrics": {"calls": 1}})  # not escalating: not counted
    summary = escalation_summary(lines)
    assert summary is not None
    assert (summary["runs"], summary["escalated"], summary["calls_saved"]) == (4, 1, 3)
    assert (summary["shadow_runs"], summary["shadow_changed"]) == (2, 1)
    assert summary["shadow_changed_share"] == 0.5 and summary["calls_saved_share"] == 0.1875
    assert escalation_line(summary) == (
        "escalation: 1 of 4 runs escalated; 3 of 16 calls saved (19%); shadow runs: the full "
        "council changed 1 of 2 answers the panel agreed on"
    )
    assert escalation_summary(lines[-1:]) is None


def test_a_failed_panel_member_is_doubt_and_is_not_asked_again(fake):
    fake.script("judge", Reply(status=500))
    code, doc = oracle_json(fake, "--escalate", "--retries", "0", "-p", PERSONAS, QUESTION)
    assert code == 3  # partial: the judge's answer is missing, the others are there
    assert doc["escalation"]["escalated"] is True
    assert "gave no readable answer" in doc["escalation"]["decision"]["reason"]
    assert _asked(fake).count("judge") == 1 and len(_asked(fake)) == 4
    assert [e["persona"] for e in doc["errors"]] == ["judge"]


def test_batch_says_it_does_not_escalate(fake, project, tmp_path):
    _preset(project, "escalate: true\n")
    items = tmp_path / "items.txt"
    items.write_text("Is 7 prime?\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = invoke(
        "batch", str(items), "--base-url", fake.base_url, "--preset", "triage", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert "council batch asks every persona of every item" in result.stderr
    assert len(fake.requests) == 3


def test_stats_sums_up_what_escalation_saved_across_runs(fake):
    empty = invoke("stats", "--escalation")
    assert empty.exit_code == 0 and "No escalating run in the history yet" in empty.stdout
    fake.report_cost = (1.0, 2.0)
    # Run 1: the panel is sure (4 of 5 calls saved). Run 2: it doubts (none saved).
    # Run 3: sure, and a shadow run where the full council kept its answer.
    fake.script("judge", _sure("Yes", 95))
    assert oracle_json(fake, "--escalate", "-s", "-p", PERSONAS, QUESTION)[0] == 0
    fake.script("judge", _sure("Yes", 40))
    assert oracle_json(fake, "--escalate", "-s", "-p", PERSONAS, QUESTION)[0] == 0
    for name in PERSONAS.split(","):
        fake.script(name, _sure("Yes", 95))
    shadow = ("--escalate", "--shadow-rate", "1", "-s", "-p", PERSONAS, QUESTION)
    assert oracle_json(fake, *shadow)[0] == 0
    oracle(fake, "-p", PERSONAS, QUESTION)  # a run without escalation counts for nothing
    found = invoke("stats", "--escalation", "--json")
    assert found.exit_code == 0, found.stdout
    summary = json.loads(found.stdout)["escalation"]
    assert summary["runs"] == 3 and summary["escalated"] == 1
    assert summary["calls_full"] == 15 and summary["calls_saved"] == 4
    assert summary["shadow_runs"] == 1 and summary["shadow_changed"] == 0
    assert summary["cost_saved_usd"] > 0
    shown = invoke("stats", "--escalation")
    assert "escalation: 1 of 3 runs escalated; 4 of 15 calls saved (27%)" in shown.stdout
    assert "the full council changed 0 of 1 answers the panel agreed on" in shown.stdout
    refused = invoke("stats", "--escalation", "--bias")
    assert refused.exit_code == 2 and "--escalation sums runs up whole" in refused.output
