"""Plain Markdown output, for when stdout is a pipe or a file."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import TYPE_CHECKING, Any, ParamSpec

from council.config.endpoint_settings import EndpointSettings
from council.engine.model import Attachment, CallOutcome, CallSpec, ResumeState, VoteResult
from council.engine.plan import DeliberationPlan, OraclePlan, estimated_input_tokens
from council.engine.results import DeliberationResult, OracleResult, RoundResult
from council.render.agreement import agreement_markdown
from council.render.ballots import (
    BALLOT_COLUMNS,
    RANKING_COLUMNS,
    TALLY_COLUMNS,
    ballot_rows,
    ranking_rows,
    tally_rows,
    unread_reviews,
    vote_headline,
    vote_notes,
    where_ranked,
)
from council.render.format import (
    ROUND_COLUMNS,
    TIMELINE_COLUMNS,
    answer_metrics,
    answer_status,
    count_label,
    deliberation_footer,
    failure_detail,
    member_where,
    quiet_selection,
    round_rows,
    run_footer,
    seconds,
    synthesis_title,
    timeline_rows,
)
from council.render.safe_text import strip_controls

if TYPE_CHECKING:
    from council.config.settings import ResolvedSettings

__all__ = [
    "ResumeOutline",
    "deliberation_markdown",
    "deliberation_plan_markdown",
    "oracle_markdown",
    "plan_markdown",
    "resume_outline",
    "resume_plan_markdown",
    "sources_markdown",
]


P = ParamSpec("P")


def _for_people(render: Callable[P, str]) -> Callable[P, str]:
    """The one exit of this module: whatever it writes, answers and files included, is
    shown to a person (piped, `-q`, `council show`), so it leaves without control
    sequences. Markdown syntax itself needs none."""

    @wraps(render)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> str:
        return strip_controls(render(*args, **kwargs))

    return wrapper


def _failure_line(failure: CallOutcome) -> str:
    return f"- **{failure.persona}**: {failure_detail(failure)}"


def _answer_block(heading: str, answer: CallOutcome, where: str | None = None) -> str:
    return f"{heading}\n\n_{answer_metrics(answer, where)}_\n\n{answer.text.strip()}"


def _quiet(answers: list[CallOutcome]) -> str:
    return "\n\n".join(f"## {a.persona}\n\n{a.text.strip()}" for a in answers) + "\n"


@_for_people
def oracle_markdown(result: OracleResult, *, quiet: bool = False) -> str:
    """Each answer under its persona's name, failures, the synthesis, and a footer."""
    if quiet:
        one, answers = quiet_selection(result)
        if one is not None:
            return one.strip() + "\n"
        if len(result.plan.personas) == 1 and answers:
            return answers[0].text.strip() + "\n"
        return _quiet(answers)
    plan = result.plan
    if result.vote is not None:  # the raw ballots are in --json; here, as read
        blocks = vote_blocks(result.vote, len(plan.personas))
    else:
        blocks = [
            _answer_block(f"## {a.persona}", a, where_ranked(result, a.persona))
            for a in result.answers
        ]
    # Ctrl-C in the middle of an answer: what had streamed, marked as such.
    blocks += [
        _answer_block(f"## {a.persona} (interrupted)", a) for a in result.failures if a.partial
    ]
    if result.ranking is not None:
        blocks += ranking_blocks(result)
    failures = [f for f in result.failures if not f.partial]
    if failures:
        blocks.append("## Did not answer\n\n" + "\n".join(_failure_line(f) for f in failures))
    synthesis = result.synthesis
    if synthesis is not None and synthesis.answered:
        # "Synthesis", or "Synthesis of judge's answer alone" when only one answered.
        name = synthesis_title(result, synthesis).split(" · ")[0]
        name = name[:1].upper() + name[1:]
        who = synthesis.persona
        arbiter = result.plan.arbiter
        if arbiter is not None and synthesis.persona != arbiter.name:
            who += f", for the arbiter {arbiter.name}"
        title = f"## {name} ({who})"
        block = _answer_block(title, synthesis, member_where(plan, synthesis.persona))
        degraded = result.coverage.line()
        if degraded is not None:  # a degraded council's answer says so under its heading
            head, _, rest = block.partition("\n\n")
            block = f"{head}\n\n**{degraded}**\n\n{rest}"
        blocks.append(block)
        if result.agreement_map is not None:
            blocks.append(agreement_markdown(result.agreement_map))
    elif synthesis is not None:
        blocks.append("## Synthesis failed\n\n" + _failure_line(synthesis))
    blocks.append(f"---\n\n_{run_footer(result)}_")
    return "\n\n".join(blocks) + "\n"


