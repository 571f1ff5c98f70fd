"""The words council sends: instructions, the question as asked, and each call's messages.

Every prompt is built here, from the question and earlier answers in the personas'
fixed order, never from the arbiter's verdicts: a round's prompts depend only on
the previous round's answers, which is what lets round N start while the arbiter
still judges round N-1. The plans decide which calls a run makes; this module
decides what each says. Changing a text here changes what every model reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from council.config.personas import Persona
from council.engine.agreement_schema import AGREEMENT_PROPERTIES
from council.engine.model import Attachment, CallSpec, Part, Quoted, join_parts

__all__ = [
    "BALLOT_INSTRUCTIONS",
    "ESCALATION_POSTSCRIPT",
    "EVAL_ANSWER_INSTRUCTIONS",
    "EVAL_CHOICE_INSTRUCTIONS",
    "EVAL_JUDGE_INSTRUCTIONS",
    "RANKING_INSTRUCTIONS",
    "REVISION_INSTRUCTIONS",
    "SYNTHESIS_INSTRUCTIONS",
    "VERDICT_INSTRUCTIONS",
    "VERDICT_RESPONSE_FORMAT",
    "ballot_parts",
    "ballot_postscript",
    "ballot_response_format",
    "build_call",
    "eval_judge_prompt",
    "eval_question",
    "question_parts",
    "ranked_note",
    "ranking_parts",
    "ranking_response_format",
    "revision_parts",
    "revision_prompt",
    "synthesis_parts",
    "synthesis_prompt",
    "user_message",
    "verdict_parts",
    "verdict_prompt",
]

# The oracle's arbiter: the synthesis first (it streams to the person who asked), then
# the agreement map (engine/agreement.py) in the same reply. Kept about as short as it
# was before the map, so that a small model's window still holds it with the answers cut.
SYNTHESIS_INSTRUCTIONS = """\
You chair a council; its members answered the question below independently. Write one
synthesis in Markdown for the person who asked, with sections ## Agreements (and how
firm), ## Disagreements (who holds which position, by name; which side the reasoning
supports) and ## Recommendation (on the merits, not by majority; its confidence; what
would change it). Be concise; invent no positions. Then end with a line "<agreement>",
one JSON object, and a line "</agreement>": {"consensus": [points all share],
"contradictions": [{"point", "sides": [{"members", "position"}], "assumption"}],
"unique_insights": [{"point", "member"}], "blind_spots": [what none addressed],
"dissent": [each disagreement left, naming who holds it], "confidence": 0 to 1}"""

REVISION_INSTRUCTIONS = """\
This is round {round} of a council deliberation. Below are every member's answers from
round {previous}, in a fixed order; the one marked yours="true" is your own.

Reconsider your answer in the light of the others. Weigh their arguments on their merit:
change your position only for a reason, never just because others disagree.

