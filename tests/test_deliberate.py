"""`council deliberate` against the fake server: rounds, verdicts, speculation, failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.fake_openai import FakeOpenAI, RecordedRequest, Reply
from tests.helpers import council_process, interrupt_when, invoke

PERSONAS = ("judge", "critic", "skeptic")


def verdict(converged: bool, confidence: float = 0.9, synthesis: str = "", **extra: Any) -> Reply:
    """The arbiter's reply: a verdict JSON object."""
    data = {
        "converged": converged,
        "confidence": confidence,
        "synthesis": synthesis or f"Synthesis: converged={converged}.",
        "dissent": extra.pop("dissent", []),
    }
    return Reply(text=json.dumps(data), **extra)


def deliberate(fake: FakeOpenAI, *args: str) -> Any:
    return invoke("deliberate", "--base-url", fake.base_url, *args)


def deliberate_json(fake: FakeOpenAI, *args: str) -> tuple[int, dict[str, Any]]:
    result = deliberate(fake, "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def persona_requests(fake: FakeOpenAI, round_number: int) -> list[RecordedRequest]:
    return [r for r in fake.requests if r.round == str(round_number) and r.persona in PERSONAS]


def verdict_requests(fake: FakeOpenAI) -> list[RecordedRequest]:
    return fake.requests_for("arbiter")


def user_prompt(request: RecordedRequest) -> str:
    assert request.body is not None
    return request.body["messages"][-1]["content"]


@pytest.fixture
def background() -> Iterator[ThreadPoolExecutor]:
    """Runs council in a thread while the test steers the fake server (gates, waits)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool


def script_answers(fake: FakeOpenAI, rounds: int) -> None:
    """Distinct, deterministic answers per persona and round."""
    for number in range(1, rounds + 1):
        for name in PERSONAS:
            position = "Position: kept\n" if number > 1 else ""
            fake.script(name, Reply(text=f"{position}{name} answer {number}"), round=number)


# -- the rounds themselves -------------------------------------------------------------------


def test_rounds_revise_against_the_previous_round_until_the_last(fake: FakeOpenAI) -> None:
    script_answers(fake, 3)
    for number in (1, 2, 3):
        fake.script("arbiter", verdict(False, 0.4, f"Synthesis {number}."), round=number)

    code, doc = deliberate_json(fake, "--rounds", "3", "Is the plan safe?")

    assert code == 0
    assert doc["stop_reason"] == "max_rounds"
    assert [r["round"] for r in doc["rounds"]] == [1, 2, 3]
    assert doc["answer"]["text"] == "Synthesis 3." and doc["answer"]["round"] == 3
    assert doc["answer"]["converged"] is False
    # Round 1 asks the question; round 2 shows every round-1 answer, the persona's own marked.
    assert user_prompt(persona_requests(fake, 1)[0]) == "Is the plan safe?"
    critic_round_2 = next(r for r in persona_requests(fake, 2) if r.persona == "critic")
    prompt = user_prompt(critic_round_2)
    for name in PERSONAS:
        assert f"{name} answer 1" in prompt
        assert f"{name} answer 2" not in prompt
    assert '<answer member="critic" yours="true">' in prompt
    assert '<answer member="judge">' in prompt
    assert prompt.index('member="judge"') < prompt.index('member="critic"')
    # Each verdict reads its own round's answers and is asked for JSON.
    verdicts = verdict_requests(fake)
    assert [r.round for r in verdicts] == ["1", "2", "3"]
    assert "judge answer 2" in user_prompt(verdicts[1])
    assert all(r.body and r.body["response_format"]["type"] == "json_schema" for r in verdicts)
    assert doc["rounds"][1]["positions"] == {"judge": "kept", "critic": "kept", "skeptic": "kept"}


def test_sequential_rounds_start_only_after_the_previous_verdict(fake: FakeOpenAI) -> None:
    fake.script("arbiter", verdict(False), verdict(False))
    code, doc = deliberate_json(fake, "--rounds", "2", "q")
    assert code == 0 and len(doc["rounds"]) == 2
    verdict_1 = verdict_requests(fake)[0]
    assert verdict_1.finished_at is not None
    assert all(r.received_at > verdict_1.finished_at for r in persona_requests(fake, 2))
    assert not any(c["speculative"] for c in doc["timeline"])
    assert doc["metrics"]["wasted_tokens"] == 0


def test_a_converged_verdict_ends_the_council(fake: FakeOpenAI) -> None:
    fake.script("arbiter", verdict(True, 0.95, "Agreed: ship it.", dissent=["skeptic: tests"]))
    result = deliberate(fake, "--rounds", "3", "Ship?")
    assert result.exit_code == 0, result.stderr
    assert len(fake.requests) == 4  # three personas and one verdict
    assert "Agreed: ship it." in result.stdout
    assert "Converged in round 1 of 3 (confidence 0.95)" in result.stdout
    assert "## Dissent\n\n- skeptic: tests" in result.stdout
    assert "## Timeline" in result.stdout


def test_a_converged_verdict_below_the_threshold_does_not_end_it(fake: FakeOpenAI) -> None:
    fake.script("arbiter", verdict(True, 0.7), verdict(True, 0.85))
    code, doc = deliberate_json(fake, "--threshold", "0.8", "q")
    assert code == 0
    assert [r["verdict"]["confidence"] for r in doc["rounds"]] == [0.7, 0.85]
    assert doc["stop_reason"] == "converged"


def test_an_unparseable_verdict_counts_as_not_converged_with_a_warning(
    fake: FakeOpenAI,
) -> None:
    fake.script("arbiter", Reply(text="I think they mostly agree."), verdict(True))
    result = deliberate(fake, "--rounds", "3", "q")
    assert result.exit_code == 0
    assert "verdict on round 1 could not be read" in result.stderr
    assert "counted as not converged" in result.stderr
    assert len(verdict_requests(fake)) == 2  # it went on to round 2, which converged
    assert "Converged in round 2 of 3" in result.stdout


def test_the_last_verdict_unreadable_still_shows_what_the_arbiter_wrote(
    fake: FakeOpenAI,
) -> None:
    fake.script("arbiter", Reply(text="No JSON, sorry: they disagree on cost."))
    code, doc = deliberate_json(fake, "--rounds", "1", "q")
    assert code == 3  # partial: no verdict was ever readable (issue 13)
    assert doc["answer"]["text"] == "No JSON, sorry: they disagree on cost."
    assert doc["rounds"][0]["verdict"]["problem"]


def test_a_rejected_response_format_is_dropped_and_the_verdict_still_read(
    fake: FakeOpenAI,
) -> None:
    fake.reject_response_format = True
    fake.script("arbiter", verdict(True, synthesis="Read anyway."))
    code, doc = deliberate_json(fake, "q")
    assert code == 0 and doc["answer"]["text"] == "Read anyway."
    assert [r.status for r in verdict_requests(fake)] == [400, 200]
    assert "response_format" not in (verdict_requests(fake)[1].body or {})


# -- speculation ---------------------------------------------------------------------------


def test_speculative_round_starts_while_the_arbiter_judges(
    fake: FakeOpenAI, background: ThreadPoolExecutor
) -> None:
    fake.script("arbiter", verdict(False, gate="verdict-1"), round=1)
    fake.script("arbiter", verdict(True), round=2)
    running = background.submit(deliberate_json, fake, "--speculative", "--rounds", "3", "q")

    # Round 2 is asked while verdict 1 is still held back by the server.
    fake.wait_for(lambda f: len(persona_requests(f, 2)) == 3 and len(verdict_requests(f)) == 2)
    assert verdict_requests(fake)[0].finished_at is None
    # ...but round 3 waits for verdict 1, even though round 2 is done and judged.
    assert persona_requests(fake, 3) == []
    fake.release("verdict-1")

    code, doc = running.result(timeout=10)
    assert code == 0 and doc["stop_reason"] == "converged"
    assert [r["round"] for r in doc["rounds"]] == [1, 2]
    speculative = {(c["round"], c["role"]) for c in doc["timeline"] if c["speculative"]}
    assert speculative == {(2, "persona"), (2, "arbiter")}


def test_converging_cancels_the_speculative_round_and_counts_its_tokens(
    fake: FakeOpenAI, background: ThreadPoolExecutor
) -> None:
    fake.script("arbiter", verdict(True, synthesis="Done in one.", gate="verdict-1"))
    for name in PERSONAS:
        fake.script(name, Reply(tokens=40, hang_after=3), round=2)
    running = background.submit(deliberate, fake, "--speculative", "--jsonl", "--rounds", "3", "q")
    fake.wait_for(lambda f: sum(r.tokens_sent for r in persona_requests(f, 2)) == 9)
    fake.release("verdict-1")
    result = running.result(timeout=10)

    assert result.exit_code == 0, result.stderr
    fake.wait_for(lambda f: len(f.disconnects) == 3)
    assert {r.persona for r in fake.disconnects} == set(PERSONAS)
    assert all(r.round == "2" and not r.completed for r in fake.disconnects)
    events = [json.loads(line) for line in result.stdout.splitlines()]
    cancelled = [e for e in events if e["type"] == "call_cancelled"]
    assert len(cancelled) == 3 and {e["reason"] for e in cancelled} == {"superseded"}
    (discarded,) = [e for e in events if e["type"] == "round_discarded"]
    assert discarded["round"] == 2 and discarded["wasted_tokens"] == 9
    (final_verdict,) = [e for e in events if e["type"] == "arbiter_verdict"]
    assert final_verdict["round"] == 1 and final_verdict["ends_council"] is True
    assert events[-1]["type"] == "run_finished" and events[-1]["exit_code"] == 0


def test_discarded_round_that_had_finished_counts_all_its_tokens(
    fake: FakeOpenAI, background: ThreadPoolExecutor
) -> None:
    fake.script("arbiter", verdict(True, gate="verdict-1"), round=1)
    running = background.submit(deliberate_json, fake, "--speculative", "q")
    # Round 2 finishes, and its verdict is asked, while verdict 1 is held.
    fake.wait_for(lambda f: len(verdict_requests(f)) == 2)
    fake.release("verdict-1")
    code, doc = running.result(timeout=10)
    assert code == 0 and [r["round"] for r in doc["rounds"]] == [1]
    round_2 = [c for c in doc["timeline"] if c["round"] == 2 and c["role"] == "persona"]
    assert {c["status"] for c in round_2} == {"discarded"} and not any(c["kept"] for c in round_2)
    assert doc["discarded_rounds"] == [2]
    persona_tokens = sum(c["tokens_out"] for c in round_2)
    assert persona_tokens == 3 * 14  # the fake's usage: 12 words and "<name> says:"
    assert doc["metrics"]["wasted_tokens"] >= persona_tokens


@pytest.mark.parametrize("converge_at", [2, None], ids=["converging", "never-converging"])
def test_speculation_is_lossless(fake: FakeOpenAI, converge_at: int | None) -> None:
    """Same scripted responses: same kept rounds, verdicts, answer and exit code."""

    def script() -> None:
        fake.reset()
        script_answers(fake, 3)
        for number in (1, 2, 3):
            converged = number == converge_at
            fake.script(
                "arbiter",
                verdict(converged, 0.9, f"Synthesis {number}.", dissent=[f"d{number}"]),
                round=number,
            )

    def kept_requests(rounds: int) -> list[tuple[str | None, str | None, Any]]:
        requests = [r for r in fake.requests if r.round and int(r.round) <= rounds]
        return sorted(
            ((r.persona, r.round, r.body and r.body["messages"]) for r in requests),
            key=lambda item: (item[1] or "", item[0] or ""),
        )

    outcomes = []
    for flags in ([], ["--speculative"]):
        script()
        code, doc = deliberate_json(fake, *flags, "--rounds", "3", "Is it safe?")
        assert any(c["speculative"] for c in doc["timeline"]) == bool(flags)
        kept = len(doc["rounds"])
        outcomes.append(
            {
                "exit_code": code,
                "stop_reason": doc["stop_reason"],
                "answer": doc["answer"],
                "rounds": [
                    {
                        "answers": [(a["persona"], a["text"]) for a in r["answers"]],
                        "verdict": r["verdict"],
                        "positions": r["positions"],
                    }
                    for r in r_list
                ]
                if (r_list := doc["rounds"])
                else [],
                "requests": kept_requests(kept),
            }
        )
    sequential, speculative = outcomes
    assert sequential == speculative
    assert len(sequential["rounds"]) == (converge_at or 3)


def test_max_wasted_tokens_falls_back_to_sequential(fake: FakeOpenAI) -> None:
    fake.script("arbiter", verdict(False), verdict(True))
    result = deliberate(fake, "--speculative", "--max-wasted-tokens", "10", "--json", "q")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["metrics"]["speculation_skipped"] == [2]
    assert not any(c["speculative"] for c in doc["timeline"])
    verdict_1 = verdict_requests(fake)[0]
    assert all(r.received_at > (verdict_1.finished_at or 0) for r in persona_requests(fake, 2))
    assert "--max-wasted-tokens 10" in result.stderr


# -- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize("speculative", [False, True], ids=["sequential", "speculative"])
def test_a_persona_failing_mid_council_is_left_out_of_the_next_round(
    fake: FakeOpenAI, speculative: bool
) -> None:
    fake.script("critic", Reply(status=400, error_message="context too long"), round=2)
    fake.script("arbiter", verdict(False), verdict(False), verdict(False))
    flags = ["--speculative"] if speculative else []
    result = deliberate(fake, *flags, "--rounds", "3", "q")

    assert result.exit_code == 3
    judge_round_3 = next(r for r in persona_requests(fake, 3) if r.persona == "judge")
    prompt = user_prompt(judge_round_3)
    assert '<answer member="critic"' not in prompt
    assert "no answer from: critic" in prompt
    assert len(persona_requests(fake, 3)) == 3  # the critic is asked again in round 3
    assert "critic failed in round 2 (bad_request)" in result.stderr
    assert "critic (bad_request)" in result.stdout  # marked in the rounds table


def test_every_persona_failing_ends_with_the_last_complete_round(fake: FakeOpenAI) -> None:
    for name in PERSONAS:
        fake.script(name, Reply(status=400), round=2)
    fake.script("arbiter", verdict(False, synthesis="Round one's synthesis."))
    code, doc = deliberate_json(fake, "--rounds", "3", "q")
    assert code == 3
    assert doc["stop_reason"] == "all_failed"
    assert [r["round"] for r in doc["rounds"]] == [1]
    assert doc["failed_round"]["round"] == 2
    assert doc["answer"]["text"] == "Round one's synthesis."
    assert len(verdict_requests(fake)) == 1 and persona_requests(fake, 3) == []


def test_every_persona_failing_in_round_one_is_an_endpoint_error(fake: FakeOpenAI) -> None:
    fake.default = Reply(status=404, error_message="The model `nope` does not exist")
    result = deliberate(fake, "q")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith("council: error: all 3 personas")
    assert "check --model" in result.stderr


@pytest.mark.parametrize("speculative", [False, True], ids=["sequential", "speculative"])
def test_an_arbiter_failure_ends_the_council_with_the_last_round_shown(
    fake: FakeOpenAI, speculative: bool
) -> None:
    script_answers(fake, 3)
    fake.script("arbiter", verdict(False, synthesis="First synthesis."), round=1)
    fake.script("arbiter", Reply(status=400, error_message="arbiter broke"), round=2)
    flags = ["--speculative"] if speculative else []
    result = deliberate(fake, *flags, "--rounds", "3", "q")

    assert result.exit_code == 3
    assert "the arbiter failed on round 2 (bad_request)" in result.stderr
    assert "arbiter broke; showing that round's answers" in result.stderr
    assert "## Answers in round 2" in result.stdout
    assert "judge answer 2" in result.stdout and "First synthesis." in result.stdout
    assert "arbiter failed (bad_request)" in result.stdout
    assert "answer 3" not in result.stdout  # a speculative round 3 is discarded, not shown


def test_an_arbiter_that_never_answers_times_out_instead_of_hanging(fake: FakeOpenAI) -> None:
    fake.script("arbiter", Reply(hang=True))
    code, doc = deliberate_json(fake, "--timeout", "0.5", "--retries", "0", "q")
    assert code == 3
    assert doc["stop_reason"] == "arbiter_failed"
    assert doc["rounds"][0]["arbiter"]["error_kind"] in ("timeout", "first_token_timeout")
    assert len(doc["rounds"][0]["answers"]) == 3


def test_ctrl_c_prints_the_best_answer_so_far_and_exits_130(fake: FakeOpenAI) -> None:
    fake.script("arbiter", verdict(False, synthesis="Best so far: round one."), round=1)
    for name in PERSONAS:
        fake.script(name, Reply(hang=True), round=2)
    process = council_process(
        "deliberate", "--base-url", fake.base_url, "--rounds", "3", "q", env={"COLUMNS": "120"}
    )
    stdout, stderr = interrupt_when(process, fake, lambda f: len(persona_requests(f, 2)) == 3)
    assert process.returncode == 130, stderr
    assert "Best so far: round one." in stdout
    assert "interrupted; showing the synthesis of round 1" in stderr
    fake.wait_for(lambda f: len(f.disconnects) == 3)


# -- the command line ----------------------------------------------------------------------


def test_quiet_prints_the_answer_only(fake: FakeOpenAI) -> None:
    fake.script("arbiter", verdict(True, synthesis="Just this."))
    result = deliberate(fake, "--quiet", "q")
    assert result.exit_code == 0 and result.stdout == "Just this.\n"


def test_dry_run_shows_round_one_and_the_shape_of_later_prompts(fake: FakeOpenAI) -> None:
    result = deliberate(fake, "--dry-run", "--speculative", "--rounds", "4", "Is it safe?")
    assert result.exit_code == 0
    assert "rounds: at most 4" in result.stdout and "schedule: speculative" in result.stdout
    assert "## round 2: judge" in result.stdout
    assert "(round 1 answer of critic)" in result.stdout
    assert "response_format json_schema" in result.stdout
    assert fake.requests == []
    doc = json.loads(deliberate(fake, "--dry-run", "--json", "q").stdout)
    assert doc["command"] == "deliberate" and doc["rounds"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-wasted-tokens", "5", "q"], "--max-wasted-tokens only applies with --speculative"),
        (["--arbiter", "nobody", "q"], "nobody"),
        (["--json", "--jsonl", "q"], "--json and --jsonl are exclusive"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(
    fake: FakeOpenAI, args: list[str], message: str
) -> None:
    result = deliberate(fake, *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert fake.requests == []


def test_help_has_an_example() -> None:
    result = invoke("deliberate", "--help")
    assert result.exit_code == 0
    assert "council deliberate" in result.stdout and "--speculative" in result.stdout