def vote_blocks(vote: VoteResult, voters: int) -> list[str]:
    """The vote: who won (a tie as a tie), notes, the tally and every ballot."""
    headline = " ".join([vote_headline(vote, voters), *vote_notes(vote)])
    return [
        "# Vote",
        f"**{headline}**",
        "## Tally\n\n" + _table(TALLY_COLUMNS, tally_rows(vote)),
        "## Ballots\n\n" + _table(BALLOT_COLUMNS, ballot_rows(vote)),
    ]


def ranking_blocks(result: OracleResult) -> list[str]:
    """The peer ranking: the aggregate order with points, each reviewer's places."""
    ranking = result.ranking
    if ranking is None:
        return []
    lines = [
        "## Peer ranking (anonymous, Borda count)",
        _table(RANKING_COLUMNS, ranking_rows(ranking)),
    ]
    unread = unread_reviews(ranking)
    if unread:
        lines.append(f"_No ranking could be read from: {', '.join(unread)}._")
    lines += [_failure_line(f) for f in result.review_failures]
    if result.bias is not None:  # imported here: only --rank has a bias report
        from council.render.bias import bias_line

        lines.append(f"_{bias_line(result.bias)}._")
    return lines


def _endpoint_lines(endpoint: EndpointSettings, max_concurrency: int) -> list[str]:
    e = endpoint
    key = (
        f"${e.api_key_env} ({'set' if e.api_key else 'not set'})" if e.api_key_env else "none sent"
    )
    if e.api_key_name:  # a profile's `api_key:`, sent when its variable is empty
        unset = f"; ${e.api_key_env} not set" if e.api_key_env else ""
        key = {
            "stored": f"stored key {e.api_key_name}{unset}",
            "env": f"{key}; it wins over stored key {e.api_key_name}",
        }.get(e.key_from, f"stored key {e.api_key_name} (not stored{unset})")
    return [
        f"- endpoint: {e.host} ({e.base_url}; {e.sources.get('base_url', 'default')})",
        f"- model: {e.model} ({e.sources.get('model', 'default')})",
        f"- key: {key}",
        f"- limits: timeout {seconds(e.timeout)} · first token {seconds(e.first_token_timeout)}"
        f" · retries {e.retries} · max concurrency {max_concurrency}",
    ]


def _file_block(attachment: Attachment) -> str:
    """An attached file as prompts.py quotes it in a message."""
    return f'<file path="{attachment.path}">\n{attachment.text.rstrip(chr(10))}\n</file>'


def _without_files(content: str, attachments: tuple[Attachment, ...]) -> str:
    """A message with each attached file's text replaced by a pointer to where it is shown."""
    for attachment in attachments:
        pointer = (
            f'<file path="{attachment.path}">\n(its {len(attachment.text):,} characters, '
            'shown once under "Attached files" below)\n</file>'
        )
        content = content.replace(_file_block(attachment), pointer)
    return content


def _files_markdown(attachments: tuple[Attachment, ...]) -> list[str]:
    """Every attached file once: every call above carries it where it points to it."""
    if not attachments:
        return []
    lines = ["", "## Attached files (in every call above)"]
    for attachment in attachments:
        text = attachment.text.rstrip("\n")
        lines += ["", f"### {attachment.path}", "", "````text", text, "````"]
    return lines


def _calls_markdown(calls: list[CallSpec], attachments: tuple[Attachment, ...]) -> list[str]:
    """Each call's settings and messages; the attached files once, after them."""
    lines: list[str] = []
    if attachments:
        lines.append(f"- context: {', '.join(a.path for a in attachments)}")
    for call in calls:
        settings = [f"model {call.model}"]
        if call.temperature is not None:
            settings.append(f"temperature {call.temperature:g}")
        if call.max_tokens is not None:
            settings.append(f"max_tokens {call.max_tokens}")
        if call.response_format is not None:
            settings.append(f"response_format {call.response_format['type']}")
        for key, value in call.options.items():  # -o KEY VALUE, as the body will carry them
            settings.append(f"{key} {value if isinstance(value, str) else json.dumps(value)}")
        role = {"persona": "", "reviewer": " (ranking)"}.get(call.role, " (verdict)")
        title = f"{call.persona}{role}"
        if call.round > 1 or call.role == "arbiter":
            title = f"round {call.round}: {title}"
        lines += ["", f"## {title} ({', '.join(settings)})"]
        for message in call.messages:
            content = _without_files(message["content"], attachments)
            lines += ["", f"### {message['role']}", "", "````text", content, "````"]
    return lines + _files_markdown(attachments)


