"""The shapes of what council's MCP tools return as structured content (their output schemas).

Pydantic models, because the MCP SDK publishes a tool's output schema from its
return type and checks every result against it. The texts the model reads are
built beside them (`mcp_results.py`); these carry the same facts for programs.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "CouncilAnswer",
    "Member",
    "Missing",
    "PersonaInfo",
    "PresetInfo",
    "Presets",
    "RecentRuns",
    "RunRecord",
    "RunSummary",
]


class Member(BaseModel):
    """One member's answer, or why it has none."""

    persona: str
    model: str | None = None
    answer: str | None = Field(None, description="What it said (its last round's answer).")
    error: str | None = Field(None, description="Why it has no answer: kind and message.")


class Missing(BaseModel):
    """A member the council's answer does not rest on."""

    persona: str
    reason: str


class CouncilAnswer(BaseModel):
    """A council's answer, who gave it and how settled it is."""

    run_id: str | None = Field(None, description="Its id in the history: show_run shows it again.")
    status: str = Field(description="ok, partial (some members failed), failed or interrupted.")
    answer: str | None = Field(
        None, description="The council's answer: the synthesis, or the vote's winner."
    )
    answered_by: str | None = Field(None, description="Who wrote the answer (the arbiter).")
    confidence: float | None = Field(None, description="The arbiter's confidence, 0 to 1.")
    converged: bool | None = Field(None, description="Whether the members came to agree.")
    dissent: list[str] = Field(default_factory=list, description="Disagreements that remain.")
    members: list[Member] = Field(default_factory=list)
    missing: list[Missing] = Field(default_factory=list, description="Members who did not answer.")
    rounds: int = Field(1, description="Rounds kept.")
    stop_reason: str | None = Field(
        None, description="Why a deliberation stopped: converged, max_rounds..."
    )
    vote: dict[str, Any] | None = Field(None, description="The vote: winners, tally, ballots.")
    cost_usd: float | None = Field(
        None, description="What all its calls cost in USD (null: unknown)."
    )
    agreement: dict[str, Any] | None = Field(
        None,
        description="The arbiter's agreement map: consensus, contradictions (with each "
        "side's members and the assumption they differ on), unique_insights, blind_spots, "
        "dissent, confidence, missing (null: the arbiter gave none).",
    )
    escalation: dict[str, Any] | None = Field(
        None,
        description="With escalate: whether the whole council was asked, and the calls "
        "saved (null: no escalation).",
    )


class PresetInfo(BaseModel):
    name: str
    description: str
    personas: list[str] | None = None
    arbiter: str | None = None
    rounds: int | None = None
    speculative: bool | None = None
    origin: str
    problem: str | None = Field(None, description="Why it cannot be used as it stands.")


class PersonaInfo(BaseModel):
    name: str
    description: str
    origin: str


class Presets(BaseModel):
    """What can be asked: the presets (whole councils) and the personas (members)."""

    presets: list[PresetInfo]
    personas: list[PersonaInfo]
    default_personas: list[str]


class RunSummary(BaseModel):
    id: str
    started_at: str | None
    command: str
    status: str
    preset: str | None = None
    query: str | None = None
    answer: str | None = None
    cost_usd: float | None = None


class RecentRuns(BaseModel):
    runs: list[RunSummary]


class RunRecord(BaseModel):
    """A past run as the history kept it."""

    run: RunSummary
    document: dict[str, Any] | None = Field(
        None, description="Its --json document (null: recorded without its texts)."
    )
    failures: list[dict[str, Any]] = Field(default_factory=list)
