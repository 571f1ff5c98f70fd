"""Fitting a call into its model's context window: shorten what it quotes, never what it asks.

A prompt's size is estimated conservatively: three characters a token (real
tokenizers average about four on English) plus framing per message, scaled up by
what a server once counted for a prompt we had estimated (`correct`, kept in what
was learned about the endpoint and model: `council.endpoint.learned.Learned`). The answer
needs room too: `max_tokens`, or when unset min(512, window // 4). A large prompt
the server counts at a fraction of its estimate was cut by the server (`cut_by_server`):
its count is then learned as the window, so later calls are cut here, visibly.

When a call would not fit, the quoted text is cut from its end, in rank order
(other members' answers first, attached files after them), each quote of a rank
cut down to one common length so that no member is silenced while another is
quoted whole; every cut is marked where the model reads it. The question and the
system prompt are never cut: when even they do not fit, `DoesNotFit` says so with
both sizes. A call that fits goes out exactly as built.

    fitted_call, fitted = fit(call, window=4096)   # fitted is None: unchanged
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from typing import Protocol

from council.engine.model import CallSpec, Fitted, Message, Part, Quoted, join_parts
from council.errors import UsageError

__all__ = [
    "WINDOW_FROM_CUT",
    "DoesNotFit",
    "answer_room",
    "correct",
    "cut_by_server",
    "estimate",
    "fit",
    "too_long_error",
]

CHARS_PER_TOKEN = 3
FRAMING_TOKENS = 8  # per message: role, separators, the chat template's markers
# A prompt estimated at this many tokens or more, counted by its server at under a
# quarter of that, was cut by the server (Ollama's num_ctx does so without a word).
# Both conditions, and a count below none the server gave before: a prompt cache also
# lowers some servers' counts, but never of a first large prompt to a fraction.
CUT_PROMPT_MIN = 1024
# Where a window came from when a server's count showed that it cut a prompt: trusted
# like a context error's numbers (a server's own description, say Ollama's trained
# context, is what it does not keep to).
WINDOW_FROM_CUT = "cut prompt"
CUT_PROMPT_RATIO = 4
_WORD = re.compile(r"\S+")


class Learned(Protocol):
    """What was learned of an endpoint's tokenizer for a model: `council.endpoint.learned`'s
    record (named by shape, so that renderers reading `cost.py` never reach the endpoint)."""

    token_ratio: float  # its count over our estimate, at most (never below 1)
    counted: bool  # it counted a prompt we had estimated
    largest_count: int  # the largest prompt it counted


class DoesNotFit(Exception):
    """Even with every quote cut, the prompt and the answer's room exceed the window."""

    def __init__(self, needed: int, window: int) -> None:
        super().__init__(f"needs about {needed:,} tokens; the window holds {window:,}")
        self.needed = needed
        self.window = window


def too_long_error(error: DoesNotFit) -> UsageError:
    """The one line a user sees when the question itself does not fit (exit 2)."""
    return UsageError(
        f"the question and system prompt need about {error.needed:,} tokens with room for "
        f"the answer, but the model's context window is {error.window:,} tokens",
        "shorten the question or --context, or use a model with a larger window "
        "(context_window: in the endpoint's profile)",
    )


def correct(learned: Learned, messages: Sequence[Message], counted: int) -> None:
    """Learn from a server's own count of a prompt's tokens how far off the estimate was
    (kept in what was learned about the endpoint and model: `Learned.token_ratio`)."""
    estimated = raw_estimate(messages)
    learned.counted = True
    learned.largest_count = max(learned.largest_count, counted)
    if estimated > 0 and counted > estimated:
        learned.token_ratio = max(learned.token_ratio, counted / estimated)


def cut_by_server(messages: Sequence[Message], learned: Learned, counted: int) -> bool:
    """Did the server cut this prompt before counting it? A large prompt counted at under
    a quarter of its estimate, and below no count the server gave before (call this
    before `correct` learns the count)."""
    estimated = estimate(messages, learned)
    if estimated < CUT_PROMPT_MIN or counted * CUT_PROMPT_RATIO >= estimated:
        return False
    return counted >= learned.largest_count


def raw_estimate(messages: Sequence[Message]) -> int:
    return sum(
        math.ceil(len(m.get("content", "")) / CHARS_PER_TOKEN) + FRAMING_TOKENS for m in messages
    )


def estimate(messages: Sequence[Message], learned: Learned | None = None) -> int:
    """Tokens the messages take, at most this many as far as the endpoint's server told us
    (`learned`: what was learned about the endpoint and model; None: nothing)."""
    factor = learned.token_ratio if learned is not None else 1.0
    return math.ceil(raw_estimate(messages) * factor)


def answer_room(call: CallSpec, window: int) -> int:
    return call.max_tokens if call.max_tokens is not None else min(512, window // 4)


def _cut(text: str, keep: int, window: int) -> tuple[str, int]:
    """`text` down to its first `keep` words, with a marker; (text, words cut)."""
    words = list(_WORD.finditer(text))
    if len(words) <= keep:
        return text, 0
    cut = len(words) - keep
    marker = f"[… {cut:,} words cut to fit a {window:,}-token context]"
    head = text[: words[keep - 1].end()] + " " if keep > 0 else ""
    return head + marker, cut


def _with_limits(
    call: CallSpec, limits: dict[int, int], window: int
) -> tuple[tuple[Message, ...], int]:
    """The call's messages with each quote of rank r cut to limits[r] words; words cut."""
    parts: list[Part] = []
    total = 0
    for part in call.parts:
        if isinstance(part, Quoted) and part.rank in limits:
            text, cut = _cut(part.text, limits[part.rank], window)
            total += cut
            parts.append(text)
        else:
            parts.append(part if isinstance(part, str) else part.text)
    user = {**call.messages[-1], "content": join_parts(tuple(parts))}
    return (*call.messages[:-1], user), total


def fit(
    call: CallSpec, window: int, learned: Learned | None = None
) -> tuple[CallSpec, Fitted | None]:
    """The call as it fits `window` (itself when it does), and how it was cut (None: not);
    `learned`: what was learned about its endpoint and model (its tokenizer)."""
    budget = window - answer_room(call, window)
    if estimate(call.messages, learned) <= budget:
        return call, None
    ranks = sorted({p.rank for p in call.parts if isinstance(p, Quoted)})
    limits: dict[int, int] = {}
    for rank in ranks:
        longest = max(
            len(_WORD.findall(p.text))
            for p in call.parts
            if isinstance(p, Quoted) and p.rank == rank
        )
        # The longest common length that fits, by bisection over whole words.
        low, high = 0, longest
        while low < high:
            middle = (low + high + 1) // 2
            messages, _ = _with_limits(call, {**limits, rank: middle}, window)
            if estimate(messages, learned) <= budget:
                low = middle
            else:
                high = middle - 1
        limits[rank] = low
        messages, cut_words = _with_limits(call, limits, window)
        if estimate(messages, learned) <= budget:
            fitted = dataclasses.replace(call, messages=messages)
            return fitted, Fitted(window=window, cut_words=cut_words)
    messages, _ = _with_limits(call, limits, window)
    needed = estimate(messages, learned) + answer_room(call, window)
    raise DoesNotFit(needed, window)
