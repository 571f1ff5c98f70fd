"""The engine's data model: call requests, call outcomes, verdicts, run ids, resume state.

Plain dataclasses that engines build and renderers, the recorder and the history
read. This module imports nothing of council but `errors`, so whoever reads a
result never pulls in the endpoint client (and openai) with it.
"""

from __future__ import annotations

import dataclasses
import enum
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from council.engine.stopping import StopRule
from council.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL, ErrorKind

if TYPE_CHECKING:  # made only by an arbiter's reply (engine/agreement.py)
    from council.engine.agreement import AgreementMap

__all__ = [
    "STOP_REASONS",
    "Attachment",
    "Ballot",
    "CallOutcome",
    "CallRecord",
    "CallSpec",
    "Fitted",
    "Message",
    "Mode",
    "Part",
    "Quoted",
    "RankingResult",
    "ResumeState",
    "StopReason",
    "Verdict",
    "VoteResult",
    "join_parts",
    "new_run_id",
    "status_of",
]

Message = dict[str, str]


class Mode(enum.StrEnum):
    """What a plan runs: every persona at once, or rounds to a verdict. Its value is the
    command's name, as the history, events and JSON documents hold it."""

    ORACLE = "oracle"
    DELIBERATE = "deliberate"


class StopReason(enum.StrEnum):
    """Why a deliberation stopped; its value is what JSON and the history hold."""

    CONVERGED = "converged"
    MAX_ROUNDS = "max_rounds"
    ALL_FAILED = "all_failed"
    ARBITER_FAILED = "arbiter_failed"
    INTERRUPTED = "interrupted"
    UNANIMOUS = "unanimous"
    BUDGET = "budget"
    PANEL_AGREED = "panel_agreed"


# Why a deliberation stopped, in words.
STOP_REASONS = {
    StopReason.CONVERGED: "the arbiter judged the council converged",
    StopReason.MAX_ROUNDS: "the last round was reached",
    StopReason.ALL_FAILED: "every persona failed in a round",
    StopReason.ARBITER_FAILED: "the arbiter failed",
    StopReason.INTERRUPTED: "interrupted",
    StopReason.UNANIMOUS: "every persona's ballot made the same choice",
    StopReason.BUDGET: "the budget (--budget-usd, --max-tokens-total) was reached",
    StopReason.PANEL_AGREED: "the first panel agreed (--escalate): nobody else was asked",
}


def new_run_id() -> str:
    """A short, time-ordered run id: seconds since the epoch (hex) plus randomness."""
    return f"{int(time.time()):08x}{uuid.uuid4().hex[:6]}"


def status_of(exit_code: int) -> str:
    """A run's status word for its exit code: ok, partial, interrupted or failed."""
    return {EXIT_OK: "ok", EXIT_PARTIAL: "partial", EXIT_INTERRUPTED: "interrupted"}.get(
        exit_code, "failed"
    )


@dataclass(frozen=True)
class Attachment:
    """A file attached to the question: the path as given, and its text."""

    path: str
    text: str


@dataclass(frozen=True)
class Quoted:
    """Text a prompt quotes (another member's answer, an attached file): what fitting may cut.

    `rank` is the order of cutting when a prompt does not fit its context window:
    0, the answers quoted from members, first; 1, attached files, after them.
    """

    text: str
    rank: int = 0


# A line of a user message as prompts.py builds it: fixed text, or quoted text.
Part = str | Quoted


def join_parts(parts: tuple[Part, ...]) -> str:
    """A user message from its lines, quoted ones as they are."""
    return "\n".join(p if isinstance(p, str) else p.text for p in parts)


@dataclass(frozen=True)
class Fitted:
    """How a call was shortened to fit its context window: the window, and the words cut."""

    window: int
    cut_words: int

    def to_dict(self) -> dict[str, int]:
        return {"window": self.window, "cut_words": self.cut_words}


