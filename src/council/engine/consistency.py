"""Universal Self-Consistency (arXiv 2311.17311) for a vote on free answers.

`council oracle --vote --synthesize` without `--choices`: the ballots are counted as
always (equal spellings together, engine/vote.py), then the arbiter is shown every
counted ballot's answer and reason, anonymously as Response 1, 2, ... in the
council's order, and picks the most consistent one: the answer most of the others
agree with in meaning, not only in spelling. The pick is the vote's answer; its
persona and the arbiter's reason are in `VoteResult.consistency`. The call is made by
engine/vote.py's `pick_consistent`.

No call is made when every ballot gave the same answer (there is nothing to pick
from), and when the arbiter's reply names no response, the count decides, saying so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from council.engine.ballots import choice_key
from council.engine.model import Ballot, ConsistencyPick, Part, Quoted, VoteResult
from council.engine.prompts import json_schema_format
from council.engine.replies import first_json_object

__all__ = [
    "USC_INSTRUCTIONS",
    "consistency_parts",
    "consistency_response_format",
    "read_pick",
    "with_pick",
]

USC_INSTRUCTIONS = """\
Members of a council each answered the question below on their own. Their answers are
shown anonymously as Response 1, Response 2, and so on. Pick the most consistent
response: the one whose answer most of the others agree with in meaning, whatever the
wording. Reply with a single JSON object: "reason": one line on which responses agree,
"response": the label you pick, e.g. "Response 2"."""


def consistency_parts(
    question: Sequence[Part], responses: Sequence[tuple[str, Ballot]]
) -> list[Part]:
    """The arbiter's turn: the instructions, the question, each (label, ballot)."""
    lines: list[Part] = [USC_INSTRUCTIONS, "", "<question>", *question, "</question>"]
    for label, ballot in responses:
        text = ballot.choice or ""
        if ballot.reason:
            text += f"\n(why: {ballot.reason})"
        lines += ["", f'<response label="{label}">', Quoted(text), "</response>"]
    return lines


def consistency_response_format(labels: Sequence[str]) -> dict[str, Any]:
    response = {"type": "string", "enum": list(labels)}
    return json_schema_format("pick", {"reason": {"type": "string"}, "response": response})


def read_pick(reply: str, labels: Sequence[str]) -> tuple[str | None, str]:
    """The label the arbiter picked (None when it names none of `labels`) and its reason."""
    data = first_json_object(reply, "response") or {}
    reason = " ".join(str(data.get("reason") or "").split())
    named = " ".join(str(data.get("response") or "").split()).casefold()
    by_key = {label.casefold(): label for label in labels}
    if named in by_key:
        return by_key[named], reason
    if named.isdigit() and f"response {named}" in by_key:  # "2" for "Response 2"
        return by_key[f"response {named}"], reason
    return None, reason


def with_pick(vote: VoteResult, pick: ConsistencyPick) -> VoteResult:
    """The vote whose answer is the pick (as the tally spells it); unchanged winners when
    the pick names no ballot."""
    if pick.persona is None or pick.answer is None:
        return dataclasses.replace(vote, consistency=pick)
    spelled = next((c for c in vote.tally if choice_key(c) == choice_key(pick.answer)), None)
    winners = (spelled or pick.answer,)
    return dataclasses.replace(vote, winners=winners, consistency=pick)
