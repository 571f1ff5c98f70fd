"""`council oracle` end to end against the fake OpenAI-compatible server."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fake_openai import Reply
from tests.helpers import oracle, oracle_json

QUESTION = "Should we rewrite the billing service in Rust?"


def test_every_persona_is_asked_at_once_and_answers_are_aggregated(fake):
    fake.default = Reply(ttft=0.3, tokens=5)
    result = oracle(fake, "--personas", "judge,critic,skeptic", QUESTION)
    assert result.exit_code == 0, result.output
    assert fake.peak_concurrency == 3
    for name in ("judge", "critic", "skeptic"):
        assert f"## {name}" in result.stdout
        assert f"{name} says:" in result.stdout
    assert "3 of 3 personas answered" in result.stdout
    personas_asked = sorted(r.persona for r in fake.requests)
    assert personas_asked == ["critic", "judge", "skeptic"]
    # Each persona got its own system prompt and the same question.
    for request in fake.requests:
        messages = request.body["messages"]
        assert messages[0]["role"] == "system" and messages[0]["content"]
        assert messages[-1] == {"role": "user", "content": QUESTION}
        assert request.body["stream"] is True


def test_max_concurrency_caps_calls_in_flight(fake):
    fake.default = Reply(ttft=0.2, tokens=3)
    names = "judge,critic,skeptic,optimist,pragmatist"
    result = oracle(fake, "--personas", names, "--max-concurrency", "2", QUESTION)
    assert result.exit_code == 0, result.output
    assert fake.peak_concurrency == 2
    assert len(fake.requests) == 5


def test_retry_after_is_honoured_on_429(fake):
    fake.script("judge", Reply(status=429, retry_after=0.4), Reply(text="Ruling: no."))
    code, doc = oracle_json(fake, "--personas", "judge,critic", QUESTION)
    assert code == 0
    first, second = fake.requests_for("judge")
    assert first.status == 429
    # Read from the server's own clock: the retry came no sooner than Retry-After.
    assert second.received_at - first.finished_at >= 0.4
    judge = next(a for a in doc["answers"] if a["persona"] == "judge")
    assert judge["text"] == "Ruling: no."
    # A 429 is the endpoint being full: re-sent, not a retry (issue 14).
    assert (judge["retries"], judge["resends"]) == (0, 1)


def test_server_errors_are_retried(fake):
    fake.script("judge", Reply(status=500), Reply(status=503), Reply(text="third time"))
    code, doc = oracle_json(fake, "--personas", "judge", "--retries", "2", QUESTION)
    assert code == 0
    assert [r.status for r in fake.requests_for("judge")] == [500, 503, 200]
    assert doc["answers"][0]["text"] == "third time"


def test_no_retry_on_400_and_others_still_answer(fake):
    fake.script("critic", Reply(status=400, error_message="max_tokens is too large"))
    code, doc = oracle_json(fake, "--personas", "judge,critic,skeptic", QUESTION)
    assert code == 3
    assert len(fake.requests_for("critic")) == 1
    assert {a["persona"] for a in doc["answers"]} == {"judge", "skeptic"}
    (error,) = doc["errors"]
    assert error["persona"] == "critic"
    assert error["error_kind"] == "bad_request"
    assert "max_tokens is too large" in error["message"]


def test_retries_give_up_after_the_limit(fake):
    fake.script("judge", *[Reply(status=500)] * 5)
    code, doc = oracle_json(fake, "--personas", "judge,critic", "--retries", "1", QUESTION)
    assert code == 3
    assert len(fake.requests_for("judge")) == 2
    assert doc["errors"][0]["retries"] == 1


def test_hung_call_ends_at_the_deadline_while_others_succeed(fake):
    fake.script("skeptic", Reply(hang=True))
    result = oracle(fake, "--personas", "judge,critic,skeptic", "--timeout", "1", QUESTION)
    assert result.exit_code == 3
    assert "judge says:" in result.stdout and "critic says:" in result.stdout
    assert "**skeptic**: timeout" in result.stdout
    assert "1 of 3 personas failed: skeptic (timeout)" in result.stderr
    # The abandoned stream was closed, so the server stopped working on it.
    fake.wait_for(lambda f: any(r.persona == "skeptic" for r in f.disconnects))


def test_stream_dropped_midway_is_retried(fake):
    fake.script("judge", Reply(text="one two three four five", drop_after=2), Reply(text="whole"))
    code, doc = oracle_json(fake, "--personas", "judge", QUESTION)
    assert code == 0
    assert len(fake.requests_for("judge")) == 2
    assert doc["answers"][0]["text"] == "whole"


def test_usage_is_unknown_not_zero_when_the_endpoint_omits_it(fake):
    fake.send_usage = False
    code, doc = oracle_json(fake, "--personas", "judge", QUESTION)
    assert code == 0
    answer = doc["answers"][0]
    assert answer["tokens_in"] is None and answer["tokens_out"] is None


def test_usage_is_read_when_sent(fake):
    fake.default = Reply(tokens=7)
    code, doc = oracle_json(fake, "--personas", "judge", QUESTION)
    assert code == 0
    assert doc["answers"][0]["tokens_out"] == fake.requests[0].tokens_sent
    assert doc["answers"][0]["tokens_in"] > 0


def test_rejected_stream_options_degrade_instead_of_failing(fake):
    fake.reject_stream_options = True
    code, doc = oracle_json(fake, "--personas", "judge,critic", QUESTION)
    assert code == 0
    assert len(doc["answers"]) == 2
    bodies = [r.body for r in fake.requests]
    assert any("stream_options" in b for b in bodies)
    # Once rejected, the option is not sent again for the rest of the run.
    assert "stream_options" not in bodies[-1]
    assert doc["answers"][0]["tokens_out"] is None


def test_synthesis_reads_every_answer(fake):
    fake.script("judge", Reply(text="Judge: keep Go."))
    fake.script("critic", Reply(text="Critic: the rewrite risks revenue."))
    fake.script("arbiter", Reply(text="## Recommendation\nDo not rewrite."))
    result = oracle(fake, "--personas", "judge,critic", "--synthesize", QUESTION)
    assert result.exit_code == 0, result.output
    (arbiter_request,) = fake.requests_for("arbiter")
    prompt = arbiter_request.body["messages"][-1]["content"]
    assert "Judge: keep Go." in prompt and "Critic: the rewrite risks revenue." in prompt
    assert QUESTION in prompt
    # The arbiter was asked only after both answers were complete.
    assert arbiter_request.received_at >= max(r.finished_at for r in fake.requests_for("judge"))
    assert "## Synthesis (arbiter)" in result.stdout
    assert "Do not rewrite." in result.stdout


def test_failed_synthesis_keeps_the_answers_and_exits_3(fake):
    fake.script("arbiter", Reply(status=400, error_message="context too long"))
    result = oracle(fake, "--personas", "judge,critic", "--synthesize", QUESTION)
    assert result.exit_code == 3
    assert "judge says:" in result.stdout and "critic says:" in result.stdout
    assert "Synthesis failed" in result.stdout
    assert "synthesis failed" in result.stderr


def test_all_failed_exits_1_with_one_line(fake):
    fake.default = Reply(status=400, error_message="model does not exist")
    result = oracle(fake, "--personas", "judge,critic", QUESTION)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("council: error: all 2 personas failed")
    assert "Traceback" not in result.output


def test_rejected_key_exits_2_naming_the_variable(fake, monkeypatch):
    # A key is sent (issue 27: a server sent none is told so, not to check a variable).
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-rejected-0123456789abcdef")
    fake.default = Reply(status=401, error_message="Incorrect API key provided")
    result = oracle(fake, "--personas", "judge,critic", QUESTION)
    assert result.exit_code == 2
    assert "refused the API key (401)" in result.stderr
    assert "$OPENAI_API_KEY" in result.stderr
    # A 401 is never retried.
    assert len(fake.requests) == 2


def test_json_document_has_query_answers_metrics_and_errors(fake):
    fake.script("critic", Reply(status=400))
    code, doc = oracle_json(fake, "--personas", "judge,critic", QUESTION)
    assert code == 3
    assert doc["query"] == QUESTION
    assert doc["personas"] == ["judge", "critic"]
    assert doc["status"] == "partial" and doc["exit_code"] == 3
    answer = doc["answers"][0]
    for key in ("latency", "ttft", "tokens_in", "tokens_out", "retries", "text"):
        assert key in answer
    assert doc["metrics"]["wall"] > 0
    assert doc["errors"][0]["persona"] == "critic"


def test_jsonl_streams_events_in_order(fake):
    fake.script("judge", Reply(text="alpha beta"))
    result = oracle(fake, "--personas", "judge", "--jsonl", QUESTION)
    assert result.exit_code == 0
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds.index("call_started") < kinds.index("first_token") < kinds.index("call_finished")
    deltas = "".join(e["text"] for e in events if e["type"] == "text_delta")
    assert deltas == "alpha beta"
    assert len({e["run_id"] for e in events}) == 1


def test_quiet_prints_answers_only(fake):
    fake.script("judge", Reply(text="Just the ruling."))
    result = oracle(fake, "--personas", "judge", "--quiet", QUESTION)
    assert result.exit_code == 0
    assert result.stdout == "Just the ruling.\n"


def test_query_from_stdin(fake):
    result = oracle(fake, "--personas", "judge", "-", input="What about Kotlin?\n")
    assert result.exit_code == 0
    assert fake.requests[0].body["messages"][-1]["content"] == "What about Kotlin?"


def test_context_files_are_attached(fake, tmp_path: Path):
    notes = tmp_path / "notes.md"
    notes.write_text("Billing handles 2M invoices a day.\n")
    result = oracle(fake, "--personas", "judge", "--context", str(notes), QUESTION)
    assert result.exit_code == 0
    content = fake.requests[0].body["messages"][-1]["content"]
    assert content.startswith(QUESTION)
    assert "Billing handles 2M invoices a day." in content
    assert str(notes) in content


def test_bad_context_files_are_usage_errors(fake, tmp_path: Path):
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\x00\x01\x02")
    huge = tmp_path / "huge.txt"
    huge.write_text("x" * 300_000)
    for path, message in (
        (tmp_path / "missing.txt", "no such file"),
        (binary, "looks binary"),
        (huge, "byte limit"),
    ):
        result = oracle(fake, "--personas", "judge", "--context", str(path), QUESTION)
        assert result.exit_code == 2, path
        assert message in result.stderr
    assert fake.requests == []


def test_unknown_persona_suggests_a_name(fake):
    result = oracle(fake, "--personas", "judge,skeptik", QUESTION)
    assert result.exit_code == 2
    assert "unknown persona 'skeptik'" in result.stderr
    assert "did you mean 'skeptic'" in result.stderr
    assert fake.requests == []


def test_persona_settings_reach_the_request(fake, tmp_path: Path, monkeypatch):
    home = Path(__import__("os").environ["COUNCIL_HOME"])
    (home / "personas").mkdir(parents=True)
    (home / "personas" / "terse.yaml").write_text(
        "name: terse\ndescription: Says little.\nsystem: Answer in one line.\n"
        "temperature: 0.1\nmax_tokens: 50\nmodel: tiny-model\n"
    )
    result = oracle(fake, "--personas", "terse", "--model", "big-model", QUESTION)
    assert result.exit_code == 0, result.output
    body = fake.requests[0].body
    assert body["model"] == "tiny-model"
    assert body["temperature"] == 0.1
    assert body["max_tokens"] == 50
    assert body["messages"][0]["content"] == "Answer in one line."


def test_model_flag_and_env(fake, monkeypatch):
    monkeypatch.setenv("COUNCIL_MODEL", "env-model")
    assert oracle(fake, "--personas", "judge", QUESTION).exit_code == 0
    assert oracle(fake, "--personas", "judge", "--model", "flag-model", QUESTION).exit_code == 0
    assert [r.body["model"] for r in fake.requests] == ["env-model", "flag-model"]


def test_key_is_sent_as_bearer_when_set(fake, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-test-123")
    assert oracle(fake, "--personas", "judge", "--api-key-env", "MY_KEY", QUESTION).exit_code == 0
    assert fake.requests[0].headers["authorization"] == "Bearer sk-test-123"