@dataclass(frozen=True)
class CallSpec:
    """One model call: who, with which exact messages and settings.

    `temperature`/`max_tokens` None means the endpoint's default.
    """

    call_id: str
    persona: str
    messages: tuple[Message, ...]
    model: str
    temperature: float | None = None
    max_tokens: int | None = None
    round: int = 1
    role: str = "persona"  # or "arbiter"
    # e.g. {"type": "json_object"}; sent where the endpoint accepts it, dropped where not.
    response_format: dict[str, Any] | None = None
    # The user message (the last one) line by line, when it quotes what may be cut
    # to fit a context window; () when nothing in it may be cut.
    parts: tuple[Part, ...] = field(default=(), compare=False, repr=False)
    # The endpoint profile the call goes to (a persona's `endpoint:`); None: the run's own.
    endpoint: str | None = None
    # More model options for the request body (`-o KEY VALUE`: top_p, seed, stop...), as given.
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "persona": self.persona,
            "role": self.role,
            "round": self.round,
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "response_format": self.response_format,
            "endpoint": self.endpoint,
            "options": dict(self.options),
            "messages": list(self.messages),
        }


@dataclass(frozen=True, kw_only=True)
class CallOutcome:
    """How one call ended, answered, failed or cancelled, and what it cost.

    Usage:
        CallOutcome(persona="judge", text="No.", latency=1.2, ttft=0.3, tokens_in=40,
                    tokens_out=2, retries=0)
        CallOutcome(persona="critic", error_kind="timeout", message="...", retries=2)

    `error_kind` None means the call answered and `text` is its answer; otherwise
    `error_kind` says why not (an `ErrorKind`: CANCELLED for a call stopped before it
    finished) and `message` says it for a person; an interrupted call's `text` is what it
    had streamed (`partial`). Token counts None: the endpoint did not report
    them (or sent something that is not a count); for a cancelled call `tokens_out`
    counts the chunks it streamed. `latency` runs from when the call got a slot to
    its end, retries included. `reused_from` is the earlier run a resumed council
    took this answer from, without a call. `finish_reason` is the server's reason
    for ending the answer ("stop"; "length": cut at max_tokens; "content_filter")
    and None when it gave none; `reasoning` is what a reasoning model thought
    before answering, kept apart from `text` (None: it sent none). `queued` is the
    seconds it waited for a slot of the endpoint (not part of `latency` or its
    deadline); `resends` how often it was sent again after the server turned it
    away (a full endpoint, not an error: not counted in `retries`).
    """

    persona: str
    role: str = "persona"  # or "arbiter"
    text: str = ""
    error_kind: str | None = None
    message: str = ""
    latency: float = 0.0
    ttft: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    retries: int = 0
    reused_from: str | None = None
    finish_reason: str | None = None
    reasoning: str | None = None
    # Set when the prompt was shortened to fit the context window (the call answered
    # or not); None when it went out as built.
    fitted: Fitted | None = None
    queued: float = 0.0
    resends: int = 0
    # What the call cost in USD, failed attempts and a cancelled call's streamed tokens
    # included (engine/cost.py); None: unknown (no price), never 0 for unknown.
    cost_usd: float | None = None
    # True when some of the cost is estimated from text rather than counted by the server.
    cost_estimated: bool = False
    # Set when the server counted a large prompt at under a quarter of council's estimate
    # (`prompt_estimate`): it probably cut the prompt (Ollama's num_ctx) without a word.
    prompt_cut_by_server: bool = False
    prompt_estimate: int | None = None  # kept only with prompt_cut_by_server, for its warning

    @property
    def answered(self) -> bool:
        return self.error_kind is None

    @property
    def cancelled(self) -> bool:
        return self.error_kind == ErrorKind.CANCELLED

    @property
    def partial(self) -> bool:
        """Interrupted half-way: `text` is the answer as far as it had streamed."""
        return self.cancelled and bool(self.text)

    def to_dict(self) -> dict[str, Any]:
        """An answer with its metrics, or a failure with its reason (the `--json` shapes)."""
        if not self.answered:
            return {
                "persona": self.persona,
                "error_kind": self.error_kind,
                "message": self.message,
                "retries": self.retries,
                "role": self.role,
                "fitted": None if self.fitted is None else self.fitted.to_dict(),
                "queued": round(self.queued, 4),
                **self._cost(),
                # An interrupted call's answer as far as it had streamed.
                **({"text": self.text} if self.cancelled and self.text else {}),
            }
        return {
            "persona": self.persona,
            "text": self.text,
            "latency": round(self.latency, 4),
            "ttft": None if self.ttft is None else round(self.ttft, 4),
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "retries": self.retries,
            "role": self.role,
            "finish_reason": self.finish_reason,
            "reasoning": self.reasoning,
            "fitted": None if self.fitted is None else self.fitted.to_dict(),
            "queued": round(self.queued, 4),
            "resends": self.resends,
            **self._cost(),
            "prompt_cut_by_server": self.prompt_cut_by_server,
        }

    def _cost(self) -> dict[str, Any]:
        cost = None if self.cost_usd is None else round(self.cost_usd, 8)
        return {"cost_usd": cost, "cost_estimated": self.cost_estimated}


