"""What a run will do, decided before anything runs: personas, exact messages, limits.

Building a plan does no I/O, so `--dry-run` is simply the plan printed, and the
engines only execute what the plan says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from council.config.defaults import DEFAULT_MAX_CONCURRENCY_CAP
from council.config.endpoint_settings import EndpointSettings
from council.config.personas import Persona
from council.engine.model import Attachment, CallSpec, Message

__all__ = [
    "OraclePlan",
    "build_oracle_plan",
    "build_synthesis_call",
    "estimate_tokens",
]


@dataclass(frozen=True)
class OraclePlan:
    """One question to N personas at once, optionally followed by an arbiter's synthesis."""

    query: str
    attachments: tuple[Attachment, ...]
    personas: tuple[Persona, ...]
    endpoint: EndpointSettings
    calls: tuple[CallSpec, ...]
    arbiter: Persona | None = None
    max_concurrency: int = field(default=1)

    @property
    def synthesize(self) -> bool:
        return self.arbiter is not None

    def to_dict(self) -> dict[str, Any]:
        """The plan as `--dry-run --json` prints it (never the API key)."""
        return {
            "command": "oracle",
            "query": self.query,
            "endpoint": self.endpoint.describe(),
            "model": self.endpoint.model,
            "personas": [p.name for p in self.personas],
            "arbiter": self.arbiter.name if self.arbiter else None,
            "attachments": [a.path for a in self.attachments],
            "limits": self.endpoint.limits(self.max_concurrency),
            "calls": [c.to_dict() for c in self.calls],
            "estimated_input_tokens": sum(estimate_tokens(c.messages) for c in self.calls),
        }


def estimate_tokens(messages: tuple[Message, ...] | list[Message]) -> int:
    """A rough input-token count (about four characters a token, plus per-message framing)."""
    return sum(len(m.get("content", "")) // 4 + 4 for m in messages)


def user_message(query: str, attachments: tuple[Attachment, ...]) -> str:
    """The question, with any attached files after it, each fenced and labelled."""
    if not attachments:
        return query
    parts = [query, "", "Attached files:"]
    for attachment in attachments:
        parts += ["", f'<file path="{attachment.path}">', attachment.text.rstrip("\n"), "</file>"]
    return "\n".join(parts)


def persona_call(
    persona: Persona,
    content: str,
    default_model: str,
    call_id: str,
    round_number: int = 1,
    role: str = "persona",
) -> CallSpec:
    return CallSpec(
        call_id=call_id,
        persona=persona.name,
        messages=(
            {"role": "system", "content": persona.system},
            {"role": "user", "content": content},
        ),
        model=persona.model or default_model,
        temperature=persona.temperature,
        max_tokens=persona.max_tokens,
        round=round_number,
        role=role,
    )


def build_oracle_plan(
    *,
    query: str,
    personas: list[Persona],
    endpoint: EndpointSettings,
    attachments: list[Attachment] | None = None,
    arbiter: Persona | None = None,
) -> OraclePlan:
    """Plan one question to every persona; the synthesis call is built once answers exist."""
    attached = tuple(attachments or ())
    content = user_message(query, attached)
    calls = tuple(
        persona_call(persona, content, endpoint.model, call_id=f"r1-{persona.name}")
        for persona in personas
    )
    cap = endpoint.max_concurrency or min(len(calls), DEFAULT_MAX_CONCURRENCY_CAP)
    return OraclePlan(
        query=query,
        attachments=attached,
        personas=tuple(personas),
        endpoint=endpoint,
        calls=calls,
        arbiter=arbiter,
        max_concurrency=max(1, cap),
    )


SYNTHESIS_INSTRUCTIONS = """\
You are chairing a council. Its members answered the question below independently.
Write one synthesis for the person who asked, in Markdown, with these sections:

## Agreements
What the members agree on, and how firmly.

## Disagreements
Where they differ, who holds which position (by name), and which side the reasoning supports.

## Recommendation
Your recommendation, weighing arguments on their merit rather than by majority, with the
confidence it deserves and what would change it.

Be concise. Do not invent positions the members did not take."""


def build_synthesis_call(
    plan: OraclePlan, answers: list[tuple[str, str]], failed: list[str] | None = None
) -> CallSpec:
    """The arbiter's call: the question and every member's answer, by name."""
    assert plan.arbiter is not None, "build_synthesis_call needs a plan with an arbiter"
    lines = [
        SYNTHESIS_INSTRUCTIONS,
        "",
        "<question>",
        user_message(plan.query, plan.attachments),
        "</question>",
    ]
    for name, text in answers:
        lines += ["", f'<answer member="{name}">', text.strip(), "</answer>"]
    if failed:
        lines += ["", f"(No answer from: {', '.join(failed)}.)"]
    return persona_call(
        plan.arbiter, "\n".join(lines), plan.endpoint.model, call_id="synthesis", role="arbiter"
    )
