"""Results that say what they are (issue 23, points 1, 2, 7, 10): an eval's --out belongs to
one council, a template typo stops a batch, a dead run is shown dead, a batch's errors are
shown again, an unknown cost is never $0, a lowered max_tokens is told, a dry run shows
each attached file once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import council_process, history_rows, invoke
from tests.test_history_robust import EventReader, of_type


def until(predicate: Callable[[], bool], timeout: float = 20) -> None:
    """Wait for `predicate()` to hold, looking every 20 ms; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


# -- 1. an eval's --out belongs to one council ----------------------------------------------


def eval_items(tmp_path: Path, expected: str = "42", count: int = 2) -> Path:
    path = tmp_path / "sums.jsonl"
    lines = [
        {"id": f"n{i}", "query": f"6 × 7, take {i}?", "expected": expected} for i in range(count)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def run_eval(fake: FakeOpenAI, data: Path, out: Path, *args: str) -> tuple[dict[str, Any], str]:
    result = invoke(
        "eval", str(data), "--base-url", fake.base_url, "--out", str(out), "--json",
        "--max-concurrency", "1", *args,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def test_an_eval_out_of_another_council_is_asked_again_and_says_why(fake, tmp_path):
    data, out = eval_items(tmp_path), tmp_path / "ev-res.jsonl"
    fake.default = Reply(text="Answer: 42")
    first, _ = run_eval(fake, data, out, "-p", "judge,critic", "--strategies", "synthesize")
    assert (first["asked"], first["reused"]) == (2, 0) and len(fake.requests) == 6
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    setup = lines[0]["setup"]
    assert [p["name"] for p in setup["personas"]] == ["judge", "critic"]
    assert setup["arbiter"]["name"] == "arbiter" and setup["strategy"] == "synthesize"
    assert setup["personas"][0]["endpoint"] == fake.base_url.rstrip("/")
    assert setup["personas"][0]["model"] == "gpt-4o-mini"
    # Other personas: every stored answer is another council's, asked again and told.
    fake.reset()
    fake.default = Reply(text="Answer: 41")
    second, stderr = run_eval(fake, data, out, "-p", "judge,skeptic", "--strategies", "synthesize")
    assert sorted({r.persona for r in fake.requests}) == ["arbiter", "judge", "skeptic"]
    assert (second["asked"], second["reused"]) == (2, 0)
    assert second["redone"] == {"came from another setup (personas)": 2}
    assert "asking 2 runs of" in stderr and "another setup (personas" in stderr
    (synthesize,) = second["strategies"]
    assert (synthesize["n"], synthesize["correct"]) == (2, 0)  # the new council's answers only
    assert len(out.read_text().splitlines()) == 2  # one line per pair, the new one
    # The same council again: nothing is asked, nothing is redone.
    fake.reset()
    third, stderr = run_eval(fake, data, out, "-p", "judge,skeptic", "--strategies", "synthesize")
    assert fake.requests == [] and (third["asked"], third["reused"]) == (0, 2)
    assert third["redone"] == {} and "again" not in stderr
    # Another model for the same personas is another council too.
    fourth, stderr = run_eval(
        fake, data, out, "-p", "judge,skeptic", "--strategies", "synthesize", "--model", "other-m"
    )
    assert fourth["redone"] == {"came from another setup (models)": 2}
    assert {r.body["model"] for r in fake.requests if r.body} == {"other-m"}


def test_deliberate_rounds_and_lines_with_no_setup_are_asked_again(fake, tmp_path):
    data, out = eval_items(tmp_path, count=1), tmp_path / "r.jsonl"
    verdict = {"converged": True, "confidence": 0.9, "synthesis": "Answer: 42", "dissent": []}
    fake.default = Reply(text=json.dumps(verdict))
    args = ("-p", "judge,critic", "--strategies", "deliberate")
    run_eval(fake, data, out, *args, "--rounds", "1")
    asked = len(fake.requests)
    again, stderr = run_eval(fake, data, out, *args, "--rounds", "2")
    assert again["redone"] == {"came from another setup (rounds)": 1}
    assert len(fake.requests) > asked
    # A line an older council wrote records no setup: it is not taken for this council's.
    old = json.loads(out.read_text())
    del old["setup"]
    out.write_text(json.dumps(old) + "\n", encoding="utf-8")
    fake.reset()
    fake.default = Reply(text=json.dumps(verdict))
    redone, stderr = run_eval(fake, data, out, *args, "--rounds", "2")
    assert redone["redone"] == {"record no setup (an older council wrote them)": 1}
    assert fake.requests and "record no setup" in stderr


def test_another_scorer_rescores_the_stored_answers_without_asking_again(fake, tmp_path):
    data, out = eval_items(tmp_path, expected="42"), tmp_path / "r.jsonl"
    fake.script("skeptic", Reply(text="It is 42.0 exactly."), Reply(text="About 41.99"))
    first, _ = run_eval(fake, data, out, "--strategies", "skeptic", "--scorer", "exact")
    assert first["strategies"][0]["correct"] == 0 and len(fake.requests) == 2
    rescored, stderr = run_eval(
        fake, data, out, "--strategies", "skeptic", "--scorer", "number", "--tolerance", "0.1"
    )
    assert len(fake.requests) == 2  # nothing asked again
    assert (rescored["asked"], rescored["reused"], rescored["rescored"]) == (0, 2, 2)
    assert rescored["strategies"][0]["correct"] == 2
    assert "re-scoring 2 stored answers" in stderr and "scorer exact → number" in stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(line["scorer"], line["correct"]) for line in lines] == [("number", True)] * 2
    # A tighter tolerance re-scores again; the same one keeps the scores.
    tight, _ = run_eval(
        fake, data, out, "--strategies", "skeptic", "--scorer", "number", "--tolerance", "0.001"
    )
    assert (tight["rescored"], tight["strategies"][0]["correct"]) == (2, 1)
    same, _ = run_eval(
        fake, data, out, "--strategies", "skeptic", "--scorer", "number", "--tolerance", "0.001"
    )
    assert same["rescored"] == 0 and len(fake.requests) == 2


# -- 2. a batch template with an unknown field ------------------------------------------------


def test_a_template_field_the_first_item_lacks_is_exit_2_before_anything(fake, tmp_path):
    source = tmp_path / "tickets.csv"
    source.write_text(
        "id,title,body\n" + "".join(f"t{i},Title {i},Body {i}\n" for i in range(20)),
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    base = ("batch", str(source), "--base-url", fake.base_url, "--template", "Review: {bdy}")
    for extra in (("--out", str(out)), ("--dry-run",), ("--dry-run", "--json")):
        result = invoke(*base, *extra)
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.strip().splitlines()
        assert "{bdy}" in line and "did you mean {body}?" in line and "tickets.csv:2" in line
    assert fake.requests == [] and not out.exists()
    # Read from standard input (it cannot be read twice): the same line, nothing sent.
    piped = invoke(
        "batch", "-", "--base-url", fake.base_url, "--template", "Review: {bdy}",
        "--out", str(out), input='{"id": "a", "body": "x"}\n',
    )  # fmt: skip
    assert piped.exit_code == 2 and "did you mean {body}?" in piped.stderr
    assert fake.requests == []


def test_a_template_field_only_later_items_lack_skips_those_items(fake, tmp_path):
    source = tmp_path / "tickets.jsonl"
    source.write_text('{"id": "a", "body": "x"}\n{"id": "b", "title": "y"}\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = invoke(
        "batch", str(source), "--base-url", fake.base_url, "-p", "judge",
        "--template", "Review: {body}", "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["a"]
    assert ':2: no field "body" for the template' in result.stderr


# -- 7. a dead run is dead; a failed batch's errors are shown --------------------------------


def history_status(run_id: str) -> str:
    result = invoke("history", "--json")
    assert result.exit_code == 0, result.output
    return next(run["status"] for run in json.loads(result.stdout) if run["id"] == run_id)


def test_a_run_killed_with_sigkill_is_shown_as_died(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(hang=True))
    process = council_process(
        "oracle", "--base-url", fake.base_url, "-p", "judge", "--jsonl", "Still there?"
    )
    reader = EventReader(process)
    run_id = reader.wait_for(of_type("run_started"))["run_id"]
    fake.wait_for(lambda f: f.in_flight == 1)
    until(lambda: bool(history_rows("SELECT id FROM runs WHERE id = ?", run_id)))
    assert history_status(run_id) == "running"  # its process holds the run's lock
    process.kill()  # kill -9: nothing of council runs any more
    reader.finish()
    assert [r["status"] for r in history_rows("SELECT status FROM runs")] == ["running"]
    assert history_status(run_id) == "died"
    listed = invoke("history")
    assert f"{run_id}" in listed.stdout and " died " in listed.stdout
    shown = invoke("show", run_id)
    assert shown.exit_code == 0, shown.output
    assert f"run {run_id} (oracle" in shown.stderr and "): died, its process ended" in shown.stderr


def test_show_of_a_failed_batch_prints_the_recorded_messages(fake, tmp_path):
    source = tmp_path / "items.jsonl"
    source.write_text("".join(f'{{"id": "i{i}", "query": "q{i}"}}\n' for i in range(3)))
    out = tmp_path / "out.jsonl"
    refusal = Reply(status=400, error_message="model 'gpt-4o-mini' does not accept this prompt")
    fake.script("judge", refusal, refusal, refusal)
    result = invoke(
        "batch", str(source), "--base-url", fake.base_url, "-p", "judge", "--out", str(out),
        "--retries", "0",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    line = json.loads(out.read_text().splitlines()[0])
    message = line["errors"][0]["message"]
    assert "does not accept this prompt" in message
    (run,) = history_rows("SELECT id FROM runs")
    shown = invoke("show", run["id"])
    assert "(message not recorded)" not in shown.stderr
    assert f"judge, round 1: {line['errors'][0]['error_kind']}: {message} (3 calls)" in shown.stderr


# -- 10. numbers that mean what they say ------------------------------------------------------


def test_a_cost_partly_free_and_partly_unknown_is_unknown_never_0(fake: FakeOpenAI) -> None:
    from council.engine.fit import estimate

    args = ("oracle", "--base-url", fake.base_url, "-p", "judge,critic", "-o", "max_tokens", "40")
    dry = json.loads(invoke(*args, "--dry-run", "--json", "q").stdout)
    judge, critic = (estimate(call["messages"]) * 2 for call in dry["calls"])
    # The judge fits, the critic does not start (free); the judge's cost has no price.
    budget = str(int(judge + 40 + critic // 4))
    result = invoke(*args, "--max-tokens-total", budget, "--json", "q")
    assert result.exit_code == 3, result.output
    document = json.loads(result.stdout)
    assert [a["persona"] for a in document["answers"]] == ["judge"]
    assert document["cost_usd"] is None  # unknown: null, not 0
    # A run of its own (its own endpoint pool): the same estimates, the same calls fit.
    piped = invoke(*args, "--max-tokens-total", budget, "q")
    assert piped.exit_code == 3, piped.output
    assert "cost unknown" in piped.stdout and "$0" not in piped.stdout
    stats = invoke("stats").stdout.splitlines()
    # The judge's calls have no price: unknown; the critic's were never sent: free, truly.
    assert next(line for line in stats if line.startswith("judge")).endswith(" unknown")
    assert next(line for line in stats if line.startswith("critic")).endswith(" $0.0000")


def test_an_eval_table_of_free_and_unknown_runs_says_unknown() -> None:
    from council.engine.scoring import summarize
    from council.render.eval_report import eval_markdown

    lines = [
        {"strategy": "a", "status": "ok", "correct": True, "metrics": {"cost_usd": 0.0}},
        {"strategy": "a", "status": "ok", "correct": True, "metrics": {"cost_usd": None}},
    ]
    (summary,) = summarize(lines, ["a"])
    assert summary.cost_usd is None
    table = eval_markdown([summary], "x")
    assert "| unknown |" in table and "$0" not in table


def test_a_budget_that_lowered_max_tokens_says_so_with_the_new_limit(fake: FakeOpenAI) -> None:
    from council.engine.fit import estimate

    args = ("oracle", "--base-url", fake.base_url, "-p", "judge", "-o", "max_tokens", "400")
    dry = json.loads(invoke(*args, "--dry-run", "--json", "q").stdout)
    (prompt,) = (estimate(call["messages"]) for call in dry["calls"])
    result = invoke(*args, "--max-tokens-total", str(prompt * 2 + 100), "q")
    assert result.exit_code == 0, result.output
    (request,) = fake.requests
    assert request.body is not None
    sent = request.body["max_tokens"]
    assert sent < 400
    lowered = [line for line in result.stderr.splitlines() if "lowered" in line]
    assert lowered == [
        f"council: --max-tokens-total {prompt * 2 + 100} ({_spent(result)} spent): "
        f"max_tokens lowered to {sent:,} for r1-judge (from 400)"
    ]


def test_a_batch_says_how_many_calls_its_budget_lowered(fake: FakeOpenAI, tmp_path: Path) -> None:
    from tests.test_cost import priced_profile

    priced_profile(fake)  # $1,000 and $2,000 per million tokens in and out
    items = tmp_path / "items.jsonl"
    items.write_text("".join(f'{{"id": "i{i}", "query": "q{i}"}}\n' for i in range(8)))
    result = invoke(
        "batch", str(items), "--endpoint", "fake", "-p", "judge", "--out", str(tmp_path / "o"),
        "--max-concurrency", "1", "-o", "max_tokens", "200", "--budget-usd", "1.0",
    )  # fmt: skip
    sent = [r.body["max_tokens"] for r in fake.requests if r.body]
    lowered = [room for room in sent if room < 200]
    assert lowered, sent  # the budget ran low part way
    assert (
        f"--budget-usd lowered max_tokens of {len(lowered)} calls (the lowest to {min(lowered)})"
        in result.stderr
    )


def _spent(result: Any) -> str:
    """The tokens spent, as the line says them (read back: the server counted them)."""
    line = next(line for line in result.stderr.splitlines() if "lowered" in line)
    return line.split("(", 1)[1].split(" spent")[0]


def test_a_dry_run_shows_each_attached_file_once(fake: FakeOpenAI, tmp_path: Path) -> None:
    attached = tmp_path / "notes.md"
    attached.write_text("UNIQUE-MARKER line one\nline two\n", encoding="utf-8")
    result = invoke(
        "oracle", "--base-url", fake.base_url, "-p", "judge,critic,skeptic", "-c", str(attached),
        "--synthesize", "--dry-run", "What do these notes say?",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.count("UNIQUE-MARKER") == 1
    assert result.stdout.count(f'<file path="{attached}">') == 3  # each call still carries it
    assert 'shown once under "Attached files" below' in result.stdout
    deliberation = invoke(
        "deliberate", "--base-url", fake.base_url, "-p", "judge,critic", "-c", str(attached),
        "--dry-run", "What do these notes say?",
    )  # fmt: skip
    assert deliberation.stdout.count("UNIQUE-MARKER") == 1
    assert fake.requests == []