@dataclass(frozen=True)
class Verdict:
    """The arbiter's judgement of one round.

    `problem` is None for a well-formed verdict; otherwise it says what was wrong
    and the verdict counts as not converged (`synthesis` then holds the raw reply,
    so the user still sees what the arbiter wrote).
    """

    converged: bool
    confidence: float
    synthesis: str
    dissent: tuple[str, ...] = field(default_factory=tuple)
    problem: str | None = None
    agreement: AgreementMap | None = None  # the agreement map, when the arbiter gave one

    def to_dict(self) -> dict[str, Any]:
        return {
            "converged": self.converged,
            "confidence": self.confidence,
            "synthesis": self.synthesis,
            "dissent": list(self.dissent),
            "problem": self.problem,
            "agreement": self.agreement.to_dict() if self.agreement is not None else None,
        }


@dataclass(frozen=True)
class CallRecord:
    """One call on a deliberation's timeline; times are seconds from the run's start.

    `status`: answered, failed, cancelled (stopped in flight), discarded (it finished,
    but its round was speculative and the council ended before it), reused (a
    resumed run took it from an earlier one), or retried (a verdict cut at
    max_tokens, asked again with more room). Only calls of kept rounds count towards
    the answer; the tokens of the others are the wasted ones.
    """

    call_id: str
    persona: str
    role: str
    round: int
    start: float
    end: float
    speculative: bool
    status: str
    kept: bool
    tokens_out: int
    cost_usd: float | None = None  # None: unknown

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["start"], data["end"] = round(self.start, 4), round(self.end, 4)
        return data


@dataclass(frozen=True)
class ResumeState:
    """What an unfinished earlier run of the same council already had.

    `answers[round][persona]` and `verdicts[round]` come from its kept, answered
    calls. Because a round's prompts depend only on the previous round's answers,
    reusing them yields the same council; only what is missing is asked.
    """

    run_id: str
    answers: dict[int, dict[str, CallOutcome]] = field(default_factory=dict)
    verdicts: dict[int, CallOutcome] = field(default_factory=dict)


# The cancel reason of a ballot call the vote no longer needed (engine/vote.py).
VOTE_DECIDED = "vote decided"
# --weighting confidence: a ballot that states no confidence counts half, as unsure as
# a stated 0.5: neither as sure as the surest nor nothing.
UNSTATED_WEIGHT = 0.5
WEIGHTINGS = ("equal", "confidence")
# The call id of the arbiter's Universal Self-Consistency pick (engine/consistency.py).
CONSISTENCY_CALL = "consistency"


@dataclass(frozen=True)
class Ballot:
    """One persona's ballot, as read from its reply (engine/ballots.py).

    `choice` None is an abstention: the reply could not be read as a ballot
    (`raw_ok` False, `reason` says why) or named no choice. `confidence` None: not given.
    """

    persona: str
    choice: str | None
    confidence: float | None
    reason: str
    raw_ok: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def weight(self, weighting: str = "equal") -> float:
        """What this ballot counts for: 1, or (--weighting confidence) its confidence."""
        if weighting != "confidence":
            return 1.0
        return UNSTATED_WEIGHT if self.confidence is None else self.confidence


