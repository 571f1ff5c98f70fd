"""What a deliberation will do: rounds, the exact prompts of each round, the arbiter's verdicts.

A round's prompts depend only on the question and the previous round's answers,
in the personas' fixed order, never on the arbiter: that is what lets round N
start while the arbiter still judges round N-1 without changing any answer.
Building a plan does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from council.config.defaults import DEFAULT_MAX_CONCURRENCY_CAP, DEFAULT_ROUNDS, DEFAULT_THRESHOLD
from council.config.endpoint_settings import EndpointSettings
from council.config.personas import Persona
from council.engine.model import Attachment, CallSpec
from council.engine.plan import estimate_tokens, persona_call, user_message

__all__ = [
    "DeliberationPlan",
    "build_deliberation_plan",
]

# Asked of the arbiter where the endpoint supports it; replies are parsed leniently anyway.
VERDICT_RESPONSE_FORMAT = {"type": "json_object"}

REVISION_INSTRUCTIONS = """\
This is round {round} of a council deliberation. Below are every member's answers from
round {previous}, in a fixed order; the one marked yours="true" is your own.

Reconsider your answer in the light of the others. Weigh their arguments on their merit:
change your position only for a reason, never just because others disagree.

Begin your reply with exactly one line, either "Position: kept" or "Position: changed",
then give your full revised answer (not a diff), with the reasons for what you kept
or changed."""

VERDICT_INSTRUCTIONS = """\
You are the arbiter of a council. Its members have answered the question below; this is
round {round} of at most {rounds}. Judge whether they have converged: whether they agree
in substance on the answer (different wording or emphasis is still agreement), and write
the council's answer for the person who asked.

Reply with a single JSON object and nothing else, with these keys:
  "converged": true or false,
  "confidence": a number from 0 to 1, how sure you are of your converged judgement,
  "synthesis": the council's answer in Markdown: what they agree on, your recommendation
               weighing arguments on their merit (not by majority), and what would change it,
  "dissent": a list of strings, one per remaining disagreement, naming who holds it
             (an empty list when there is none)."""

_POSITION_NOTE = "(no answer from: {names}; their calls failed)"


@dataclass(frozen=True)
class DeliberationPlan:
    """Rounds of personas revising against each other, judged after each round by an arbiter."""

    query: str
    attachments: tuple[Attachment, ...]
    personas: tuple[Persona, ...]
    arbiter: Persona
    endpoint: EndpointSettings
    rounds: int = DEFAULT_ROUNDS
    threshold: float = DEFAULT_THRESHOLD
    speculative: bool = False
    max_wasted_tokens: int | None = None
    max_concurrency: int = 1
    # The exact question as first sent, context included: a resumed council reuses it
    # rather than re-reading files that may have changed since.
    question_text: str | None = None

    @property
    def question(self) -> str:
        if self.question_text is not None:
            return self.question_text
        return user_message(self.query, self.attachments)

    def persona_call(
        self,
        persona: Persona,
        round_number: int,
        previous: list[tuple[str, str]] | None = None,
        failed: list[str] | None = None,
    ) -> CallSpec:
        """A persona's call in a round; from round 2 on, with `previous` (name, answer) pairs."""
        call_id = f"r{round_number}-{persona.name}"
        if round_number == 1:
            return persona_call(persona, self.question, self.endpoint.model, call_id)
        lines = [
            "<question>",
            self.question,
            "</question>",
            "",
            REVISION_INSTRUCTIONS.format(round=round_number, previous=round_number - 1),
        ]
        for name, text in previous or []:
            mine = ' yours="true"' if name == persona.name else ""
            lines += ["", f'<answer member="{name}"{mine}>', text.strip(), "</answer>"]
        if failed:
            lines += ["", _POSITION_NOTE.format(names=", ".join(failed))]
        return persona_call(
            persona, "\n".join(lines), self.endpoint.model, call_id, round_number=round_number
        )

    def verdict_call(
        self, round_number: int, answers: list[tuple[str, str]], failed: list[str] | None = None
    ) -> CallSpec:
        """The arbiter's call on one round's answers."""
        lines = [
            VERDICT_INSTRUCTIONS.format(round=round_number, rounds=self.rounds),
            "",
            "<question>",
            self.question,
            "</question>",
        ]
        for name, text in answers:
            lines += ["", f'<answer member="{name}">', text.strip(), "</answer>"]
        if failed:
            lines += ["", _POSITION_NOTE.format(names=", ".join(failed))]
        call = persona_call(
            self.arbiter,
            "\n".join(lines),
            self.endpoint.model,
            call_id=f"r{round_number}-verdict",
            round_number=round_number,
            role="arbiter",
        )
        return CallSpec(**{**call.__dict__, "response_format": VERDICT_RESPONSE_FORMAT})

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
        """The plan as `--dry-run --json` prints it (never the API key)."""
        calls = self.example_calls()
        first_round = calls[: len(self.personas)]
        return {
            "command": "deliberate",
            "query": self.query,
            "endpoint": self.endpoint.describe(),
            "model": self.endpoint.model,
            "personas": [p.name for p in self.personas],
            "arbiter": self.arbiter.name,
            "attachments": [a.path for a in self.attachments],
            "rounds": self.rounds,
            "threshold": self.threshold,
            "speculative": self.speculative,
            "max_wasted_tokens": self.max_wasted_tokens,
            "limits": self.endpoint.limits(self.max_concurrency),
            "calls": [c.to_dict() for c in calls],
            "estimated_input_tokens_round_1": sum(estimate_tokens(c.messages) for c in first_round),
        }


def build_deliberation_plan(
    *,
    query: str,
    personas: list[Persona],
    arbiter: Persona,
    endpoint: EndpointSettings,
    attachments: list[Attachment] | None = None,
    rounds: int = DEFAULT_ROUNDS,
    threshold: float = DEFAULT_THRESHOLD,
    speculative: bool = False,
    max_wasted_tokens: int | None = None,
    question_text: str | None = None,
) -> DeliberationPlan:
    # With speculation a round's personas and the previous round's arbiter run at once.
    calls_at_once = len(personas) + 1
    cap = endpoint.max_concurrency or min(calls_at_once, DEFAULT_MAX_CONCURRENCY_CAP)
    return DeliberationPlan(
        query=query,
        attachments=tuple(attachments or ()),
        personas=tuple(personas),
        arbiter=arbiter,
        endpoint=endpoint,
        rounds=rounds,
        threshold=threshold,
        speculative=speculative,
        max_wasted_tokens=max_wasted_tokens,
        max_concurrency=max(1, cap),
        question_text=question_text,
    )
