"""Hypothesis strategies for what a hostile server streams (shared by the property tests)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.fake_openai import chunk

TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),  # surrogate halves
        st.sampled_from(["\x1b", "]", "\x07", "\x9b", "\n", "\u2028"]),  # control sequences
    ),
    max_size=12,
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
JUNK_COUNT = st.one_of(JSON_SCALARS, st.just(-5), st.just(1e30), st.just("lots"))
USAGE = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries({"prompt_tokens": JUNK_COUNT, "completion_tokens": JUNK_COUNT}),
)
FINISH = st.one_of(st.sampled_from(["stop", "length", "content_filter", "", None]), JSON_SCALARS)
# Chunks as the SDK hands them over: well shaped ones (junk usage included)...
GOOD_CHUNKS = st.one_of(
    st.builds(lambda t: chunk(t), TEXT),
    st.builds(lambda t: chunk(reasoning=t), TEXT),
    st.builds(lambda u: {"choices": [], "usage": u}, USAGE),
)
# ...and wrongly shaped ones.
BAD_CHUNKS = st.one_of(
    st.builds(lambda f: {"choices": [{"delta": {}, "finish_reason": f}]}, FINISH),
    st.builds(lambda d: {"choices": [{"delta": d}]}, JSON_VALUES),
    st.builds(lambda c: {"choices": c}, JSON_VALUES),
    st.builds(lambda c: {"choices": [{"delta": {"content": c}}]}, JSON_VALUES),
    JSON_VALUES,
)
CHUNKS = st.one_of(GOOD_CHUNKS, BAD_CHUNKS)
# Raw SSE text: malformed lines, comments, unknown fields, half events.
RAW_LINES = st.one_of(
    st.sampled_from(
        [
            "data: {not json\n\n",
            "data: [\n\n",
            "data: \n\n",
            ": keep-alive\n\n",
            "event: ping\ndata: {}\n\n",
            "retry: 10\n\n",
            'data: {"choi',  # a half event, as an early end leaves it
            'data: "\\ud83d"\n\n',
            'data: {"error": {"message": "overloaded"}}\n\n',
            "data: \udcff\n\n",  # not UTF-8
        ]
    ),
    st.builds(lambda t: f"data: {t}\n\n", TEXT),
)


@st.composite
def streams(draw: st.DrawFn) -> list[Any]:
    """Well shaped chunks with up to two hostile events among them: answers are common too."""
    events: list[Any] = draw(st.lists(GOOD_CHUNKS, max_size=6))
    for hostile in draw(st.lists(st.one_of(BAD_CHUNKS, RAW_LINES), max_size=2)):
        events.insert(draw(st.integers(0, len(events))), hostile)
    return events