@dataclass(frozen=True)
class ConsistencyPick:
    """Universal Self-Consistency: the ballot the arbiter picked as the most consistent
    (`persona` None: its pick could not be read, and the count decided), and why.
    `asked` False: every ballot gave the same answer, and no arbiter was asked."""

    persona: str | None
    answer: str | None
    reason: str
    asked: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class VoteResult:
    """A vote's outcome: the winners (one unless tied), the tally, every ballot read.

    `stopped` are the personas whose ballot calls were cancelled because the vote was
    decided without them (`decided_early`); `tokens_saved` estimates what they would
    have cost (the mean output tokens of the finished ballots, less what they had
    already streamed; `tokens_saved_basis` says so).
    """

    winners: tuple[str, ...]
    tally: dict[str, int]
    ballots: dict[str, Ballot]
    decided_early: bool
    stopped: tuple[str, ...]
    tokens_saved: int
    tokens_saved_basis: str = "mean output tokens of the finished ballots"
    # The rule the vote stopped on, and --weighting: "confidence" gives `weighted_tally`
    # (the winners are its).
    stop_rule: StopRule | None = None
    weighting: str = "equal"
    weighted_tally: dict[str, float] | None = None
    # --vote --synthesize on free answers: the arbiter's pick, which is the answer.
    consistency: ConsistencyPick | None = None

    @property
    def weights(self) -> dict[str, float] | None:
        """What each counted ballot weighed, by persona (None in an unweighted vote)."""
        if self.weighting != "confidence":
            return None
        return {n: b.weight(self.weighting) for n, b in self.ballots.items() if b.choice}

    @property
    def winner(self) -> str | None:
        """The one winner; None when tied or when no ballot could be read."""
        return self.winners[0] if len(self.winners) == 1 else None

    @property
    def tied(self) -> bool:
        return len(self.winners) > 1

    @property
    def abstentions(self) -> tuple[str, ...]:
        return tuple(name for name, b in self.ballots.items() if b.choice is None)

    @property
    def answer(self) -> str | None:
        """The council's answer in words: the winner, "tie between A and B", or None."""
        if not self.winners:
            return None
        if self.tied:
            return "tie between " + ", ".join(self.winners[:-1]) + " and " + self.winners[-1]
        return self.winners[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "winners": list(self.winners),
            "tied": self.tied,
            "tally": dict(self.tally),
            "ballots": [b.to_dict() for b in self.ballots.values()],
            "abstentions": list(self.abstentions),
            "decided_early": self.decided_early,
            "stopped": list(self.stopped),
            "tokens_saved": self.tokens_saved,
            "tokens_saved_basis": self.tokens_saved_basis,
            "stop_rule": self.stop_rule.to_dict() if self.stop_rule is not None else None,
            "weighting": self.weighting,
            "weights": self.weights,
            "weighted_tally": dict(self.weighted_tally) if self.weighted_tally else None,
            "consistency": self.consistency.to_dict() if self.consistency else None,
        }


@dataclass(frozen=True)
class RankingResult:
    """Anonymous peer ranking: Borda points per persona, the aggregate order, each review.

    `per_reviewer[reviewer]` is the reviewer's ranking, best first, by persona name;
    `shown[reviewer]` the order its responses were labelled in (Response A, B, ...).
    `seed` makes the shuffles reproducible (engine/ranking.py).
    """

    borda: dict[str, float]
    order: tuple[str, ...]
    per_reviewer: dict[str, tuple[str, ...]]
    shown: dict[str, tuple[str, ...]] = field(default_factory=dict)
    seed: int | None = None

    def place(self, persona: str) -> int | None:
        """1 for the best-ranked answer; None for one that was not ranked."""
        return self.order.index(persona) + 1 if persona in self.order else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "order": list(self.order),
            "borda": {name: round(points, 4) for name, points in self.borda.items()},
            "per_reviewer": {name: list(r) for name, r in self.per_reviewer.items()},
            "shown": {name: list(s) for name, s in self.shown.items()},
            "seed": self.seed,
        }
