"""What council says: click's usage errors as one line, one `answer` in both JSON
documents, and a wall-clock time on every `--jsonl` event."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import council_process, invoke, oracle, oracle_json

BOX = set("╭╮╰╯│─")


def run_council(*args: str) -> tuple[int, str, str]:
    process = council_process(*args)
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["oracel", "q"], "council: error: no such command 'oracel'; did you mean 'oracle'?"),
        (["personas", "shw"], "council: error: no such command 'shw'; did you mean 'show'?"),
        (
            ["oracle", "--retrys", "3", "q"],
            "council: error: no such option --retrys; did you mean --retries or --preset?",
        ),
        (
            ["oracle", "--persona", "judge", "q"],
            "council: error: no such option --persona; "
            "did you mean --personas or --json or --jsonl?",
        ),
        (
            ["oracle", "-p", "judge", "Is", "this", "good"],
            'council: error: the question must be one argument; quote it: council oracle "Is '
            'this good"',
        ),
        (
            ["deliberate", "Ship", "it?"],
            'council: error: the question must be one argument; quote it: council deliberate "Ship'
            ' it?"',
        ),
        (
            ["personas", "show", "judge", "critic"],
            "council: error: unexpected extra arguments: critic; see 'council personas show -h'",
        ),
        (
            ["history", "rm"],
            "council: error: missing argument 'run_id'; see 'council history rm -h'",
        ),
    ],
)
def test_usage_errors_are_one_line_like_every_other_error(args: list[str], line: str) -> None:
    code, out, err = run_council(*args)
    assert code == 2
    assert out == ""
    assert err.splitlines() == [line]
    assert not BOX & set(err)


def test_resume_with_a_question_says_so_in_words() -> None:
    result = invoke("deliberate", "--resume", "0123abcd", "Ship it?")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "council: error: --resume continues the recorded council; it takes no question; "
        "drop it, or start a new council instead"
    ]
    both = invoke("deliberate", "--resume", "0123abcd", "--rounds", "2", "q")
    assert "it takes no question or --rounds; drop them" in both.stderr


def test_a_bare_group_still_prints_its_help() -> None:
    code, out, err = run_council("personas")
    assert code == 2  # as click has it: no command given
    assert "list" in out + err and "show" in out + err
    assert "error" not in out + err


def _verdict(text: str, dissent: list[str]) -> Reply:
    body = {"converged": True, "confidence": 0.9, "synthesis": text, "dissent": dissent}
    return Reply(text=json.dumps(body))


def test_oracle_and_deliberate_documents_share_one_answer(fake: FakeOpenAI) -> None:
    fake.script("arbiter", Reply(text="Oracle's synthesis."))
    code, doc = oracle_json(fake, "-p", "judge,critic", "--synthesize", "q")
    assert code == 0
    # who the answer rests on, and the arbiter's agreement map (none in this reply)
    complete = {"answered": 2, "members": 2, "missing": [], "agreement": None}
    assert doc["answer"] == {"text": "Oracle's synthesis.", "persona": "arbiter", **complete}
    assert doc["synthesis"]["text"] == "Oracle's synthesis."  # the alias, for one release

    code, plain = oracle_json(fake, "-p", "judge", "q")
    assert code == 0 and plain["answer"] == {
        "text": None,
        "persona": None,
        "answered": 1,
        "members": 1,
        "missing": [],
        "agreement": None,
    }
    assert plain["synthesis"] is None

    fake.script("arbiter", _verdict("Deliberated.", ["critic: cost"]))
    result = invoke("deliberate", "--base-url", fake.base_url, "-p", "judge", "--json", "q")
    answer = json.loads(result.stdout)["answer"]
    assert answer["text"] == "Deliberated." and answer["persona"] == "arbiter"
    assert (answer["confidence"], answer["dissent"]) == (0.9, ["critic: cost"])
    # The keys both documents' answers have, so that `jq .answer.text` reads either.
    assert {"text", "persona"} <= set(answer)


def test_a_deliberation_without_a_verdict_has_an_answer_with_no_text(fake: FakeOpenAI) -> None:
    fake.script("arbiter", Reply(status=400), Reply(status=400), Reply(status=400))
    args = ["--base-url", fake.base_url, "-p", "judge", "--retries", "0", "--json", "q"]
    result = invoke("deliberate", *args)
    answer = json.loads(result.stdout)["answer"]
    assert answer["text"] is None and answer["dissent"] == [] and answer["confidence"] is None


def test_jsonl_events_carry_their_wall_clock_time(fake: FakeOpenAI) -> None:
    before = datetime.now().astimezone()
    result = oracle(fake, "-p", "judge", "--jsonl", "q")
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events and all(list(e)[:4] == ["type", "run_id", "at", "time"] for e in events)
    times = [datetime.fromisoformat(e["time"]) for e in events]
    assert all(t.utcoffset() == timedelta(0) for t in times)
    assert times == sorted(times)
    assert before - timedelta(seconds=1) <= times[0]


@pytest.mark.parametrize(
    ("strategies", "guess"),
    [("syntesize", "'synthesize'"), ("judge,dliberate", "'deliberate'"), ("jduge", "'judge'")],
)
def test_a_mistyped_eval_strategy_suggests_a_strategy(
    fake: FakeOpenAI, tmp_path, strategies: str, guess: str
) -> None:
    data = tmp_path / "qa.jsonl"
    data.write_text('{"id": "1", "query": "Capital of France?", "expected": "Paris"}\n')
    result = invoke("eval", str(data), "--strategies", strategies, "--base-url", fake.base_url)
    assert result.exit_code == 2
    wrong = strategies.split(",")[-1]
    assert result.stderr.splitlines() == [
        f"council: error: unknown strategy {wrong!r}; did you mean {guess}? a strategy is vote, "
        "rank, synthesize, deliberate, escalate or a persona's name ('council personas list')"
    ]
    assert fake.requests == []
