"""A conversation so far, folded into the question every member reads.

Shared by the public API (`Council(...).ask(conversation=...)`) and the CLI's
follow-ups (`council oracle --continue`), so that both fold it the same way and a
follow-up's own question can be taken back out of its recorded query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from council.errors import UsageError

__all__ = ["with_conversation"]

# The roles a turn of `conversation=` may have: the asker's, and the council's replies.
_TURN_ROLES = ("user", "assistant")


def with_conversation(question: str, conversation: Sequence[Mapping[str, Any]] | None) -> str:
    """The question with the conversation so far before it, for every member to read.

    The turns are part of the question (and so of what the arbiter reads), each fenced
    and labelled with its role; no conversation: the question as it is.
    """
    if not conversation:
        return question
    lines = ["The conversation so far, oldest first:", ""]
    for number, turn in enumerate(conversation, 1):
        role, content = turn.get("role"), turn.get("content")
        if role not in _TURN_ROLES or not isinstance(content, str):
            raise UsageError(
                f"conversation turn {number} is not a user or assistant message with text",
                'give [{"role": "user" or "assistant", "content": "..."}, ...]',
            )
        lines += [f'<message role="{role}">', content.strip(), "</message>"]
    lines += ["", "The latest message, to answer now:", "", question]
    return "\n".join(lines)
