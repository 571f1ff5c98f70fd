"""Reading server-sent events from a stream's bytes (`endpoint/sse.py`), however they are cut.

A server's bytes reach the client in reads of any size: a line, an event, a CRLF,
even a UTF-8 character can be cut in two. Whatever the cuts, the events read are
the same; what the SDK's stream class raised (an error event, JSON that is not
JSON, text that is not UTF-8) is raised the same way.
"""

from __future__ import annotations

import itertools
import json

import httpx2
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

from council.endpoint.sse import EventReader


def read(*parts: bytes) -> tuple[list[object], bool]:
    """Every event's data from `parts`, fed as separate reads; and whether [DONE] came."""
    events = EventReader(httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions"))
    found: list[object] = []
    for part in parts:
        found.extend(events.feed(part))
    return found, events.done


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(max(0, c), len(data)) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


CHUNKS = [{"choices": [{"delta": {"content": f"w{i} é 😀"}}]} for i in range(3)]


def stream_of(chunks: list[dict[str, object]], end: str) -> bytes:
    body = "".join(f"data: {json.dumps(c, ensure_ascii=False)}{end}{end}" for c in chunks)
    return (body + f"data: [DONE]{end}{end}").encode()


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_events_are_read_whatever_ends_the_lines(end: str) -> None:
    assert read(stream_of(CHUNKS, end)) == (CHUNKS, True)


@given(
    end=st.sampled_from(["\n", "\r\n", "\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_any_cut_of_the_bytes_reads_the_same_events(end: str, cuts: list[int]) -> None:
    assert read(*cut(stream_of(CHUNKS, end), cuts)) == (CHUNKS, True)


def test_a_crlf_cut_between_two_reads_is_one_line_end() -> None:
    assert read(b'data: {"a": 1}\r', b"\n\r", b"\n") == ([{"a": 1}], False)


def test_data_lines_join_comments_and_other_fields_are_skipped() -> None:
    body = b': keep-alive\n\nid: 7\nretry: 100\nfoo: bar\ndata: {"a":\ndata:  2}\n\n'
    assert read(body) == ([{"a": 2}], False)


def test_nothing_after_done_is_read() -> None:
    found, done = read(b"data: [DONE]\n\ndata: {not json\n\n", b"data: {}\n\n")
    assert (found, done) == ([], True)


def test_an_event_not_ended_by_a_blank_line_is_not_read() -> None:
    assert read(b'data: {"a": 1}\n') == ([], False)


def test_an_event_that_is_not_json_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        read(b"data: {not json\n\n")


def test_bytes_that_are_not_utf8_are_a_value_error() -> None:
    with pytest.raises(ValueError):
        read(b'data: {"a": "\xff"}\n\n')


def test_an_event_named_but_empty_is_not_json() -> None:
    with pytest.raises(ValueError):
        read(b"event: ping\n\n")


@pytest.mark.parametrize(
    ("error", "message"),
    [
        ({"message": "model overloaded", "code": 503}, "model overloaded"),
        ("boom", "An error occurred during streaming"),
    ],
)
def test_an_error_event_raises_as_the_sdk_does(error: object, message: str) -> None:
    data = json.dumps({"error": error}).encode()
    with pytest.raises(openai.APIError) as raised:
        read(b"data: " + data + b"\n\n")
    assert raised.value.message == message and raised.value.body == error


def test_the_assistants_thread_events_are_no_chunks() -> None:
    body = b'event: thread.run.created\ndata: {"id": "r"}\n\ndata: {"a": 1}\n\n'
    assert read(body) == ([{"a": 1}], False)
