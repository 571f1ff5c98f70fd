"""What a client reads: engine events as chat completion chunks, a result as one completion.

While the members work, progress goes out as `reasoning_content` deltas ("critic
answered (2.1 s)", "round 2 started"), which chat UIs show as thinking. The council's
answer goes out as `content` deltas: an oracle's synthesis as the arbiter writes it,
a deliberation's as soon as the verdict that ends it arrives. The last chunk carries
`usage` (every call of the run, cancelled ones included) and the `council` object
that a whole completion carries too.
"""

from __future__ import annotations

import json
from typing import Any

from council.app.council import CouncilResult
from council.endpoint.redact import redact
from council.engine.events import (
    ArbiterVerdict,
    CallCancelled,
    CallFailed,
    CallFinished,
    CallRetrying,
    CallStarted,
    Event,
    RoundDiscarded,
    TextDelta,
)
from council.engine.results import DeliberationResult

__all__ = [
    "Narrator",
    "answer_text",
    "chunk",
    "completion",
    "council_object",
    "sse",
]


class Narrator:
    """Turns a run's events into ("reasoning" | "content", text) pieces, in order."""

    def __init__(self, deliberates: bool) -> None:
        self.deliberates = deliberates
        self.content_sent = False
        self._rounds_started = {1}
        self._arbiter_started = False

    def pieces(self, event: Event) -> list[tuple[str, str]]:
        if isinstance(event, TextDelta):
            if event.role == "arbiter" and not self.deliberates and event.text:
                self.content_sent = True
                return [("content", event.text)]
            return []
        if isinstance(event, CallStarted):
            return self._started(event)
        if isinstance(event, CallFinished):
            if event.role == "persona":
                line = f"{event.persona} answered ({event.outcome.latency:.1f} s)"
                if event.round > 1 or self.deliberates:
                    line += f" in round {event.round}"
                return [("reasoning", line + "\n")]
            return []
        if isinstance(event, CallFailed):
            what = "the synthesis" if event.role == "arbiter" else event.persona
            message = redact(event.outcome.message)
            return [("reasoning", f"{what} failed ({event.outcome.error_kind}): {message}\n")]
        if isinstance(event, CallRetrying):
            pieces = [("reasoning", f"{event.persona}: {event.error_kind}, retrying\n")]
            if event.role == "arbiter" and self.content_sent:
                pieces.append(("content", "\n\n"))  # what it wrote is void: a fresh start
            return pieces
        if isinstance(event, CallCancelled) and event.reason == "superseded":
            return []
        if isinstance(event, RoundDiscarded):
            return [("reasoning", f"round {event.round} not needed: stopped\n")]
        if isinstance(event, ArbiterVerdict):
            return self._verdict(event)
        return []

    def _started(self, event: CallStarted) -> list[tuple[str, str]]:
        if event.role == "arbiter":
            if self.deliberates:
                return [("reasoning", f"the arbiter is judging round {event.round}\n")]
            if self._arbiter_started:
                return []
            self._arbiter_started = True
            return [("reasoning", f"{event.persona} is writing the synthesis\n")]
        if event.round not in self._rounds_started:
            self._rounds_started.add(event.round)
            ahead = " (speculatively)" if event.speculative else ""
            return [("reasoning", f"round {event.round} started{ahead}\n")]
        return []

    def _verdict(self, event: ArbiterVerdict) -> list[tuple[str, str]]:
        state = "converged" if event.converged else "not converged"
        pieces = [
            (
                "reasoning",
                f"round {event.round} verdict: {state} (confidence {event.confidence:.2f})\n",
            )
        ]
        if event.ends_council and event.synthesis and not self.content_sent:
            self.content_sent = True
            pieces.append(("content", event.synthesis))
        return pieces


def answer_text(result: CouncilResult) -> str:
    """The council's answer: the synthesis or final verdict's, else the members' answers."""
    if result.answer.text:
        return result.answer.text
    return "\n\n".join(f"## {a.persona}\n\n{a.text.strip()}" for a in result.answers)


def council_object(result: CouncilResult, mode: str) -> dict[str, Any]:
    """The members' answers, the verdict, who failed, the cost and the run id."""
    engine = result.engine_result
    failures = engine.kept_failures if isinstance(engine, DeliberationResult) else engine.failures
    document = result.to_dict()
    return {
        "run_id": result.run_id or engine.run_id,
        "mode": mode,
        "answers": [
            {
                "persona": a.persona,
                "text": a.text,
                "tokens_in": a.tokens_in,
                "tokens_out": a.tokens_out,
                "latency": round(a.latency, 3),
            }
            for a in result.answers
        ],
        "verdict": document.get("answer"),
        "failures": [
            {"persona": f.persona, "error_kind": f.error_kind, "message": redact(f.message)}
            for f in failures
        ],
        "cost_usd": result.cost_usd,
    }


def chunk(
    completion_id: str,
    model: str,
    created: int,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        **extra,
    }


def completion(
    completion_id: str,
    model: str,
    created: int,
    text: str,
    usage: dict[str, int],
    council: dict[str, Any],
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
        "council": council,
    }


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event: `data: <json>` (or the literal `[DONE]`)."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()
