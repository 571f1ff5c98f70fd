"""What a run will do, decided before anything runs: personas, exact calls, rounds, limits.

Building a plan does no I/O, so `--dry-run` is simply the plan printed, and the
engines only execute what the plan says. An oracle plan holds its calls; a
deliberation plan builds each round's calls from the previous round's answers.
The plans decide which calls a run makes and with which ids; prompts.py holds
what the calls say.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from council.config.defaults import DEFAULT_MAX_CONCURRENCY_CAP, DEFAULT_ROUNDS, DEFAULT_THRESHOLD
from council.config.endpoint_settings import EndpointSettings
from council.config.personas import Persona
from council.engine.model import (
    CONSISTENCY_CALL,
    Attachment,
    Ballot,
    CallSpec,
    Message,
    Mode,
    Part,
)
from council.engine.prompts import (
    ESCALATION_POSTSCRIPT,
    VERDICT_RESPONSE_FORMAT,
    ballot_parts,
    ballot_postscript,
    ballot_response_format,
    build_call,
    question_parts,
    ranked_note,
    ranking_parts,
    ranking_response_format,
    revision_parts,
    synthesis_parts,
    user_message,
    verdict_parts,
)
from council.engine.stopping import StopRule, stop_rule

if TYPE_CHECKING:
    from council.engine.escalation import Escalation

__all__ = [
    "DeliberationPlan",
    "OraclePlan",
    "build_deliberation_plan",
    "build_oracle_plan",
    "estimate_tokens",
    "estimated_input_tokens",
    "max_concurrency_for",
]


def estimate_tokens(messages: tuple[Message, ...] | list[Message]) -> int:
    """A rough input-token count (about four characters a token, plus per-message framing)."""
    return sum(len(m.get("content", "")) // 4 + 4 for m in messages)


def estimated_input_tokens(calls: Sequence[CallSpec]) -> int:
    return sum(estimate_tokens(c.messages) for c in calls)


def max_concurrency_for(endpoint: EndpointSettings, calls_at_once: int) -> int:
    """The ceiling of the endpoint's limiter: flag > profile `max_concurrency` > the default.

    Not capped by `calls_at_once`: the limiter is shared by every call to the
    endpoint (speculative rounds included), and it learns the real capacity.
    """
    del calls_at_once  # kept for callers; the ceiling no longer depends on it
    return max(1, endpoint.max_concurrency or DEFAULT_MAX_CONCURRENCY_CAP)


def _call(
    persona: Persona,
    content: str | Sequence[Part],
    call_id: str,
    endpoint: EndpointSettings,
    endpoints: Mapping[str, EndpointSettings],
    options: Mapping[str, Any] | None = None,
    **settings: Any,
) -> CallSpec:
    """`build_call` on the persona's own endpoint: its profile's model unless it sets one.

    `options` (`-o`) win over the persona's own temperature and max_tokens; the
    rest go into the request body as given.
    """
    own = endpoints.get(persona.endpoint, endpoint) if persona.endpoint else endpoint
    call = build_call(persona, content, own.model, call_id, **settings)
    if persona.endpoint:
        call = dataclasses.replace(call, endpoint=persona.endpoint)
    if not options:
        return call
    extra = {k: v for k, v in options.items() if k not in ("temperature", "max_tokens")}
    return dataclasses.replace(
        call,
        temperature=options.get("temperature", call.temperature),
        max_tokens=options.get("max_tokens", call.max_tokens),
        options=extra,
    )


@dataclass(frozen=True, kw_only=True)
class _Plan:
    """What every plan has: the question, who answers it, where, and how many calls at once."""

    query: str
    attachments: tuple[Attachment, ...]
    personas: tuple[Persona, ...]
    endpoint: EndpointSettings
    max_concurrency: int = 1
    # Who judges, in order, when the arbiter's call fails or its verdict cannot be read.
    arbiter_fallback: tuple[Persona, ...] = ()
    # The endpoints of profiles that personas name (`endpoint:`), by profile name.
    endpoints: Mapping[str, EndpointSettings] = field(default_factory=dict)
    # Model options for every call (`-o KEY VALUE`), as given.
    options: Mapping[str, Any] = field(default_factory=dict)
    # The run's spending limits (--budget-usd, --max-tokens-total; engine/budget.py).
    budget_usd: float | None = None
    max_tokens_total: int | None = None

    def endpoint_for(self, profile: str | None) -> EndpointSettings:
        """Where a call for `profile` goes (None: the run's own endpoint)."""
        return self.endpoints.get(profile, self.endpoint) if profile else self.endpoint

    @cached_property
    def _members_by_name(self) -> dict[str, Persona]:
        """Every member by name, the first of a name winning (asked once per answer shown:
        a scan each time made printing a council of 100 cost a million steps)."""
        members = [*self.personas, *self.arbiter_fallback]
        arbiter = getattr(self, "arbiter", None)
        if arbiter is not None:
            members.append(arbiter)
        found: dict[str, Persona] = {}
        for member in members:
            found.setdefault(member.name, member)
        return found

    @cached_property
    def several_wheres(self) -> bool:
        """Whether the members' calls go to more than one model or host (asked once per
        answer shown: computing it each time made printing a council of 100 quadratic)."""
        return len({self.where(name) for name in self._members_by_name}) > 1

    def where(self, persona: str) -> tuple[str, str]:
        """The model and host a member's calls go to, by its name, for the output."""
        found = self._members_by_name.get(persona)
        endpoint = self.endpoint_for(found.endpoint if found else None)
        model = found.model if found is not None and found.model else endpoint.model
        return model, endpoint.host

    def _build(
        self, persona: Persona, content: str | Sequence[Part], call_id: str, **settings: Any
    ) -> CallSpec:
        return _call(
            persona, content, call_id, self.endpoint, self.endpoints, self.options, **settings
        )

    @property
    def question(self) -> str:
        """The question as sent: the query, with the attached files after it."""
        return user_message(self.query, self.attachments)

    @property
    def question_parts(self) -> list[Part]:
        """The question as parts: its attached files quoted, so fitting may cut them."""
        return question_parts(self.query, self.attachments)

    def _described(
        self, command: str, arbiter: Persona | None, calls: Sequence[CallSpec], **settings: Any
    ) -> dict[str, Any]:
        """The plan as `--dry-run --json` prints it (never the API key), less the estimate."""
        return {
            "command": command,
            "query": self.query,
            "endpoint": self.endpoint.describe(),
            "model": self.endpoint.model,
            "personas": [p.name for p in self.personas],
            "arbiter": arbiter.name if arbiter else None,
            "arbiter_fallback": [p.name for p in self.arbiter_fallback] if arbiter else [],
            "endpoints": {name: e.describe() for name, e in self.endpoints.items()},
            "attachments": [a.path for a in self.attachments],
            "options": dict(self.options),
            **settings,
            "limits": self.endpoint.limits(self.max_concurrency),
            "budget": {"usd": self.budget_usd, "max_tokens_total": self.max_tokens_total},
            "calls": [c.to_dict() for c in calls],
        }


@dataclass(frozen=True, kw_only=True)
class OraclePlan(_Plan):
    """One question to N personas at once, optionally followed by an arbiter's synthesis."""

    calls: tuple[CallSpec, ...]
    arbiter: Persona | None = None
    # --vote: every persona's call asks for a ballot (`choices`: --choices, () for free
    # answers); `vote_early_stop` cancels the ballots the vote no longer needs, once
    # `vote_stop` (--stop-rule) is met; `vote_weighting` (--weighting) "equal" or
    # "confidence".
    vote: bool = False
    choices: tuple[str, ...] = ()
    vote_early_stop: bool = True
    vote_stop: StopRule = field(default_factory=stop_rule)
    vote_weighting: str = "equal"
    # --rank: after the answers, each persona ranks the others' answers anonymously,
    # shuffled for each reviewer from `rank_seed`.
    rank: bool = False
    rank_seed: int | None = None
    # Reviewer bias (engine/bias.py): how many reviewers are asked again with the order
    # reversed, and the share shown their own answer too, in a shadow review.
    rank_position_checks: int = 0
    rank_self_check_rate: float = 0.0
    # --escalate: the first panel is asked first; the rest only when it doubts.
    escalation: Escalation | None = None

    @property
    def synthesize(self) -> bool:
        return self.arbiter is not None

    def synthesis_call(
        self,
        answers: list[tuple[str, str]],
        failed: list[str] | None = None,
        fallback: int = 0,
        ranked: Sequence[tuple[str, float]] | None = None,
    ) -> CallSpec:
        """The arbiter's call: the question and every member's answer, by name.

        `fallback` n > 0 is the same call by the n-th `arbiter_fallback` persona;
        `ranked` is the peer ranking's aggregate order (name, points), when there is one.
        """
        assert self.arbiter is not None, "synthesis_call needs a plan with an arbiter"
        judge = self.arbiter if fallback == 0 else self.arbiter_fallback[fallback - 1]
        call_id = "synthesis" if fallback == 0 else f"synthesis-fallback-{fallback}"
        content = synthesis_parts(self.question_parts, answers, failed)
        if ranked:
            content += ranked_note(ranked)
        return self._build(judge, content, call_id, role="arbiter")

    def consistency_call(self, responses: Sequence[tuple[str, Ballot]]) -> CallSpec:
        """The arbiter's Universal Self-Consistency pick among the ballots (label, ballot)."""
        from council.engine.consistency import consistency_parts, consistency_response_format

        assert self.arbiter is not None, "consistency_call needs a plan with an arbiter"
        content = consistency_parts(self.question_parts, responses)
        labels = [label for label, _ in responses]
        return self._build(
            self.arbiter,
            content,
            CONSISTENCY_CALL,
            role="arbiter",
            response_format=consistency_response_format(labels),
        )

    def review_call(
        self, reviewer: Persona, responses: Sequence[tuple[str, str]], check: str | None = None
    ) -> CallSpec:
        """A reviewer's ranking call (round 2): the others' answers as (label, text).

        `check` ("reversed", "self"): a bias check's call instead, round 3 and role
        "check", which the official ranking never counts (engine/bias.py).
        """
        content = ranking_parts(self.question_parts, responses)
        call_id, round_number, role = f"r2-rank-{reviewer.name}", 2, "reviewer"
        if check is not None:
            call_id, round_number, role = f"r3-{check}-{reviewer.name}", 3, "check"
        return self._build(
            reviewer,
            content,
            call_id,
            round_number=round_number,
            role=role,
            response_format=ranking_response_format([label for label, _ in responses]),
        )

    def to_dict(self) -> dict[str, Any]:
        data = self._described(Mode.ORACLE, self.arbiter, self.calls)
        data["estimated_input_tokens"] = estimated_input_tokens(self.calls)
        if self.vote:
            data["vote"] = {
                "choices": list(self.choices),
                "early_stop": self.vote_early_stop,
                "stop_rule": self.vote_stop.to_dict(),
                "weighting": self.vote_weighting,
            }
        if self.rank:
            # The seed only: the ranking calls' messages exist once the answers do (and
            # a plan's messages are what --no-store-text keeps out of the history).
            data["rank"] = {
                "seed": self.rank_seed,
                "position_checks": self.rank_position_checks,
                "self_check_rate": self.rank_self_check_rate,
            }
        if self.escalation is not None:
            data["escalation"] = self.escalation.to_dict()
        return data


@dataclass(frozen=True, kw_only=True)
class DeliberationPlan(_Plan):
    """Rounds of personas revising against each other, judged after each round by an arbiter."""

    arbiter: Persona
    rounds: int = DEFAULT_ROUNDS
    threshold: float = DEFAULT_THRESHOLD
    speculative: bool = False
    max_wasted_tokens: int | None = None
    # The exact question as first sent, context included: a resumed council reuses it
    # rather than re-reading files that may have changed since.
    question_text: str | None = None
    # --vote: every answer ends with a ballot line; a round whose ballots agree ends the
    # council without the arbiter.
    vote: bool = False
    choices: tuple[str, ...] = ()
    # --escalate: round 1's first panel is asked first; the rest only when it doubts.
    escalation: Escalation | None = None

    @property
    def question(self) -> str:
        if self.question_text is not None:
            return self.question_text
        return super().question

    @property
    def question_parts(self) -> list[Part]:
        if self.question_text is not None:
            return [self.question_text]  # as first sent: its files are no longer apart
        return super().question_parts

    def persona_call(
        self,
        persona: Persona,
        round_number: int,
        previous: list[tuple[str, str]] | None = None,
        failed: list[str] | None = None,
    ) -> CallSpec:
        """A persona's call in a round; from round 2 on, with `previous` (name, answer) pairs."""
        question = self.question_parts
        content = (
            question
            if round_number == 1
            else revision_parts(question, round_number, persona.name, previous or [], failed)
        )
        if self.vote:
            content = [*content, "", ballot_postscript(self.choices)]
        elif self.escalation is not None:  # every answer says its conclusion and confidence
            content = [*content, "", ESCALATION_POSTSCRIPT]
        return self._build(
            persona, content, f"r{round_number}-{persona.name}", round_number=round_number
        )

    def verdict_call(
        self,
        round_number: int,
        answers: list[tuple[str, str]],
        failed: list[str] | None = None,
        fallback: int = 0,
    ) -> CallSpec:
        """The arbiter's call on one round's answers (by the `fallback`-th fallback if > 0)."""
        judge = self.arbiter if fallback == 0 else self.arbiter_fallback[fallback - 1]
        suffix = "" if fallback == 0 else f"-fallback-{fallback}"
        return self._build(
            judge,
            verdict_parts(self.question_parts, round_number, self.rounds, answers, failed),
            f"r{round_number}-verdict{suffix}",
            round_number=round_number,
            role="arbiter",
            response_format=VERDICT_RESPONSE_FORMAT,
        )

    def example_calls(self) -> list[CallSpec]:
        """Round 1's calls, then a round-2 call and a verdict with placeholder answers.

        What `--dry-run` shows: the exact first round, and the shape of the rest.
        """
        calls = [self.persona_call(p, 1) for p in self.personas]
        placeholders = [(p.name, f"(round 1 answer of {p.name})") for p in self.personas]
        if self.rounds > 1:
            calls.append(self.persona_call(self.personas[0], 2, placeholders))
        calls.append(self.verdict_call(1, placeholders))
        return calls

    def to_dict(self) -> dict[str, Any]:
        calls = self.example_calls()
        data = self._described(
            Mode.DELIBERATE,
            self.arbiter,
            calls,
            rounds=self.rounds,
            threshold=self.threshold,
            speculative=self.speculative,
            max_wasted_tokens=self.max_wasted_tokens,
        )
        if self.vote:
            data["vote"] = {"choices": list(self.choices)}
        if self.escalation is not None:
            data["escalation"] = self.escalation.to_dict()
        data["estimated_input_tokens_round_1"] = estimated_input_tokens(calls[: len(self.personas)])
        return data


def build_oracle_plan(
    *,
    query: str,
    personas: list[Persona],
    endpoint: EndpointSettings,
    attachments: list[Attachment] | None = None,
    arbiter: Persona | None = None,
    arbiter_fallback: Sequence[Persona] = (),
    endpoints: Mapping[str, EndpointSettings] | None = None,
    options: Mapping[str, Any] | None = None,
    vote: bool = False,
    choices: Sequence[str] = (),
    vote_early_stop: bool = True,
    vote_stop: StopRule | None = None,
    vote_weighting: str = "equal",
    rank: bool = False,
    rank_seed: int | None = None,
    rank_position_checks: int = 0,
    rank_self_check_rate: float = 0.0,
    budget_usd: float | None = None,
    max_tokens_total: int | None = None,
    escalation: Escalation | None = None,
) -> OraclePlan:
    """Plan one question to every persona; the synthesis call is built once answers exist.

    With `vote`, every persona is asked for a ballot (JSON where the endpoint takes it).
    """
    attached = tuple(attachments or ())
    content = question_parts(query, attached)
    extra = dict(endpoints or {})
    ballot: dict[str, Any] = {}
    if vote:
        content = ballot_parts(content, choices)
        ballot = {"response_format": ballot_response_format(choices)}
    elif escalation is not None:  # every answer says its conclusion and confidence
        content = [*content, "", ESCALATION_POSTSCRIPT]
    calls = tuple(
        _call(persona, content, f"r1-{persona.name}", endpoint, extra, options, **ballot)
        for persona in personas
    )
    return OraclePlan(
        query=query,
        attachments=attached,
        personas=tuple(personas),
        endpoint=endpoint,
        calls=calls,
        arbiter=arbiter,
        arbiter_fallback=tuple(arbiter_fallback) if arbiter is not None else (),
        endpoints=extra,
        max_concurrency=max_concurrency_for(endpoint, len(calls)),
        options=dict(options or {}),
        vote=vote,
        choices=tuple(choices),
        vote_early_stop=vote_early_stop,
        vote_stop=vote_stop or stop_rule(),
        vote_weighting=vote_weighting,
        rank=rank,
        rank_seed=rank_seed,
        rank_position_checks=rank_position_checks,
        rank_self_check_rate=rank_self_check_rate,
        budget_usd=budget_usd,
        max_tokens_total=max_tokens_total,
        escalation=escalation,
    )


def build_deliberation_plan(
    *,
    query: str,
    personas: list[Persona],
    arbiter: Persona,
    endpoint: EndpointSettings,
    arbiter_fallback: Sequence[Persona] = (),
    endpoints: Mapping[str, EndpointSettings] | None = None,
    attachments: list[Attachment] | None = None,
    rounds: int = DEFAULT_ROUNDS,
    threshold: float = DEFAULT_THRESHOLD,
    speculative: bool = False,
    max_wasted_tokens: int | None = None,
    question_text: str | None = None,
    options: Mapping[str, Any] | None = None,
    vote: bool = False,
    choices: Sequence[str] = (),
    budget_usd: float | None = None,
    max_tokens_total: int | None = None,
    escalation: Escalation | None = None,
) -> DeliberationPlan:
    return DeliberationPlan(
        query=query,
        attachments=tuple(attachments or ()),
        personas=tuple(personas),
        arbiter=arbiter,
        arbiter_fallback=tuple(arbiter_fallback),
        endpoints=dict(endpoints or {}),
        endpoint=endpoint,
        rounds=rounds,
        threshold=threshold,
        speculative=speculative,
        max_wasted_tokens=max_wasted_tokens,
        # With speculation a round's personas and the previous round's arbiter run at once.
        max_concurrency=max_concurrency_for(endpoint, len(personas) + 1),
        question_text=question_text,
        options=dict(options or {}),
        vote=vote,
        choices=tuple(choices),
        budget_usd=budget_usd,
        max_tokens_total=max_tokens_total,
        escalation=escalation,
    )
