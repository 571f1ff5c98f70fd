"""Every call ends in one outcome, whatever the server sends (issue 13): `council oracle`.

Malformed and wrongly shaped chunks, bad usage blocks, plain JSON and HTML bodies,
finish reasons, empty answers, split surrogates, garbage Retry-After, structured
rejections of optional fields, reasoning models, and bugs inside a call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from council.app.run import run_oracle
from council.config.endpoint_settings import EndpointSettings
from council.config.personas import PersonaCatalog
from council.endpoint.client import BACKOFF_INITIAL, EndpointClient
from council.engine.calls import run_call
from council.engine.events import (
    CallEnded,
    CallStarted,
    Event,
    EventBus,
    FirstToken,
    TextDelta,
    event_to_dict,
)
from council.engine.model import CallSpec
from council.engine.plan import build_oracle_plan
from council.engine.reporter import CallReporter
from council.render import OutputMode
from council.render.live import LiveView, RoundsLiveView
from council.store.db import HistoryDB
from council.store.migrations import MIGRATIONS
from tests.fake_openai import DONE, FakeOpenAI, Reply, chunk
from tests.helpers import invoke, oracle, oracle_json, resolved_endpoint

THREE = "judge,critic,skeptic"


def calls_in_history() -> list[sqlite3.Row]:
    path = Path(os.environ["COUNCIL_HOME"]) / "history.db"
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute("SELECT * FROM calls ORDER BY persona").fetchall()
    finally:
        connection.close()


def answers_by_persona(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["persona"]: a for a in doc["answers"]}


# -- a bad chunk costs one persona, never the council ----------------------------------------

BAD_CHUNKS = {
    "not json": "data: {not json\n\n",
    "a list": [1, 2, 3],
    "a number": 42,
    "choices of text": {"choices": ["x"]},
    "content a number": {"choices": [{"index": 0, "delta": {"content": 12345}}]},
    "delta of text": {"choices": [{"index": 0, "delta": "oops"}]},
    "choices an object": {"choices": {"0": {"delta": {"content": "x"}}}},
    "finish_reason a number": {"choices": [{"delta": {"content": "x"}, "finish_reason": 7}]},
    "not utf-8": 'data: {"choices": [{"delta": {"content": "\udcff"}}]}\n\n',
}


@pytest.mark.parametrize("bad", BAD_CHUNKS.values(), ids=BAD_CHUNKS.keys())
def test_one_bad_chunk_fails_that_persona_only_and_is_retried(fake: FakeOpenAI, bad: Any) -> None:
    broken = Reply(events=[chunk("Half an "), bad, chunk("answer", finish="stop"), DONE])
    fake.script("critic", broken, broken)
    code, doc = oracle_json(fake, "--personas", THREE, "--retries", "1", "q")
    assert code == 3
    assert sorted(answers_by_persona(doc)) == ["judge", "skeptic"]
    (error,) = doc["errors"]
    assert (error["persona"], error["error_kind"], error["retries"]) == ("critic", "protocol", 1)
    assert "broke the chat completion format" in error["message"]
    assert len(fake.requests_for("critic")) == 2  # a protocol error is worth a retry
    recorded = {c["persona"]: (c["status"], c["error_kind"]) for c in calls_in_history()}
    assert recorded == {
        "critic": ("failed", "protocol"),
        "judge": ("answered", None),
        "skeptic": ("answered", None),
    }


def test_a_bad_chunk_then_a_good_retry_is_an_answer(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(events=["data: {not json\n\n", DONE]), Reply(text="Fine now."))
    code, doc = oracle_json(fake, "--personas", "judge", "q")
    assert code == 0
    assert doc["answers"][0]["text"] == "Fine now." and doc["answers"][0]["retries"] == 1


def test_a_bad_chunk_in_markdown_output_still_prints_the_other_answers(fake: FakeOpenAI) -> None:
    fake.script("critic", *[Reply(events=[[1, 2, 3], DONE])] * 2)
    result = oracle(fake, "--personas", THREE, "--retries", "1", "q")
    assert result.exit_code == 3
    assert "judge says:" in result.stdout and "skeptic says:" in result.stdout
    assert "**critic**: protocol after 1 retry" in result.stdout
    assert "1 of 3 personas failed: critic (protocol)" in result.stderr
    assert "unexpected" not in result.stderr


# -- usage: unknown, never stored as sent ---------------------------------------------------

BAD_USAGE = [
    {"prompt_tokens": "lots", "completion_tokens": -5},
    {"prompt_tokens": 12.5, "completion_tokens": None},
    {"prompt_tokens": True, "completion_tokens": 1e30},
    {"prompt_tokens": "12", "completion_tokens": float("nan")},
    "junk",
    [1, 2],
]


@pytest.mark.parametrize("usage", BAD_USAGE, ids=[str(u)[:30] for u in BAD_USAGE])
def test_bad_usage_is_unknown_and_the_answer_stands(fake: FakeOpenAI, usage: Any) -> None:
    fake.script("judge", Reply(text="Counted.", usage_body=usage))
    code, doc = oracle_json(fake, "--personas", "judge,critic", "q")
    assert code == 0
    judge = answers_by_persona(doc)["judge"]
    assert judge["text"] == "Counted."
    assert (judge["tokens_in"], judge["tokens_out"]) == (None, None)
    rows = {c["persona"]: c for c in calls_in_history()}
    assert (rows["judge"]["tokens_in"], rows["judge"]["tokens_out"]) == (None, None)
    assert rows["critic"]["tokens_out"] > 0
    stats = invoke("stats", "--json")
    assert stats.exit_code == 0, stats.output
    groups = {g["name"]: g for g in json.loads(stats.stdout)["groups"]}
    assert groups["judge"]["calls"] == 1
    assert invoke("stats").exit_code == 0


# -- odd but harmless servers ----------------------------------------------------------------


def test_a_plain_json_completion_to_a_streamed_request_is_one_answer(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(plain_json=True, text="Whole, at once.", reasoning="Quick."))
    fake.script("critic", Reply(plain_json=True, text="No reason given.", finish_reason=None))
    code, doc = oracle_json(fake, "--personas", "judge,critic", "q")
    assert code == 0
    judge, critic = answers_by_persona(doc)["judge"], answers_by_persona(doc)["critic"]
    assert (judge["text"], judge["finish_reason"], judge["reasoning"]) == (
        "Whole, at once.",
        "stop",
        "Quick.",
    )
    assert judge["tokens_out"] > 0 and judge["ttft"] is not None
    assert (critic["text"], critic["finish_reason"]) == ("No reason given.", None)
    assert len(fake.requests) == 2  # read the first time: no retry


def test_an_html_body_is_one_clear_line_and_not_retried(fake: FakeOpenAI) -> None:
    fake.default = Reply(body="<html><body>Log in to the hotel wifi</body></html>")
    result = oracle(fake, "--personas", "judge", "--retries", "2", "q")
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert "did not answer like an OpenAI-compatible API: text/html" in line
    assert len(fake.requests) == 1  # a portal's page will not change on a retry
    assert result.stdout == ""
    assert "a proxy or login page may be answering instead of the API" in line
    assert "raise --timeout" not in line  # more time cannot help


def test_an_html_body_for_one_persona_costs_only_that_persona(fake: FakeOpenAI) -> None:
    fake.script("critic", Reply(body="<!doctype html><title>502</title>"))
    code, doc = oracle_json(fake, "--personas", THREE, "q")
    assert code == 3
    (error,) = doc["errors"]
    assert (error["persona"], error["error_kind"]) == ("critic", "not_api")
    assert len(fake.requests_for("critic")) == 1


# -- finish reasons: cut answers are marked, empty ones are failures -------------------------


def test_cut_answers_carry_their_finish_reason_everywhere(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(text="Cut mid-", finish_reason="length"))
    fake.script("critic", Reply(text="Partly", finish_reason="content_filter"))
    fake.script("skeptic", Reply(text="Whole."))
    code, doc = oracle_json(fake, "--personas", THREE, "q")
    assert code == 0  # a cut answer is an answer, marked as cut
    reasons = {a["persona"]: a["finish_reason"] for a in doc["answers"]}
    assert reasons == {"judge": "length", "critic": "content_filter", "skeptic": "stop"}
    assert {c["persona"]: c["finish_reason"] for c in calls_in_history()} == reasons
    for _ in range(3):
        fake.script("judge", Reply(text="Cut mid-", finish_reason="length"))
        fake.script("critic", Reply(text="Partly", finish_reason="content_filter"))
    markdown = oracle(fake, "--personas", "judge,critic", "q").stdout
    assert markdown.count("cut at max_tokens") == 1
    assert markdown.count("stopped by content filter") == 1


def test_the_rich_panel_subtitle_says_an_answer_was_cut(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(text="Cut mid-", finish_reason="length"))
    catalog = PersonaCatalog.discover()
    plan = build_oracle_plan(
        query="q", personas=catalog.resolve(["judge"]), endpoint=resolved_endpoint(fake.base_url)
    )
    out = io.StringIO()
    assert run_oracle(plan, OutputMode.RICH, stdout=out, show_live=False) == 0
    assert "cut at max_tokens" in out.getvalue()


def test_an_empty_answer_is_a_failure_of_its_own_kind(fake: FakeOpenAI) -> None:
    fake.script("judge", *[Reply(text="")] * 2)  # only a finish_reason: stop
    fake.script("critic", Reply(text="", reasoning="Thinking...", finish_reason="length"))
    code, doc = oracle_json(fake, "--personas", THREE, "--retries", "1", "q")
    assert code == 3
    errors = {e["persona"]: e for e in doc["errors"]}
    assert errors["judge"]["error_kind"] == "empty" and "empty answer" in errors["judge"]["message"]
    assert len(fake.requests_for("judge")) == 2  # sampling again may help...
    assert errors["critic"]["error_kind"] == "empty"
    assert "max_tokens before any answer" in errors["critic"]["message"]
    assert len(fake.requests_for("critic")) == 1  # ...the same limit again would not
    assert [a["persona"] for a in doc["answers"]] == ["skeptic"]


def test_a_stream_that_ends_without_a_finish_reason_is_truncated(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(text="No end", finish_reason=None), Reply(text="Ended."))
    code, doc = oracle_json(fake, "--personas", "judge", "q")
    assert code == 0
    assert doc["answers"][0]["text"] == "Ended." and doc["answers"][0]["retries"] == 1


# -- text that cannot be encoded never reaches the output ------------------------------------


def test_split_surrogate_pairs_are_joined_and_lone_halves_replaced(fake: FakeOpenAI) -> None:
    events = [
        chunk("smile "),
        chunk("\ud83d"),  # an emoji's UTF-16 halves in two chunks, as JSON escapes allow
        chunk("\ude00"),
        chunk(" lone \udc00 end "),
        chunk("\ud83d", finish="stop"),  # a high half with nothing after it
        DONE,
    ]
    fake.script("judge", Reply(events=events), Reply(events=events))
    expected = "smile \U0001f600 lone \ufffd end \ufffd"
    code, doc = oracle_json(fake, "--personas", "judge", "q")
    assert code == 0 and doc["answers"][0]["text"] == expected
    assert calls_in_history()[0]["text"] == expected
    result = oracle(fake, "--personas", "judge", "q")
    assert result.exit_code == 0 and expected in result.stdout


# -- retry details -----------------------------------------------------------------------------


def retry_events(fake: FakeOpenAI, *args: str) -> tuple[int, list[dict[str, Any]]]:
    result = oracle(fake, "--jsonl", *args)
    events = [json.loads(line) for line in result.stdout.splitlines()]
    return result.exit_code, [e for e in events if e["type"] == "call_retrying"]


@pytest.mark.parametrize("garbage", ["nan", "inf", "-3", "1e999", "soon"])
def test_a_garbage_retry_after_means_the_normal_backoff(fake: FakeOpenAI, garbage: str) -> None:
    fake.script("judge", Reply(status=429, retry_after=garbage), Reply(text="Later."))
    code, retries = retry_events(fake, "--personas", "judge", "q")
    assert code == 0
    (retry,) = retries
    # The first backoff window, full jitter: neither "at once" nor "never".
    assert retry["error_kind"] == "rate_limited" and 0 < retry["wait"] <= BACKOFF_INITIAL
    assert [r.status for r in fake.requests_for("judge")] == [429, 200]


def test_a_field_named_in_param_is_dropped_whatever_the_message_says(fake: FakeOpenAI) -> None:
    rejection = Reply(status=400, error_message="Not on this model.", error_param="stream_options")
    fake.script("judge", rejection, Reply(text="Without it."))
    code, doc = oracle_json(fake, "--personas", "judge", "q")
    assert code == 0 and doc["answers"][0]["text"] == "Without it."
    first, second = fake.requests_for("judge")
    assert "stream_options" in first.body and "stream_options" not in second.body
    assert doc["answers"][0]["tokens_out"] is None  # no usage without stream_options


def test_a_message_that_mentions_a_field_drops_nothing(fake: FakeOpenAI) -> None:
    context_error = Reply(
        status=400,
        error_message="This request (messages, stream_options) exceeds the context window.",
        error_param="messages",
        error_code="context_length_exceeded",
    )
    fake.script("judge", context_error, Reply(text="Should not be asked."))
    code, doc = oracle_json(fake, "--personas", "judge,critic", "q")
    assert code == 3
    assert doc["errors"][0]["error_kind"] == "context_length"  # issue 14: its own kind
    assert len(fake.requests_for("judge")) == 1
    assert all("stream_options" in r.body for r in fake.requests)


def test_a_pydantic_422_naming_the_field_drops_it(fake: FakeOpenAI) -> None:
    detail = [{"loc": ["body", "stream_options"], "msg": "Extra inputs", "type": "extra_forbidden"}]
    fake.script("judge", Reply(status=422, error_body={"detail": detail}), Reply(text="Ok."))
    code, doc = oracle_json(fake, "--personas", "judge", "q")
    assert code == 0 and doc["answers"][0]["text"] == "Ok."
    assert "stream_options" not in fake.requests_for("judge")[1].body


def test_an_unknown_field_code_without_a_name_is_asked_once_without(fake: FakeOpenAI) -> None:
    unnamed = Reply(
        status=400,
        error_message="Unrecognized request argument supplied",
        error_code="unknown_parameter",
    )
    fake.script("judge", unnamed, Reply(text="Ok."))
    code, doc = oracle_json(fake, "--personas", "judge", "q")
    assert code == 0 and doc["answers"][0]["text"] == "Ok."
    assert "stream_options" not in fake.requests_for("judge")[1].body


# -- reasoning models ------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_reasoning_is_kept_apart_from_the_answer(fake: FakeOpenAI, key: str) -> None:
    fake.script("judge", Reply(reasoning="Weigh cost, then risk.", reasoning_key=key, text="No."))
    code, doc = oracle_json(fake, "--personas", "judge,critic", "q")
    assert code == 0
    judge, critic = answers_by_persona(doc)["judge"], answers_by_persona(doc)["critic"]
    assert (judge["text"], judge["reasoning"]) == ("No.", "Weigh cost, then risk.")
    assert critic["reasoning"] is None
    stored = {c["persona"]: (c["text"], c["reasoning"]) for c in calls_in_history()}
    assert stored["judge"] == ("No.", "Weigh cost, then risk.")
    fake.script("judge", Reply(reasoning="Weigh cost, then risk.", reasoning_key=key, text="No."))
    result = oracle(fake, "--personas", "judge", "--jsonl", "q")
    events = [json.loads(line) for line in result.stdout.splitlines()]
    thoughts = "".join(e["text"] for e in events if e["type"] == "reasoning_delta")
    words = "".join(e["text"] for e in events if e["type"] == "text_delta")
    assert (thoughts, words) == ("Weigh cost, then risk.", "No.")
    (done,) = [e for e in events if e["type"] == "call_finished"]
    # queued and resends were appended after them by issue 14, cost_usd by issue 17,
    # prompt_cut_by_server by issue 23
    assert list(done)[-7:-4] == ["reused_from", "finish_reason", "reasoning"]
    assert (done["finish_reason"], done["reasoning"]) == ("stop", "Weigh cost, then risk.")


def test_reasoning_is_not_printed_as_the_answer_nor_stored_without_texts(
    fake: FakeOpenAI,
) -> None:
    fake.script("judge", Reply(reasoning="secret musing", text="Plain answer."))
    result = oracle(fake, "--personas", "judge", "--no-store-text", "q")
    assert result.exit_code == 0
    assert "Plain answer." in result.stdout and "secret musing" not in result.stdout
    (row,) = calls_in_history()
    assert (row["text"], row["reasoning"], row["finish_reason"]) == (None, None, "stop")


def live_text(view: LiveView | RoundsLiveView) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=100, color_system=None).print(view.render())
    return buffer.getvalue()


def test_the_live_views_show_thinking_while_only_reasoning_arrives() -> None:
    from council.engine.events import ReasoningDelta  # (new in issue 13)

    ids = {"run_id": "run", "call_id": "r1-judge", "persona": "judge"}
    panels = LiveView(Console(file=io.StringIO(), width=100), ["judge"])
    rows = RoundsLiveView(Console(file=io.StringIO(), width=100), rounds=2)
    for view in (panels, rows):
        view.handle(CallStarted(**ids, model="m"))
        view.handle(FirstToken(**ids, ttft=0.2))
        view.handle(ReasoningDelta(**ids, text="weighing the options"))
        shown = live_text(view)
        assert "thinking" in shown and "streaming" not in shown
        assert "weighing" not in shown  # reasoning is never shown as the answer
        view.handle(TextDelta(**ids, text="Yes, ship it."))
        view.handle(ReasoningDelta(**ids, text="more thoughts"))
        shown = live_text(view)
        assert "streaming" in shown and "Yes, ship it." in shown and "thoughts" not in shown


@dataclasses.dataclass(frozen=True)
class QuickFirstToken(EndpointSettings):
    """Settings whose first-token limit is short (the real one is 60 s, or --timeout)."""

    @property
    def first_token_timeout(self) -> float:
        return 0.5


def quick_first_token(fake: FakeOpenAI) -> EndpointSettings:
    settings = resolved_endpoint(fake.base_url)
    values = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    return QuickFirstToken(**{**values, "retries": 0, "timeout": 20.0})


def run_calls(settings: EndpointSettings, *specs: CallSpec) -> tuple[list[Any], list[Event]]:
    """Run calls at once through the real client and engine; their reporters and events."""
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    reporters = [CallReporter("run", bus, spec) for spec in specs]

    async def main() -> None:
        async with (
            EndpointClient(settings, max_concurrency=4) as client,
            asyncio.TaskGroup() as group,
        ):
            for reporter in reporters:
                group.create_task(run_call(client, reporter))

    asyncio.run(main())
    return reporters, events


def spec(persona: str, **fields: Any) -> CallSpec:
    messages = fields.pop("messages", ({"role": "user", "content": "q"},))
    return CallSpec(
        call_id=f"r1-{persona}", persona=persona, messages=messages, model="m", **fields
    )


def test_reasoning_longer_than_the_first_token_limit_is_answered(fake: FakeOpenAI) -> None:
    settings = quick_first_token(fake)
    # Twelve reasoning chunks 0.1 s apart: 1.2 s of thinking against a 0.5 s limit,
    # but never 0.5 s without a byte.
    thinking = " ".join(f"step{i}" for i in range(12))
    fake.script("judge", Reply(reasoning=thinking, token_delay=0.1, text="Answer."))
    (reporter,), events = run_calls(settings, spec("judge"))
    outcome = reporter.outcome
    assert outcome.answered, outcome.message
    assert (outcome.text, outcome.reasoning) == ("Answer.", thinking)
    assert len(fake.requests_for("judge")) == 1
    kinds = [e.kind for e in events]
    assert kinds.index("first_token") < kinds.index("reasoning_delta") < kinds.index("text_delta")


# -- a bug inside a call is that call's outcome ------------------------------------------------


def test_a_bug_inside_one_call_is_its_internal_failure_and_the_others_go_on(
    fake: FakeOpenAI,
) -> None:
    settings = resolved_endpoint(fake.base_url)
    # A message the SDK cannot serialise: a TypeError deep inside the attempt.
    broken = spec("critic", messages=({"role": "user", "content": object()},))
    (good, bad), events = run_calls(settings, spec("judge"), broken)
    assert good.outcome.answered
    assert bad.outcome.error_kind == "internal"
    assert "TypeError" in bad.outcome.message
    ended = [e for e in events if isinstance(e, CallEnded)]
    assert sorted(e.persona for e in ended) == ["critic", "judge"]  # exactly one each
    assert event_to_dict(ended[0])["type"] in ("call_finished", "call_failed")
    assert not any(r.persona == "critic" for r in fake.requests)  # it never got that far


def test_console_output_is_untouched_by_a_failed_call(fake: FakeOpenAI) -> None:
    # The rich view, too, prints the answers that finished beside a broken stream.
    fake.script("critic", Reply(events=[{"choices": ["x"]}, DONE]))
    catalog = PersonaCatalog.discover()
    endpoint = dataclasses.replace(resolved_endpoint(fake.base_url), retries=0)
    plan = build_oracle_plan(
        query="q", personas=catalog.resolve(["judge", "critic"]), endpoint=endpoint
    )
    out = io.StringIO()
    assert run_oracle(plan, OutputMode.RICH, stdout=out, show_live=False) == 3
    text = out.getvalue()
    assert "judge says:" in text and "protocol" in text
    Console(file=io.StringIO()).print(text)  # printable as it is


# -- the history's new columns ---------------------------------------------------------------


def test_a_file_of_the_second_schema_gains_finish_reason_and_reasoning(fake: FakeOpenAI) -> None:
    path = Path(os.environ["COUNCIL_HOME"]) / "history.db"
    old = HistoryDB.open(path, migrations=MIGRATIONS[:2])
    old.write(
        "INSERT INTO runs (id, started_at, command, query, plan, status, exit_code, wall) "
        "VALUES ('oldrun', 0, 'oracle', 'from long ago', '{}', 'ok', 0, 1.5)"
    )
    old.write(
        "INSERT INTO calls (run_id, call_id, round, persona, role, status, text) "
        "VALUES ('oldrun', 'r1-judge', 1, 'judge', 'persona', 'answered', 'Old.')"
    )
    assert old.applied_migrations() == ["m001_runs_and_calls", "m002_outputs_metrics_and_indexes"]
    old.close()
    fake.script("judge", Reply(reasoning="Hm.", text="New.", finish_reason="length"))
    assert oracle(fake, "--personas", "judge", "new").exit_code == 0
    current = HistoryDB.open(path)
    assert "m003_call_finish_and_reasoning" in current.applied_migrations()  # and later ones
    current.close()
    stored = {(c["run_id"] == "oldrun", c["text"]): c for c in calls_in_history()}
    old_row, new_row = stored[(True, "Old.")], stored[(False, "New.")]
    assert (old_row["finish_reason"], old_row["reasoning"]) == (None, None)
    assert (new_row["finish_reason"], new_row["reasoning"]) == ("length", "Hm.")
    assert invoke("stats").exit_code == 0
    assert invoke("show", "oldrun").exit_code == 0


def test_endpoints_check_passes_when_a_reasoning_model_thinks_past_its_16_tokens(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = Path(os.environ["COUNCIL_HOME"]) / "config.yaml"
    config.write_text(f"endpoints:\n  - name: thinker\n    base_url: {fake.base_url}\n")
    fake.script("endpoint-check", Reply(reasoning="Let me see...", text="", finish_reason="length"))
    result = invoke("endpoints", "check", "thinker")
    assert result.exit_code == 0, result.output
    assert "answered ''" in result.stdout
