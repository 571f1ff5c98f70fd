"""The event stream's wire shapes: `--jsonl` lines and `--json` outcomes, key order included."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from council.engine.events import (
    CallCancelled,
    CallFailed,
    CallFinished,
    CallStarted,
    RunStarted,
    event_to_dict,
)
from council.engine.model import CallOutcome
from council.errors import ErrorKind
from council.render.json_out import event_line

IDS = {"run_id": "run", "at": 1.0, "call_id": "r1-judge", "persona": "judge", "round": 1}
ANSWER = CallOutcome(
    persona="judge", text="Yes.", latency=0.123456, ttft=0.01, tokens_in=5, tokens_out=2
)
FAILURE = CallOutcome(
    persona="judge", error_kind="timeout", message="too slow", retries=2, latency=3.0
)
STOPPED = CallOutcome(
    persona="judge", error_kind=ErrorKind.CANCELLED, message="m", tokens_out=4, latency=1
)
CALL_KEYS = ["type", "run_id", "at", "call_id", "persona", "round", "role"]


def test_call_end_events_are_written_flat_in_a_fixed_key_order() -> None:
    finished = event_to_dict(CallFinished(**IDS, outcome=ANSWER))
    assert list(finished) == [
        *CALL_KEYS,
        *("text", "tokens_in", "tokens_out", "latency", "ttft", "retries", "reused_from"),
        *("finish_reason", "reasoning"),  # appended by issue 13
        *("queued", "resends"),  # appended by issue 14
        "cost_usd",  # appended by issue 17
        "prompt_cut_by_server",  # appended by issue 23
    ]
    assert finished["type"] == "call_finished" and finished["latency"] == 0.123456
    failed = event_to_dict(CallFailed(**IDS, outcome=FAILURE))
    assert list(failed) == [
        *CALL_KEYS,
        *("error_kind", "message", "retries", "latency"),
        "queued",  # appended by issue 14
        "cost_usd",  # appended by issue 17
    ]
    assert (failed["error_kind"], failed["retries"]) == ("timeout", 2)
    cancelled = event_to_dict(CallCancelled(**IDS, outcome=STOPPED, reason="superseded"))
    assert list(cancelled) == [*CALL_KEYS, "tokens_out", "latency", "cost_usd", "reason"]
    assert (cancelled["tokens_out"], cancelled["reason"]) == (4, "superseded")


def test_jsonl_lines_say_when_by_the_wall_clock_after_at() -> None:
    """`time` (ISO 8601, UTC) is inserted after `at`, every other key where it was."""
    started = CallStarted(**{**IDS, "at": time.monotonic() - 2.0}, model="m")
    line = event_line(started)
    assert (
        list(line)
        == [
            "type",
            "run_id",
            "at",
            "time",  # added by issue 15: when, for a person or a log, not only how long
            *list(event_to_dict(started))[3:],
        ]
    )
    when = datetime.fromisoformat(line["time"])
    assert when.tzinfo is not None and when.utcoffset() == timedelta(0)
    assert line["time"].endswith("+00:00") and "." in line["time"]  # milliseconds
    # Two seconds ago, give or take how long this test took to get here.
    assert timedelta(seconds=1) < datetime.now(UTC) - when < timedelta(seconds=30)
    run = event_line(
        RunStarted(
            run_id="r", command="oracle", query="q", personas=(), model="m", endpoint_host="h"
        )
    )
    assert list(run)[:4] == ["type", "run_id", "at", "time"]


def test_outcome_to_dict_keeps_the_answer_and_failure_shapes() -> None:
    assert ANSWER.to_dict() == {
        "persona": "judge",
        "text": "Yes.",
        "latency": 0.1235,
        "ttft": 0.01,
        "tokens_in": 5,
        "tokens_out": 2,
        "retries": 0,
        "role": "persona",
        "finish_reason": None,
        "reasoning": None,
        "fitted": None,
        "queued": 0.0,
        "resends": 0,
        "cost_usd": None,
        "cost_estimated": False,
        "prompt_cut_by_server": False,
    }
    assert list(ANSWER.to_dict()) == [
        *("persona", "text", "latency", "ttft", "tokens_in", "tokens_out", "retries", "role"),
        *("finish_reason", "reasoning"),  # appended by issue 13
        "fitted",  # appended by issue 14: how the prompt was cut to fit its context window
        *("queued", "resends"),  # appended by issue 14
        *("cost_usd", "cost_estimated"),  # appended by issue 17: None is unknown, never 0
        "prompt_cut_by_server",  # appended by issue 23: the server cut the prompt silently
    ]
    assert list(FAILURE.to_dict().items()) == [
        ("persona", "judge"),
        ("error_kind", "timeout"),
        ("message", "too slow"),
        ("retries", 2),
        ("role", "persona"),
        ("fitted", None),
        ("queued", 0.0),  # appended by issue 14
        ("cost_usd", None),  # appended by issue 17
        ("cost_estimated", False),
    ]
    assert ANSWER.answered and not FAILURE.answered and STOPPED.cancelled