def _voting_lines(plan: OraclePlan) -> list[str]:
    """--vote and --rank in a dry run: what each adds to the calls below."""
    lines: list[str] = []
    if plan.vote:
        choices = ", ".join(plan.choices) if plan.choices else "free answers, grouped"
        rule = plan.vote_stop
        named = rule.name + (f" {rule.threshold:g}" if rule.threshold is not None else "")
        stop = f"stops on the {named} rule" if plan.vote_early_stop else "no early stop"
        if plan.vote_weighting == "confidence":
            stop += "; ballots weighed by their confidence"
        if plan.arbiter is not None:
            stop += "; then the arbiter picks the most consistent answer (not a synthesis)"
        lines.append(f"- vote: every persona gives a ballot ({choices}); {stop}")
    if plan.rank:
        lines.append(
            "- rank: then each persona ranks the others' answers as Response A, B, ..., "
            f"shuffled for each (seed {plan.rank_seed}); the first reviewer's call below "
            "shows the shape, with placeholders"
        )
        lines.append(
            f"- bias checks: {plan.rank_position_checks} reviewer(s) also rank in the reverse "
            f"order; a {plan.rank_self_check_rate:g} share also rank their own answer, unseen "
            "by the ranking (round 3, at the same time)"
        )
    return lines


def _escalation_lines(plan: OraclePlan | DeliberationPlan) -> list[str]:
    """--escalate in a dry run: who is asked first, and when the rest are."""
    spec = plan.escalation
    if spec is None:
        return []
    shadow = " (this run is a shadow run: the full council runs anyway)" if spec.shadow else ""
    return [
        f"- escalate: {', '.join(spec.panel)} first; the rest only if not all state one "
        f"answer with confidence ≥ {spec.threshold:g}{shadow}"
    ]


@_for_people
def plan_markdown(plan: OraclePlan) -> str:
    """The plan for `--dry-run`: where it would go, with what, and the exact messages."""
    estimate = estimated_input_tokens(plan.calls)
    lines = [
        "# Dry run: nothing was sent",
        "",
        *_endpoint_lines(plan.endpoint, plan.max_concurrency),
        f"- personas: {', '.join(p.name for p in plan.personas)}",
        f"- synthesis: {plan.arbiter.name if plan.arbiter else 'no'}",
        *_voting_lines(plan),
        *_escalation_lines(plan),
        f"- estimate: ~{estimate:,} input tokens over {count_label(len(plan.calls), 'call')}"
        + (" (plus one synthesis call)" if plan.arbiter else ""),
    ]
    calls = list(plan.calls)
    if plan.rank:
        example = [(label, "(an answer of another member)") for label in ("A", "B")]
        calls.append(plan.review_call(plan.personas[0], example))
    lines += _calls_markdown(calls, plan.attachments)
    return "\n".join(lines) + "\n"


@_for_people
def deliberation_plan_markdown(plan: DeliberationPlan) -> str:
    """A deliberation's dry run: settings, round 1 exactly, and the shape of later prompts."""
    calls = plan.example_calls()
    first = calls[: len(plan.personas)]
    estimate = estimated_input_tokens(first)
    budget = "no limit" if plan.max_wasted_tokens is None else f"{plan.max_wasted_tokens:,}"
    schedule = (
        f"speculative (wasted tokens: {budget})"
        if plan.speculative
        else "sequential: each round after the previous verdict"
    )
    lines = [
        "# Dry run: nothing was sent",
        "",
        *_endpoint_lines(plan.endpoint, plan.max_concurrency),
        f"- personas: {', '.join(p.name for p in plan.personas)}",
        f"- arbiter: {plan.arbiter.name}"
        + (
            f" (then {', '.join(p.name for p in plan.arbiter_fallback)} if it cannot)"
            if plan.arbiter_fallback
            else ""
        ),
        f"- rounds: at most {plan.rounds}, ending at a converged verdict with "
        f"confidence ≥ {plan.threshold:g}",
        f"- schedule: {schedule}",
        *_escalation_lines(plan),
        f"- estimate: ~{estimate:,} input tokens for round 1 ({count_label(len(first), 'call')}); "
        "later rounds also carry the previous round's answers",
        "",
        "Round 1's calls are exact; the round-2 call and the verdict below show",
        "the shape of later prompts, with placeholders for the answers.",
        *_calls_markdown(calls, plan.attachments),
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ResumeOutline:
    """What `council resume ID` would do: the recorded answers it reuses, by round (the
    names, and whether that round's verdict is there), the round it starts asking in,
    and the calls of that round it asks (exact: they quote the answers before them)."""

    run_id: str
    reused: dict[int, tuple[list[str], bool]]
    start: int
    calls: list[CallSpec]
    asks_verdict: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "reused": [
                {"round": n, "answers": names, "verdict": verdict}
                for n, (names, verdict) in self.reused.items()
            ],
            "round": self.start,
            "asked": [c.persona for c in self.calls],
            "asks_verdict": self.asks_verdict,
            "calls": [c.to_dict() for c in self.calls],
        }