Begin your reply with exactly one line, either "Position: kept" or "Position: changed",
then give your full revised answer (not a diff), with the reasons for what you kept
or changed."""

# Kept as short as the verdict was before the map (issue 26): a small model's window
# holds the instructions and the arbiter's system prompt whole, and its answers cut.
VERDICT_INSTRUCTIONS = """\
You are the arbiter of a council; this is round {round} of at most {rounds}. Judge whether
its members, answering the question below, have converged (agree in substance; wording
aside), and write the council's answer. Reply with one JSON object only:
  "converged": true or false; "confidence": 0 to 1, in that judgement;
  "synthesis": the answer in Markdown: what they agree on, your recommendation on the
    merits (not by majority), and what would change it;
  "dissent": each remaining disagreement, naming who holds it ([] when none);
  "consensus": points all share; "blind_spots": what none addressed;
  "contradictions": [{{"point", "sides": [{{"members", "position"}}], "assumption"}}];
  "unique_insights": [{{"point", "member"}}] (what only one member saw)."""


def json_schema_format(name: str, properties: dict[str, Any]) -> dict[str, Any]:
    """A `response_format` asking for an object with exactly these keys, all required.

    Strict (OpenAI's word for "constrain the reply to it"); a server that refuses a
    schema is asked one step lower (`endpoint/formats.py`), and replies are read
    leniently whatever was asked, as some servers accept a schema and ignore it.
    """
    schema = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}


# The arbiter's verdict, as convergence.parse_verdict reads it, with the agreement map.
VERDICT_RESPONSE_FORMAT = json_schema_format(
    "verdict",
    {
        "converged": {"type": "boolean"},
        "confidence": {"type": "number"},
        "synthesis": {"type": "string"},
        "dissent": {"type": "array", "items": {"type": "string"}},
        **AGREEMENT_PROPERTIES,
    },
)

_ROUND_MISSING = "(no answer from: {names}; their calls failed)"
# What the arbiter is told of a council some members missed: a degraded answer says so.
_DEGRADED = """\
Only {answered} of {total} members answered; missing: {names}. Your answer rests on \
theirs alone: say so in one line at its start, and do not speak for the missing members."""
_ALONE = """\
Only one member of {total} answered ({names} did not): present its answer as that \
member's view, not as a council's agreement, and say so in one line at its start."""


def question_parts(query: str, attachments: tuple[Attachment, ...]) -> list[Part]:
    """The question, with any attached files after it, each fenced and labelled (quoted)."""
    if not attachments:
        return [query]
    parts: list[Part] = [query, "", "Attached files:"]
    for attachment in attachments:
        text = Quoted(attachment.text.rstrip("\n"), rank=1)
        parts += ["", f'<file path="{attachment.path}">', text, "</file>"]
    return parts


def user_message(query: str, attachments: tuple[Attachment, ...]) -> str:
    """The question, with any attached files after it, each fenced and labelled."""
    return join_parts(tuple(question_parts(query, attachments)))


def build_call(
    persona: Persona,
    content: str | Sequence[Part],
    default_model: str,
    call_id: str,
    round_number: int = 1,
    role: str = "persona",
    response_format: dict[str, Any] | None = None,
) -> CallSpec:
    """A call with the persona's system prompt and settings, and `content` as the user's turn.

    `content` given as parts keeps what it quotes apart, so that fitting can cut it.
    """
    parts = () if isinstance(content, str) else tuple(content)
    if parts and not any(isinstance(p, Quoted) for p in parts):
        parts = ()  # nothing to cut
    content = content if isinstance(content, str) else join_parts(tuple(content))
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
        response_format=response_format,
        parts=parts,
    )


# A question given as parts (question_parts) keeps its attached files cuttable.
Question = str | Sequence[Part]


def _question(question: Question) -> list[Part]:
    inner = [question] if isinstance(question, str) else list(question)
    return ["<question>", *inner, "</question>"]


def _answers(answers: list[tuple[str, str]], own: str | None = None) -> list[Part]:
    """Each (name, answer) in order, fenced and labelled; `own`'s marked as the reader's."""
    lines: list[Part] = []
    for name, text in answers:
        mine = ' yours="true"' if name == own else ""
        lines += ["", f'<answer member="{name}"{mine}>', Quoted(text.strip()), "</answer>"]
    return lines


def _missing(note: str, failed: list[str] | None) -> list[Part]:
    return ["", note.format(names=", ".join(failed))] if failed else []


def _degraded(answered: int, failed: list[str] | None) -> list[Part]:
    """For an arbiter: how many answered, who did not and why ("critic (429)")."""
    if not failed:
        return []
    total = answered + len(failed)
    note = _ALONE if answered == 1 else _DEGRADED
    return ["", note.format(answered=answered, total=total, names=", ".join(failed))]


def synthesis_parts(
    question: Question, answers: list[tuple[str, str]], failed: list[str] | None = None
) -> list[Part]:
    """The oracle's arbiter: the question and every member's answer, by name."""
    lines = [SYNTHESIS_INSTRUCTIONS, "", *_question(question), *_answers(answers)]
    return [*lines, *_degraded(len(answers), failed)]


def synthesis_prompt(
    question: Question, answers: list[tuple[str, str]], failed: list[str] | None = None
) -> str:
    """The oracle's arbiter's prompt as text."""
    return join_parts(tuple(synthesis_parts(question, answers, failed)))


def revision_parts(
    question: Question,
    round_number: int,
    persona: str,
    previous: list[tuple[str, str]],
    failed: list[str] | None = None,
) -> list[Part]:
    """A persona's turn from round 2 on: the question and the previous round's answers."""
    instructions = REVISION_INSTRUCTIONS.format(round=round_number, previous=round_number - 1)
    lines = [*_question(question), "", instructions, *_answers(previous, own=persona)]
    return [*lines, *_missing(_ROUND_MISSING, failed)]


def verdict_parts(
    question: Question,
    round_number: int,
    rounds: int,
    answers: list[tuple[str, str]],
    failed: list[str] | None = None,
) -> list[Part]:
    """The deliberation's arbiter on one round: judge it, and reply in JSON."""
    instructions = VERDICT_INSTRUCTIONS.format(round=round_number, rounds=rounds)
    lines = [instructions, "", *_question(question), *_answers(answers)]
    return [*lines, *_degraded(len(answers), failed)]


def revision_prompt(
    question: Question,
    round_number: int,
    persona: str,
    previous: list[tuple[str, str]],
    failed: list[str] | None = None,
) -> str:
    """A persona's revision prompt as text."""
    parts = revision_parts(question, round_number, persona, previous, failed)
    return join_parts(tuple(parts))


def verdict_prompt(
    question: Question,
    round_number: int,
    rounds: int,
    answers: list[tuple[str, str]],
    failed: list[str] | None = None,
) -> str:
    """The deliberation's arbiter's prompt as text."""
    return join_parts(tuple(verdict_parts(question, round_number, rounds, answers, failed)))


# -- votes and peer ranking (engine/vote.py, engine/ranking.py) -----------------------

BALLOT_INSTRUCTIONS = """\
This is a vote. Give your ballot on the question above: your choice, how confident you
are, and one line on why. Reply with a single JSON object and nothing else:
  "choice": {choice},
  "confidence": a number from 0 to 1,
  "reason": one line."""

_CHOICE_OF = "exactly one of {choices}"
_FREE_CHOICE = "your answer in as few words as possible (a letter, a word, a number, a name)"

# deliberate --vote: each round's answer ends with a ballot line the council reads.
BALLOT_POSTSCRIPT = """\
End your answer with one line of its own: "Choice: X", where X is {choice}."""


# What every persona of an escalating run without --vote ends its answer with, so that
# the first panel's agreement and confidence can be read (engine/escalation.py), and the
# full council's answer compared with the panel's.
ESCALATION_POSTSCRIPT = """\
End your reply with two lines of their own:
Answer: <your conclusion in as few words as possible>
Confidence: <how sure you are, 0 to 100>%"""


def ballot_response_format(choices: Sequence[str] = ()) -> dict[str, Any]:
    """A voter's ballot as ballots.read_ballot reads it; the choice one of `choices` if any."""
    choice: dict[str, Any] = {"type": "string"}
    if choices:
        choice["enum"] = list(choices)
    properties = {"choice": choice, "confidence": {"type": "number"}, "reason": {"type": "string"}}
    return json_schema_format("ballot", properties)


RANKING_INSTRUCTIONS = """\
Other members of a council answered the question below. Their answers are shown
anonymously, as Response A, Response B, and so on, in no particular order. Weigh each
on its merit: correctness, reasoning and usefulness to the person who asked, not its
length or its place in the list.

Reason before you rank. Reply with a single JSON object and nothing else:
  "review": first, briefly, what is strong and weak in each response,
  "ranking": every response's label once, best first, e.g. ["Response C", "Response A"].
(Where JSON cannot be written, write your review, then end the reply with
"FINAL RANKING:" and a numbered list of the labels, best first.)"""

_RANKED = "The members ranked each other's answers anonymously (Borda points, best first):"


def _choice_words(choices: Sequence[str]) -> str:
    if not choices:
        return _FREE_CHOICE
    return _CHOICE_OF.format(choices=", ".join(f'"{c}"' for c in choices))


def ranking_response_format(labels: Sequence[str]) -> dict[str, Any]:
    """A reviewer's ranking as ranking.read_ranking reads it: labels ("Response C") only."""
    shown = [f"Response {label}" for label in labels]
    ranking = {"type": "array", "items": {"type": "string", "enum": shown}}
    return json_schema_format("ranking", {"review": {"type": "string"}, "ranking": ranking})


def ballot_parts(question: Question, choices: Sequence[str] = ()) -> list[Part]:
    """A voter's turn: the question, then how to give its ballot."""
    instructions = BALLOT_INSTRUCTIONS.format(choice=_choice_words(choices))
    return [*_question(question), "", instructions]


def ballot_postscript(choices: Sequence[str] = ()) -> str:
    """What `deliberate --vote` adds to every persona's turn: the ballot line."""
    return BALLOT_POSTSCRIPT.format(choice=_choice_words(choices))


def ranking_parts(question: Question, responses: Sequence[tuple[str, str]]) -> list[Part]:
    """A reviewer's turn: the question and the others' answers by label only, never by name."""
    lines: list[Part] = [RANKING_INSTRUCTIONS, "", *_question(question)]
    for label, text in responses:
        lines += ["", f'<response label="Response {label}">', Quoted(text.strip()), "</response>"]
    return lines


def ranked_note(order: Sequence[tuple[str, float]]) -> list[Part]:
    """For the arbiter of a ranked council: the aggregate order with its points."""
    ranked = [f"{i}. {name} ({points:g} points)" for i, (name, points) in enumerate(order, 1)]
    return ["", _RANKED, *ranked]


# `council eval`: how an item is put to the council, and how a judge grades an answer.
EVAL_CHOICE_INSTRUCTIONS = """\
Options:
{options}

Pick exactly one option. End your reply with one line: "Answer: <letter>"."""

EVAL_ANSWER_INSTRUCTIONS = 'Be brief. End your reply with one line: "Answer: <your answer>".'

EVAL_JUDGE_INSTRUCTIONS = """\
You are grading an answer against a reference answer. Decide whether the answer reaches
the same conclusion as the reference: wording, length and extra explanation do not
matter; a different or missing conclusion, or one hedged between several, fails.

<question>
{question}
</question>

<reference>
{expected}
</reference>

<answer>
{answer}
</answer>

Reply with a single JSON object and nothing else:
{{"verdict": "pass" or "fail", "reason": "one short sentence"}}"""


def eval_question(query: str, choices: Sequence[str] | None) -> str:
    """An eval item as asked: its question, its lettered options, and how to end the reply."""
    if choices:
        options = "\n".join(f"{chr(ord('A') + i)}) {c}" for i, c in enumerate(choices))
        return f"{query.rstrip()}\n\n{EVAL_CHOICE_INSTRUCTIONS.format(options=options)}"
    return f"{query.rstrip()}\n\n{EVAL_ANSWER_INSTRUCTIONS}"


def eval_judge_prompt(question: str, expected: str, answer: str) -> str:
    """What the judge persona reads to grade one answer (`--scorer judge`)."""
    return EVAL_JUDGE_INSTRUCTIONS.format(question=question, expected=expected, answer=answer)
