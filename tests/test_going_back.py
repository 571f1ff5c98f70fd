"""Going back to a run: `show` with no id or -N, `history --search`, resume and its dry run."""

from __future__ import annotations

import json
from typing import Any

from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import council_process, interrupt_after_event, invoke

PERSONAS = ("judge", "critic", "skeptic")


def history_json(*args: str) -> list[dict[str, Any]]:
    result = invoke("history", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def verdict(converged: bool, synthesis: str) -> Reply:
    data = {"converged": converged, "confidence": 0.9, "synthesis": synthesis, "dissent": []}
    return Reply(text=json.dumps(data))


def ask(fake: FakeOpenAI, question: str) -> str:
    result = invoke("oracle", "--base-url", fake.base_url, "-p", "judge", question)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_show_without_an_id_is_the_last_run_and_minus_n_counts_back(fake: FakeOpenAI) -> None:
    empty = invoke("show")
    assert empty.exit_code == 2 and "no runs recorded yet" in empty.stderr
    printed = [ask(fake, question) for question in ("first", "second", "third")]
    assert invoke("show").stdout == printed[2]
    assert invoke("show", "-1").stdout == printed[2]
    assert invoke("show", "-2").stdout == printed[1]
    assert json.loads(invoke("show", "-3", "--json").stdout)["query"] == "first"
    too_far = invoke("show", "-4")
    assert too_far.exit_code == 2
    assert "only 3 runs in the history" in too_far.stderr
    assert len(too_far.stderr.strip().splitlines()) == 1
    unknown = invoke("show", "--jsn")
    assert unknown.exit_code == 2 and "no such option: --jsn" in unknown.stderr


def test_history_search_finds_runs_by_their_question(fake: FakeOpenAI) -> None:
    for question in ("Monorepo or not?", "Tabs or spaces?", "A monorepo for 50% of teams_x?"):
        ask(fake, question)
    found = [r["query"] for r in history_json("--search", "MONOREPO")]
    assert found == ["A monorepo for 50% of teams_x?", "Monorepo or not?"]
    # % and _ mean themselves, not SQL wildcards.
    assert [r["query"] for r in history_json("--search", "50% of teams_")] == [found[0]]
    assert history_json("--search", "5_%") == []
    listed = invoke("history", "--search", "tabs")
    assert "Tabs or spaces?" in listed.stdout and "Monorepo" not in listed.stdout
    none = invoke("history", "--search", "kubernetes")
    assert none.exit_code == 0 and "no runs recorded yet that match" in none.stdout


def _interrupted_deliberation(fake: FakeOpenAI) -> str:
    """A deliberation stopped in round 2 after the judge answered: its run id."""
    for name in PERSONAS:
        fake.script(name, Reply(text=f"{name} answer 1"), round=1)
    fake.script("arbiter", verdict(False, "Round one."), round=1)
    fake.script("judge", Reply(text="Position: kept\njudge answer 2"), round=2)
    fake.script("critic", Reply(hang=True), round=2)
    fake.script("skeptic", Reply(hang=True), round=2)
    process = council_process(
        "deliberate", "--base-url", fake.base_url, "--rounds", "3", "--jsonl", "Safe?"
    )

    def judge_done(event: dict[str, Any]) -> bool:
        return (
            event.get("type") == "call_finished"
            and event.get("persona") == "judge"
            and event.get("round") == 2
        )

    interrupt_after_event(process, judge_done)
    assert process.returncode == 130
    (run,) = history_json()
    assert run["status"] == "interrupted"
    fake.reset()
    return str(run["id"])


def test_resume_dry_run_shows_what_the_resume_would_ask(fake: FakeOpenAI) -> None:
    run_id = _interrupted_deliberation(fake)
    result = invoke("resume", run_id, "--base-url", fake.base_url, "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert fake.requests == []
    assert f"# Dry run of resuming run {run_id}: nothing was sent" in out
    assert (
        f"- reused from run {run_id}: round 1: judge, critic, skeptic and the verdict; "
        "round 2: judge"
    ) in out
    assert "- asked again: round 2: critic, skeptic, the verdict; then rounds 3 to 3" in out
    # The calls shown are round 2's, quoting the recorded round-1 answers: no fresh round 1.
    assert "## round 2: critic" in out and "## round 2: skeptic" in out
    assert "## judge" not in out and "## round 2: judge" not in out
    assert "Round 1's calls are exact" not in out
    assert "skeptic answer 1" in out
    as_json = invoke("resume", run_id, "--base-url", fake.base_url, "--dry-run", "--json")
    resume = json.loads(as_json.stdout)["resume"]
    assert resume["reused"] == [
        {"round": 1, "answers": list(PERSONAS), "verdict": True},
        {"round": 2, "answers": ["judge"], "verdict": False},
    ]
    assert (resume["round"], resume["asked"], resume["asks_verdict"]) == (
        2,
        ["critic", "skeptic"],
        True,
    )
    assert "judge answer 1" in json.dumps(resume["calls"][0])
    assert fake.requests == []


def test_show_of_a_resumed_run_points_at_the_resuming_run(fake: FakeOpenAI) -> None:
    run_id = _interrupted_deliberation(fake)
    before = invoke("show", run_id)
    assert f"go on with: council resume {run_id}" in before.stderr
    # The resume fails one call: it can be resumed in turn.
    fake.script("critic", Reply(status=400, error_message="too long"), round=2)
    fake.script("skeptic", Reply(text="Position: kept\nskeptic answer 2"), round=2)
    fake.script("arbiter", verdict(False, "Not yet."), round=2)
    fake.script("arbiter", verdict(True, "Agreed."), round=3)
    resumed = invoke("resume", run_id, "--base-url", fake.base_url)
    assert resumed.exit_code == 3, resumed.output
    later = history_json()[0]
    assert later["id"] != run_id and later["status"] == "partial"
    after = invoke("show", run_id)
    assert f"resumed as run {later['id']}" in after.stderr
    assert f"see it with: council show {later['id']}" in after.stderr
    assert f"go on with: council resume {later['id']}" in after.stderr
    assert f"council resume {run_id}" not in after.stderr