def resume_outline(plan: DeliberationPlan, resume: ResumeState) -> ResumeOutline:
    """The engine reuses each round's recorded answers and verdict and asks the rest:
    the first round with something missing is where the resume starts."""
    names = [p.name for p in plan.personas]
    recorded = sorted(set(resume.answers) | set(resume.verdicts))
    start = next(
        (
            n
            for n in recorded
            if set(names) - set(resume.answers.get(n, {})) or n not in resume.verdicts
        ),
        (recorded[-1] + 1) if recorded else 1,
    )
    reused = {
        n: ([name for name in names if name in resume.answers.get(n, {})], n in resume.verdicts)
        for n in recorded
    }
    answers = resume.answers.get(start, {})
    earlier = resume.answers.get(start - 1, {})
    previous = [(name, earlier[name].text or "") for name in names if name in earlier]
    failed = [name for name in names if name not in earlier]
    calls = [
        plan.persona_call(p, start, previous, failed or None)
        for p in plan.personas
        if p.name not in answers
    ]
    return ResumeOutline(resume.run_id, reused, start, calls, start not in resume.verdicts)


def resume_plan_markdown(plan: DeliberationPlan, resume: ResumeState) -> str:
    """`council resume ID --dry-run`: what the recorded run gives back, what is asked again,
    and the calls it starts with, exactly."""
    outline = resume_outline(plan, resume)
    reused = [
        f"round {n}: {', '.join(got) or 'no answer'}{' and the verdict' if verdict else ''}"
        for n, (got, verdict) in outline.reused.items()
    ]
    start = outline.start
    asked = [c.persona for c in outline.calls] + (["the verdict"] if outline.asks_verdict else [])
    later = (
        f"; then rounds {start + 1} to {plan.rounds} as the verdicts decide"
        if start < plan.rounds
        else ""
    )
    lines = [
        f"# Dry run of resuming run {resume.run_id}: nothing was sent",
        "",
        *_endpoint_lines(plan.endpoint, plan.max_concurrency),
        f"- personas: {', '.join(p.name for p in plan.personas)}",
        f"- arbiter: {plan.arbiter.name}",
        f"- reused from run {resume.run_id}: {'; '.join(reused) or 'nothing'}",
        f"- asked again: round {start}: {', '.join(asked) or 'nothing'}{later}",
        "",
        f"Round {start}'s calls to ask are below; later prompts quote the answers they get.",
        *_calls_markdown(outline.calls, plan.attachments),
    ]
    return "\n".join(lines) + "\n"


def _table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _round_answers(kept: RoundResult, plan: DeliberationPlan) -> list[str]:
    blocks = [
        _answer_block(f"### {a.persona}", a, member_where(plan, a.persona)) for a in kept.answers
    ]
    blocks += [_failure_line(f) for f in kept.failures]
    return blocks


@_for_people
def deliberation_markdown(result: DeliberationResult, *, quiet: bool = False) -> str:
    """The answer and dissent, each round in brief, the final answers, and the timeline."""
    last = result.final_round
    if quiet:
        one, answers = quiet_selection(result)
        if one is not None:
            return one.strip() + "\n"
        return _quiet(answers) if last is not None else ""
    answer = result.answer
    blocks = ["# Answer", f"_{answer_status(result)}_"]
    judged = result.verdict_round
    if answer is not None:
        blocks.append(answer.strip())
    if judged is not None and judged.verdict is not None and judged.verdict.dissent:
        blocks.append("## Dissent\n\n" + "\n".join(f"- {d}" for d in judged.verdict.dissent))
    if result.agreement_map is not None:
        blocks.append(agreement_markdown(result.agreement_map))
    if result.rounds or result.failed_round:
        blocks.append("## Rounds\n\n" + _table(ROUND_COLUMNS, round_rows(result)))
    if last is not None:
        blocks.append(f"## Answers in round {last.number}")
        blocks += _round_answers(last, result.plan)
    if result.timeline:
        blocks.append("## Timeline\n\n" + _table(TIMELINE_COLUMNS, timeline_rows(result)))
    blocks.append(f"---\n\n_{deliberation_footer(result)}_")
    return "\n\n".join(blocks) + "\n"


@_for_people
def sources_markdown(settings: ResolvedSettings) -> str:
    """Where each resolved setting came from: flag, preset, env, config file or default."""
    lines = ["", "## Where each setting came from", ""]
    from council.render.display import display_value

    for key in sorted(settings.sources):
        shown = display_value(settings.values.get(key))
        lines.append(f"- {key}: {shown} ({settings.sources[key]})")
    return "\n".join(lines) + "\n"
