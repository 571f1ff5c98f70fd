"""What a server streams, validated at the edge: the stream reader on its own.

Shapes, token counts, surrogate halves, whole completions, transport error types;
then a property: arbitrary chunks are either read or named as wrongly shaped, and
what is read is always printable. (Through the server: test_stream_properties.py.)
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from council.endpoint.errors import classify, internal_error
from council.endpoint.stream import (
    MAX_TOKEN_COUNT,
    ShapeError,
    StreamReader,
    clean_text,
    token_count,
)
from tests.stream_strategies import CHUNKS

SURROGATE = re.compile("[\ud800-\udfff]")


# -- the reader ------------------------------------------------------------------------------


def test_text_reasoning_finish_and_usage_are_read_apart() -> None:
    reader = StreamReader()
    pieces = [
        reader.feed({"choices": [{"delta": {"role": "assistant", "reasoning_content": "Hm. "}}]}),
        reader.feed({"choices": [{"delta": {"reasoning": "Ok.", "content": "Yes"}}]}),
        reader.feed({"choices": [{"delta": {}, "finish_reason": "stop"}]}),
        reader.feed({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3.0}}),
    ]
    read = [(p.text, p.reasoning) for p in pieces]
    assert read == [("", "Hm. "), ("Yes", "Ok."), ("", ""), ("", "")]
    assert (reader.text, reader.reasoning, reader.finish_reason) == ("Yes", "Hm. Ok.", "stop")
    assert (reader.tokens_in, reader.tokens_out) == (7, 3)


def test_a_server_sending_both_reasoning_keys_is_not_read_twice() -> None:
    reader = StreamReader()
    reader.feed({"choices": [{"delta": {"reasoning_content": "a", "reasoning": "a"}}]})
    assert reader.reasoning == "a"


def test_content_as_a_list_of_text_parts_is_read() -> None:
    reader = StreamReader()
    parts = [{"type": "text", "text": "one "}, {"type": "image_url"}, {"text": "two"}]
    assert reader.feed({"choices": [{"delta": {"content": parts}}]}).text == "one two"


@pytest.mark.parametrize(
    "chunk_value",
    [
        [1, 2, 3],
        42,
        None,
        "text",
        {"choices": ["x"]},
        {"choices": "x"},
        {"choices": [{"delta": "oops"}]},
        {"choices": [{"delta": {"content": 12345}}]},
        {"choices": [{"delta": {"reasoning_content": {"a": 1}}}]},
        {"choices": [{"delta": {"content": [1]}}]},
        {"choices": [{"finish_reason": ["stop"]}]},
    ],
)
def test_wrong_shapes_are_shape_errors(chunk_value: Any) -> None:
    with pytest.raises(ShapeError):
        StreamReader().feed(chunk_value)


@pytest.mark.parametrize(
    ("value", "count"),
    [
        (12, 12),
        (0, 0),
        (12.0, 12),
        (12.5, None),
        (-5, None),
        ("12", None),
        ("lots", None),
        (True, None),
        (None, None),
        (float("nan"), None),
        (float("inf"), None),
        (MAX_TOKEN_COUNT + 1, None),
        ([3], None),
    ],
)
def test_token_counts_are_counts_or_unknown(value: Any, count: int | None) -> None:
    assert token_count(value) == count


def test_split_and_lone_surrogates_are_joined_or_replaced() -> None:
    reader = StreamReader()
    pieces = [reader.feed({"choices": [{"delta": {"content": c}}]}) for c in ("a\ud83d", "\ude00b")]
    pieces.append(reader.feed({"choices": [{"delta": {"content": "\udc00c\ud83d"}}]}))
    pieces.append(reader.end())
    assert reader.text == "a\U0001f600b\ufffdc\ufffd"
    assert "".join(p.text for p in pieces) == reader.text  # what the live view saw adds up
    assert clean_text("fine") == "fine" and clean_text("\ud83d\ude00") == "\U0001f600"


def test_a_whole_completion_is_read_and_its_shape_checked() -> None:
    reader = StreamReader()
    body = {
        "choices": [
            {"message": {"content": "Hi", "reasoning_content": "R"}, "finish_reason": None}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": -1},
    }
    piece = reader.feed_completion(body)
    assert (piece.text, piece.reasoning, reader.finish_reason) == ("Hi", "R", None)
    assert (reader.tokens_in, reader.tokens_out) == (1, None)
    for bad in ({"choices": []}, {"choices": [{"message": "Hi"}]}, [1], {"object": "x"}):
        with pytest.raises(ShapeError):
            StreamReader().feed_completion(bad)


def test_transport_errors_are_classified_by_their_types() -> None:
    import ssl

    import httpx2

    request = httpx2.Request("POST", "http://x/v1/chat/completions")
    kinds = {
        httpx2.ReadTimeout("slow", request=request): ("timeout", True),
        httpx2.RemoteProtocolError("cut", request=request): ("connection", True),
        httpx2.ConnectError("refused", request=request): ("connection", True),
        ssl.SSLError("bad record"): ("connection", True),
        httpx2.DecodingError("bad gzip", request=request): ("protocol", True),
        # Not a transport error just because it comes from the HTTP library's module.
        httpx2.StreamConsumed(): ("internal", False),
        ValueError("a bug"): ("internal", False),
    }
    for exc, (kind, retryable) in kinds.items():
        error = classify(exc, "host")
        assert (error.kind, error.retryable) == (kind, retryable), exc
    assert "ValueError" in classify(ValueError("a bug"), "host").message
    assert internal_error(KeyError("x")).message.startswith("internal error (KeyError")


# -- a property ------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(CHUNKS, max_size=10))
def test_the_reader_either_reads_a_chunk_or_names_its_shape(chunks: list[Any]) -> None:
    reader = StreamReader()
    seen = ""
    for value in chunks:
        try:
            piece = reader.feed(value)
        except ShapeError as exc:
            assert str(exc)  # says what was wrong
            continue
        seen += piece.text
    seen += reader.end().text
    assert seen == reader.text
    for text in (reader.text, reader.reasoning):
        assert not SURROGATE.search(text)
        text.encode("utf-8")  # always printable and storable
    for count in (reader.tokens_in, reader.tokens_out):
        assert count is None or (isinstance(count, int) and 0 <= count <= MAX_TOKEN_COUNT)
    assert reader.finish_reason is None or isinstance(reader.finish_reason, str)
