"""Calls that end short of a whole answer keep what they can, and say so (issue 23).

A deadline keeps the text that was streaming; an answer too large for memory fails
as its own kind while the others go on; a prompt a server cut silently is noticed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import history_rows, invoke, kept_learned, oracle, oracle_json

QUESTION = "Is the sky blue?"


# -- a deadline keeps what came ---------------------------------------------------------


def test_text_streaming_at_the_deadline_is_kept_as_a_cut_answer(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(text="Partly: the sky scatters blue light more", hang_after=4))
    fake.script("skeptic", Reply(hang=True))  # nothing by the deadline: fails as before
    code, doc = oracle_json(fake, "--personas", "judge,critic,skeptic", "--timeout", "1", QUESTION)
    assert code == 3  # skeptic failed; the run is partial, not failed
    answers = {a["persona"]: a for a in doc["answers"]}
    assert answers["judge"]["text"] == "Partly: the sky scatters "  # 4 chunks, as sent
    assert answers["judge"]["finish_reason"] == "deadline"
    assert answers["critic"]["finish_reason"] == "stop"
    assert [(e["persona"], e["error_kind"]) for e in doc["errors"]] == [("skeptic", "timeout")]
    # The stream was closed at the deadline, so the server stopped generating.
    fake.wait_for(lambda f: any(r.persona == "judge" for r in f.disconnects))


def test_a_deadline_cut_is_marked_where_the_answer_is_read(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(text="one two three four five six", hang_after=2))
    result = oracle(fake, "--personas", "judge", "--timeout", "1", QUESTION)
    assert result.exit_code == 0
    assert "one two" in result.stdout
    assert "cut at the deadline" in result.stdout
    rows = history_rows("SELECT status, finish_reason, text FROM calls")
    assert [tuple(r) for r in rows] == [("answered", "deadline", "one two ")]


def test_a_deliberation_goes_on_with_answers_cut_at_the_deadline(fake: FakeOpenAI) -> None:
    personas = ("judge", "critic")
    for name in personas:
        fake.script(name, Reply(text=f"{name} rambles on and on forever", hang_after=3), round=1)
        fake.script(name, Reply(text=f"{name} answer two"), round=2)
    fake.script("arbiter", Reply(text=json.dumps(_verdict(False))), round=1)
    fake.script("arbiter", Reply(text=json.dumps(_verdict(True))), round=2)
    result = invoke(
        "deliberate",
        "--base-url",
        fake.base_url,
        "--personas",
        ",".join(personas),
        "--rounds",
        "2",
        "--timeout",
        "1",
        "--json",
        "q",
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    first = {a["persona"]: a for a in doc["rounds"][0]["answers"]}
    assert first["judge"]["text"] == "judge rambles on "
    assert first["judge"]["finish_reason"] == "deadline"
    assert doc["answer"]["text"] == "Converged."
    # Round 2 was asked with what round 1 said by its deadline.
    second = [r for r in fake.requests_for("critic") if r.round == "2"]
    assert second and second[0].body is not None
    assert "judge rambles on" in second[0].body["messages"][-1]["content"]


def _verdict(converged: bool) -> dict[str, object]:
    synthesis = "Converged." if converged else "Not yet."
    return {"converged": converged, "confidence": 0.9, "synthesis": synthesis, "dissent": []}


# -- a prompt the server cut without a word ---------------------------------------------


def _big_file(tmp_path: Path) -> Path:
    """About 60,000 characters of words: some 20,000 tokens as council estimates them."""
    path = tmp_path / "notes.txt"
    path.write_text(" ".join(f"word{i}" for i in range(10_000)) + "\n")
    return path


def test_a_prompt_the_server_cut_is_warned_of_marked_and_learned(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    fake.num_ctx = 2048  # Ollama: the prompt is cut there, and the usage counts 2,048
    context = str(_big_file(tmp_path))
    result = oracle(fake, "--personas", "judge,critic", "-c", context, "Summarise.")
    assert result.exit_code == 0
    assert result.stdout.count("2,048 → 14 tokens · prompt cut by the server?") == 2
    [run] = history_rows("SELECT id FROM runs")
    doc = json.loads(invoke("show", run["id"], "--json").stdout)
    assert [a["prompt_cut_by_server"] for a in doc["answers"]] == [True, True]
    warnings = [line for line in result.stderr.splitlines() if "cut the prompt" in line]
    assert len(warnings) == 1  # once per run, naming both calls
    assert "counted 2,048 prompt tokens" in warnings[0] and "Ollama's num_ctx?" in warnings[0]
    estimated = int(warnings[0].split("estimated about ")[1].split(":")[0].replace(",", ""))
    assert estimated > 4 * 2048
    rows = history_rows("SELECT persona, prompt_cut_by_server FROM calls ORDER BY persona")
    assert [tuple(r) for r in rows] == [("critic", 1), ("judge", 1)]
    learned = kept_learned(fake.base_url)  # what the run's pool learned, kept
    assert [(v.context_window, v.window_source) for v in learned] == [(2048, "cut prompt")]

    # The next run fits its prompt to the count, visibly, and has nothing to warn of.
    fake.reset()
    fake.num_ctx = 2048
    again = oracle(fake, "--personas", "judge", "--json", "-c", context, "Summarise.")
    assert again.exit_code == 0
    answer = json.loads(again.stdout)["answers"][0]
    assert answer["prompt_cut_by_server"] is False
    assert answer["fitted"]["window"] == 2048
    sent = fake.requests_for("judge")[0].body
    assert sent is not None
    assert "words cut to fit a 2,048-token context]" in sent["messages"][-1]["content"]
    assert "cut the prompt" not in again.stderr


def test_a_prompt_cache_or_a_small_prompt_is_no_cut(fake: FakeOpenAI, tmp_path: Path) -> None:
    cached = {"prompt_tokens": 40, "completion_tokens": 5}
    cached["prompt_tokens_details"] = {"cached_tokens": 15_000}  # type: ignore[assignment]
    fake.script("judge", Reply(usage_body=cached))
    fake.script("critic", Reply(usage_body={"prompt_tokens": 1, "completion_tokens": 5}))
    context = str(_big_file(tmp_path))
    code, doc = oracle_json(fake, "--personas", "judge", "-c", context, "Summarise.")
    assert code == 0 and doc["answers"][0]["prompt_cut_by_server"] is False
    code, doc = oracle_json(fake, "--personas", "critic", "Is it?")  # small: never a cut
    assert code == 0 and doc["answers"][0]["prompt_cut_by_server"] is False
    assert all(v.context_window is None for v in kept_learned(fake.base_url))


@pytest.mark.usefixtures("one_process")  # the count before is known: not kept in the history
def test_a_count_below_one_the_server_gave_before_is_a_cache(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    context = str(_big_file(tmp_path))
    code, _ = oracle_json(fake, "--personas", "judge", "-c", context, "Summarise.")
    assert code == 0  # counted whole: the window holds at least that
    fake.script("judge", Reply(usage_body={"prompt_tokens": 30, "completion_tokens": 5}))
    code, doc = oracle_json(fake, "--personas", "judge", "-c", context, "Summarise.")
    assert code == 0 and doc["answers"][0]["prompt_cut_by_server"] is False


# -- memory is bounded ------------------------------------------------------------------

# With -o max_tokens 10 an answer may hold 65,696 characters, and one event or a whole
# completion 459,712 bytes (endpoint/caps.py).
SMALL_CAP = ("-o", "max_tokens", "10")


def test_an_endless_answer_fails_as_too_large_and_the_others_are_kept(
    fake: FakeOpenAI,
) -> None:
    fake.script("judge", Reply(text="and-on-and-on-and-on-and-on " * 50, endless=True))
    fake.script("critic", Reply(text="A calm answer."))
    code, doc = oracle_json(fake, "--personas", "judge,critic", *SMALL_CAP, QUESTION)
    assert code == 3
    assert [(a["persona"], a["text"]) for a in doc["answers"]] == [("critic", "A calm answer.")]
    [error] = doc["errors"]
    assert (error["persona"], error["error_kind"]) == ("judge", "too_large")
    assert "larger than 65,696 characters" in error["message"]
    # Stopped there: its stream was closed, and it was not asked again.
    fake.wait_for(lambda f: any(r.persona == "judge" for r in f.disconnects))
    assert len(fake.requests_for("judge")) == 1


def test_one_enormous_event_fails_as_too_large(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(text="x" * 600_000))  # one word: one event of 600 kB
    code, doc = oracle_json(fake, "--personas", "judge,critic", *SMALL_CAP, QUESTION)
    assert code == 3
    assert [a["persona"] for a in doc["answers"]] == ["critic"]
    assert [(e["persona"], e["error_kind"]) for e in doc["errors"]] == [("judge", "too_large")]
    assert "an event larger than 459,712 bytes" in doc["errors"][0]["message"]


def test_an_enormous_whole_completion_fails_as_too_large(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(text="word " * 120_000, plain_json=True))
    code, doc = oracle_json(fake, "--personas", "judge,critic", *SMALL_CAP, QUESTION)
    assert code == 3
    assert [a["persona"] for a in doc["answers"]] == ["critic"]
    assert [(e["persona"], e["error_kind"]) for e in doc["errors"]] == [("judge", "too_large")]
    assert "an answer body larger than 459,712 bytes" in doc["errors"][0]["message"]


def test_an_answer_under_its_cap_is_whole(fake: FakeOpenAI) -> None:
    text = "wordwordwordword " * 3_800  # 64,600 characters: just under the cap
    fake.script("judge", Reply(text=text))
    code, doc = oracle_json(fake, "--personas", "judge", *SMALL_CAP, QUESTION)
    assert code == 0 and doc["answers"][0]["text"] == text


def test_the_history_stores_each_answer_once(fake: FakeOpenAI) -> None:
    long = " ".join(f"point{i}" for i in range(2_000))  # about 16 kB
    fake.script("judge", Reply(text=long))
    piped = invoke("oracle", "--base-url", fake.base_url, "-p", "judge,critic", QUESTION)
    assert piped.exit_code == 0 and long in piped.stdout
    [run] = history_rows("SELECT id, document, markdown FROM runs")
    assert long not in run["document"] and long not in run["markdown"]
    texts = history_rows("SELECT text FROM calls WHERE persona = 'judge'")
    assert [r["text"] for r in texts] == [long]
    # Shown and exported as it was printed.
    assert invoke("show", run["id"]).stdout == piped.stdout
    shown = json.loads(invoke("show", run["id"], "--json").stdout)
    assert [a["text"] for a in shown["answers"] if a["persona"] == "judge"] == [long]
