"""What the renderers share: durations, token counts, metric and footer lines, table rows.

Also what a report shows where the terminal and Markdown output must agree (what
`--quiet` prints, how a failure reads); each renderer decides only how it looks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from council.engine.model import CallOutcome, StopReason
from council.engine.plan import DeliberationPlan, OraclePlan
from council.engine.results import DeliberationResult, OracleResult, RoundResult
from council.errors import ErrorKind
from council.render.costs import cost_note

if TYPE_CHECKING:
    from council.engine.escalation import EscalationResult

__all__ = [
    "CALL_COLUMNS",
    "CUT_NOTES",
    "ROUND_COLUMNS",
    "TIMELINE_COLUMNS",
    "answer_metrics",
    "answer_status",
    "call_rows",
    "count_label",
    "count_of",
    "deliberation_footer",
    "deliberation_warnings",
    "escalation_note",
    "failure_detail",
    "fitted_note",
    "fitted_warnings",
    "limit_note",
    "prompt_cut_warnings",
    "queued_note",
    "quiet_selection",
    "round_rows",
    "run_footer",
    "seconds",
    "speculation_note",
    "synthesis_title",
    "timeline_rows",
    "tokens",
]


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value >= 60 and value == int(value):
        return f"{value:.0f} s"  # limits such as a 120 s timeout
    return f"{value:.2f} s"


def tokens(value: int | None) -> str:
    """A token count, or '?' when the endpoint did not report it."""
    return "?" if value is None else f"{value:,}"


def count_label(n: int, noun: str, plural: str | None = None) -> str:
    """ "1 call", "2 calls", "0 calls"; `plural` where adding an s is wrong ("retries")."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {plural or noun + 's'}"


def count_of(done: int, total: int, noun: str) -> str:
    """ "1 of 1 persona", "2 of 3 personas": the noun agrees with the total."""
    return f"{done} of {count_label(total, noun)}"


# What an answer's finish reason says when the answer may not be whole.
# "deadline" is council's own: text still streaming at --timeout, kept as the answer.
CUT_NOTES = {
    "length": "cut at max_tokens",
    "content_filter": "stopped by content filter",
    "deadline": "cut at the deadline",
}


def models_and_hosts(plan: OraclePlan | DeliberationPlan) -> str:
    """The "model @ host" of every member's calls, each once, in the order of the members."""
    members = [*plan.personas, *([plan.arbiter] if plan.arbiter is not None else [])]
    if not members:
        return f"{plan.endpoint.model} @ {plan.endpoint.host}"
    places = dict.fromkeys(f"{m} @ {h}" for m, h in (plan.where(p.name) for p in members))
    return ", ".join(places)


def member_where(plan: OraclePlan | DeliberationPlan, persona: str) -> str | None:
    """ "model @ host" for a member of a council whose members use several; else None
    (the footer says it once for everyone)."""
    if not plan.several_wheres:
        return None
    model, host = plan.where(persona)
    return f"{model} @ {host}"


def answer_metrics(answer: CallOutcome, where: str | None = None) -> str:
    """An answer's metrics line (the rich subtitle, the Markdown line); says if it was cut,
    and `where` it was asked (model @ host) when the council has several."""
    parts = [where] if where else []
    parts += [seconds(answer.latency), f"first token {seconds(answer.ttft)}"]
    parts.append(f"{tokens(answer.tokens_in)} → {tokens(answer.tokens_out)} tokens")
    if answer.retries:
        parts.append(count_label(answer.retries, "retry", "retries"))
    if answer.finish_reason in CUT_NOTES:
        parts.append(CUT_NOTES[answer.finish_reason])
    if answer.prompt_cut_by_server:
        parts.append("prompt cut by the server?")
    if answer.fitted is not None:
        parts.append(fitted_note(answer))
    return " · ".join(parts)


def fitted_note(outcome: CallOutcome) -> str:
    """How a call's prompt was cut to fit its context window ("" when it was not)."""
    fitted = outcome.fitted
    if fitted is None:
        return ""
    return f"prompt fitted to a {fitted.window:,}-token context ({fitted.cut_words:,} words cut)"


def fitted_warnings(outcomes: list[tuple[str, CallOutcome]]) -> list[str]:
    """One line for the calls whose prompts were cut to fit, so nothing is cut silently."""
    cut = [(where, o) for where, o in outcomes if o.fitted is not None]
    if not cut:
        return []
    words = sum(o.fitted.cut_words for _, o in cut if o.fitted is not None)
    window = max(o.fitted.window for _, o in cut if o.fitted is not None)
    names = ", ".join(where for where, _ in cut)
    return [
        f"{count_label(len(cut), 'prompt')} cut to fit a {window:,}-token context "
        f"({words:,} quoted words left out): {names}"
    ]


def prompt_cut_warnings(outcomes: list[tuple[str, CallOutcome]]) -> list[str]:
    """One line, once per run, for the calls whose server counted far less prompt than
    was sent: the answers may be about text the model never saw."""
    cut = [(where, o) for where, o in outcomes if o.prompt_cut_by_server]
    if not cut:
        return []
    first = cut[0][1]
    names = ", ".join(where for where, _ in cut)
    return [
        f"warning: the server counted {tokens(first.tokens_in)} prompt tokens where council "
        f"estimated about {tokens(first.prompt_estimate)}: the server probably cut the "
        f"prompt: Ollama's num_ctx? ({names}); later calls are fitted to "
        f"{tokens(first.tokens_in)} tokens (set context_window: or the server's context size)"
    ]


def failure_detail(failure: CallOutcome) -> str:
    """Why a call has no answer: its error kind, any retries, and the message."""
    retries = (
        f" after {count_label(failure.retries, 'retry', 'retries')}" if failure.retries else ""
    )
    return f"{failure.error_kind}{retries} — {failure.message}"


def quiet_selection(
    result: OracleResult | DeliberationResult,
) -> tuple[str | None, list[CallOutcome]]:
    """What `--quiet` shows: the council's one answer if it has one, else these answers.

    An oracle's one answer is its synthesis; a deliberation's is the verdict's, and
    without one, the answers of its last kept round are shown.
    """
    if isinstance(result, OracleResult):
        return result.answer, result.answers
    last = result.final_round
    return result.answer, last.answers if last is not None else []


def run_footer(result: OracleResult) -> str:
    """wall time vs. the sum of call times: what running them concurrently saved."""
    plan = result.plan
    answered = len(result.answers)
    parts = [f"{count_of(answered, len(plan.personas), 'persona')} answered"]
    if result.interrupted:
        parts[0] += " (interrupted)"
    if result.vote is not None and result.vote.stopped:
        parts[0] += f" ({len(result.vote.stopped)} stopped: the vote was decided)"
    parts.append(f"wall {seconds(result.wall)}")
    total = result.sum_of_calls
    if answered > 1 and result.wall > 0:
        parts.append(f"sum of calls {seconds(total)} ({total / result.wall:.1f}× less waiting)")
    parts.append(models_and_hosts(plan))
    parts += [note for note in [cost_note(result)] if note]
    if result.escalation is not None:
        parts.append(escalation_note(result.escalation))
    queued = queued_note(plan.max_concurrency, len(plan.calls))
    notes = [queued] if queued else []
    return " · ".join([*parts, *notes, *_limit_notes(result.limit_changes)])


def escalation_note(escalation: EscalationResult) -> str:
    """What --escalate did: the panel's decision, and the calls and cost it saved (basis)."""
    panel = ", ".join(escalation.panel)
    decision = escalation.decision
    why = decision.reason if decision is not None else "no decision"
    full = escalation.calls_full
    if escalation.escalation.shadow and decision is not None and decision.agreed:
        verdict = "changed" if escalation.changed else "kept"
        return (
            f"escalation: shadow run, the panel ({panel}) agreed ({why}); "
            f"the full council {verdict} its answer"
        )
    if escalation.escalated:
        return f"escalation: the panel ({panel}) was in doubt ({why}); the full council ran"
    cost = escalation.cost_saved_usd
    money = f", ≈${cost:.4f}" if cost is not None else ""
    return (
        f"escalation: the panel ({panel}) agreed ({why}): "
        f"{escalation.calls_saved} of {full} calls saved{money} ({escalation.basis})"
    )


def limit_note(host: str, new: int, reason: str) -> str:
    """An endpoint's limit change, as a person reads it."""
    return f"{host}: {count_label(new, 'call')} at a time after {reason}"


def _limit_notes(changes: list[dict[str, Any]]) -> list[str]:
    """The last limit change of each endpoint (what the run ended with)."""
    last = {c["host"]: c for c in changes}
    return [limit_note(c["host"], c["new"], c["reason"]) for c in last.values()]


def queued_note(max_concurrency: int, calls_at_once: int) -> str:
    """Say so when calls had to wait for a slot (a local server takes one at a time)."""
    if max_concurrency >= calls_at_once:
        return ""
    if max_concurrency == 1:
        return "max concurrency 1: calls were queued and ran one at a time"
    return f"max concurrency {max_concurrency}: some calls were queued"


def synthesis_title(result: OracleResult, synthesis: CallOutcome) -> str:
    """ "synthesis · judge"; of a degraded council it says so: a synthesis of one member's
    answer is that member's view ("synthesis of skeptic's answer alone · judge")."""
    coverage = result.coverage
    if coverage.alone and result.answers:
        title = f"synthesis of {result.answers[0].persona}'s answer alone · {synthesis.persona}"
    else:
        title = f"synthesis · {synthesis.persona}"
    arbiter = result.plan.arbiter
    if arbiter is not None and synthesis.persona != arbiter.name:
        title += f" (for the arbiter {arbiter.name})"
    return title


def answer_status(result: DeliberationResult, *, answers_at: str = "below") -> str:
    """One line on where the council's answer comes from and how settled it is.

    `answers_at`: where the last round's answers are shown when there is no verdict
    ("below" in Markdown, "above" in a terminal, where the answer comes last).
    """
    judged = result.verdict_round
    last = result.final_round
    total = result.plan.rounds
    unanimous = result.unanimous_round
    if unanimous is not None:
        return (
            f"Unanimous in round {unanimous.number} of {total}: every persona chose "
            f"{result.answer}, so the arbiter was not asked. Their answers are {answers_at}."
        )
    panel = result.panel_round
    if panel is not None and result.escalation is not None:
        names = ", ".join(result.escalation.panel)
        return (
            f"The first panel ({names}) agreed in round 1 (--escalate): its answer stands, "
            f"and nobody else was asked. Its answers are {answers_at}."
        )
    if judged is None or judged.verdict is None:
        if result.interrupted:
            return f"Interrupted before any verdict: the last round's answers are {answers_at}."
        return f"No verdict: the last round's answers are {answers_at}."
    verdict = judged.verdict
    confidence = f"confidence {verdict.confidence:.2f}"
    if result.stop_reason == StopReason.CONVERGED:
        text = f"Converged in round {judged.number} of {total} ({confidence})."
    elif verdict.problem:
        text = f"The arbiter's verdict on round {judged.number} could not be read; it is shown raw."
    elif judged.verdict.converged:
        text = (
            f"Converged in round {judged.number} of {total}, but with {confidence}, "
            f"below the threshold {result.plan.threshold:g}."
        )
    else:
        text = f"Not converged after round {judged.number} of {total} ({confidence})."
    if last is not None and last.number != judged.number:
        text += f" This synthesis is of round {judged.number}; round {last.number} had no verdict."
    judge = judged_by(judged, result.plan.arbiter.name)
    if judge is not None:
        text += f" Judged by {judge}: the arbiter {result.plan.arbiter.name} could not."
    if result.interrupted:
        text += " The council was interrupted."
    degraded = result.coverage.line()
    if degraded is not None:  # the answer rests on some members only: said with it
        text += f" {degraded[0].upper()}{degraded[1:]}."
    return text


def judged_by(kept: RoundResult, arbiter: str) -> str | None:
    """The fallback persona that gave a round's verdict; None when the arbiter did."""
    judge = kept.arbiter.persona if kept.arbiter is not None else None
    return judge if judge is not None and judge != arbiter else None


def _verdict_cell(round_number: int, result: DeliberationResult) -> str:
    kept = next(r for r in result.rounds if r.number == round_number)
    if kept.arbiter is not None and not kept.arbiter.answered:
        return f"arbiter failed ({kept.arbiter.error_kind})"
    if kept.verdict is None:
        unanimous = result.unanimous_round
        if unanimous is not None and unanimous.number == round_number:
            return f"unanimous ballots: {result.answer} (not judged)"
        if result.panel_round is not None:
            return "the first panel agreed (not judged)"
        return "–"
    if kept.verdict.problem:
        return "unreadable verdict"
    state = "converged" if kept.verdict.converged else "not converged"
    return f"{state}, {kept.verdict.confidence:.2f}"


ROUND_COLUMNS = ("round", "verdict", "positions", "did not answer")


def round_rows(result: DeliberationResult) -> list[tuple[str, ...]]:
    """A row per kept round (and the round in which everyone failed, if any)."""
    rows: list[tuple[str, ...]] = []
    for kept in result.rounds:
        positions = ", ".join(f"{name} {label}" for name, label in kept.positions.items())
        missing = ", ".join(f"{f.persona} ({f.error_kind})" for f in kept.failures) or "–"
        rows.append((str(kept.number), _verdict_cell(kept.number, result), positions, missing))
    failed = result.failed_round
    if failed is not None:
        missing = ", ".join(f"{f.persona} ({f.error_kind})" for f in failed.failures)
        rows.append((str(failed.number), "not judged", "nobody answered", missing))
    return rows


CALL_COLUMNS = ("call", "first token", "latency", "tokens", "retries", "outcome")


def call_rows(result: OracleResult) -> list[tuple[str, ...]]:
    """A row per call of an oracle (the personas', then the synthesis), for `--verbose`;
    a call names its model @ host when the council's members use several."""
    plan = result.plan
    synthesis = result.synthesis
    reviews = list(result.reviews.values())  # --rank's calls, after the answers
    checks = list(result.checks.values())  # and its bias checks, beside them
    calls = [
        *result.answers,
        *result.failures,
        *reviews,
        *checks,
        *([synthesis] if synthesis is not None else []),
    ]
    rows: list[tuple[str, ...]] = []
    for call in calls:
        who = f"{call.persona} (synthesis)" if call is synthesis else call.persona
        if call.role == "reviewer":
            who = f"{call.persona} (ranking)"
        elif call.role == "check":
            who = f"{call.persona} (bias check)"
        where = member_where(plan, call.persona)
        if where is not None:
            who += f" · {where}"
        outcome = "answered" if call.answered else call.error_kind or "failed"
        if call.answered and call.finish_reason in CUT_NOTES:
            outcome = CUT_NOTES[call.finish_reason]
        rows.append(
            (
                who,
                seconds(call.ttft),
                seconds(call.latency),
                f"{tokens(call.tokens_in)} → {tokens(call.tokens_out)}",
                str(call.retries),
                outcome,
            )
        )
    return rows


TIMELINE_COLUMNS = ("call", "round", "start", "end", "schedule", "outcome", "tokens")


def timeline_rows(result: DeliberationResult) -> list[tuple[str, ...]]:
    """Every call that reached the endpoint, in start order, times from the run's start."""
    rows: list[tuple[str, ...]] = []
    for call in result.timeline:
        who = call.persona if call.role == "persona" else f"{call.persona} (verdict)"
        rows.append(
            (
                who,
                str(call.round),
                f"{call.start:.2f} s",
                f"{call.end:.2f} s",
                "speculative" if call.speculative else "in order",
                call.status,
                str(call.tokens_out),
            )
        )
    return rows


def speculation_note(saved: float, sequential: float) -> str:
    """What speculation did to the wall time: saved some, cost some, or neither."""
    if round(saved * 1000) > 0:
        return f"saved {seconds(saved)} ({saved / sequential * 100:.0f}%)"
    if round(saved * 1000) < 0:
        return f"speculation cost {seconds(-saved)}"  # one slot, or a verdict that came late
    return "speculation saved no time"


def deliberation_footer(result: DeliberationResult) -> str:
    """Wall time against the same kept calls run one round and one verdict at a time."""
    plan = result.plan
    parts = [f"{count_label(len(result.rounds), 'round')} kept", f"wall {seconds(result.wall)}"]
    sequential = result.sequential_estimate
    if result.rounds and sequential > 0:
        saved = sequential - result.wall
        parts.append(f"sequential {seconds(sequential)}")
        if plan.speculative:
            parts.append(speculation_note(saved, sequential))
    if plan.speculative:
        wasted = f"wasted {result.wasted_tokens:,} tokens"
        if result.discarded_rounds:
            numbers = ", ".join(str(n) for n in result.discarded_rounds)
            wasted += f" (speculative round {numbers} discarded)"
        parts.append(wasted)
    parts.append(models_and_hosts(plan))
    parts += [note for note in [cost_note(result)] if note]
    if result.escalation is not None:
        parts.append(escalation_note(result.escalation))
    queued = queued_note(plan.max_concurrency, len(plan.personas) + int(plan.speculative))
    notes = [queued] if queued else []
    return " · ".join([*parts, *notes, *_limit_notes(result.limit_changes)])


def deliberation_warnings(result: DeliberationResult) -> list[str]:
    """What the user should know happened, one line each, for stderr."""
    lines: list[str] = []
    for kept in result.rounds:
        for failure in kept.failures:
            if failure.error_kind != ErrorKind.CANCELLED:
                lines.append(
                    f"{failure.persona} failed in round {kept.number} ({failure.error_kind}): "
                    f"{failure.message}; the council went on without it"
                )
        if kept.verdict is not None and kept.verdict.problem:
            lines.append(
                f"warning: the arbiter's verdict on round {kept.number} could not be read "
                f"({kept.verdict.problem}); counted as not converged"
            )
    last = result.final_round
    if result.stop_reason == StopReason.ALL_FAILED and result.failed_round and last:
        lines.append(
            f"every persona failed in round {result.failed_round.number}; "
            f"showing round {last.number} and its verdict"
        )
    arbiter = last.arbiter if last is not None else None
    if (
        result.stop_reason == StopReason.ARBITER_FAILED
        and arbiter is not None
        and not arbiter.answered
    ):
        assert last is not None
        lines.append(
            f"the arbiter failed on round {last.number} ({arbiter.error_kind}): "
            f"{arbiter.message}; showing that round's answers"
        )
    outcomes = [
        (f"{o.persona} (round {kept.number})", o)
        for kept in result.rounds
        for o in [*kept.outcomes.values(), *([kept.arbiter] if kept.arbiter else [])]
    ]
    lines += fitted_warnings(outcomes)
    lines += prompt_cut_warnings(outcomes)
    if result.speculation_skipped:
        numbers = ", ".join(str(n) for n in result.speculation_skipped)
        lines.append(
            f"round {numbers} ran after its verdict, not speculatively: "
            f"it could have wasted more than --max-wasted-tokens {result.plan.max_wasted_tokens}"
        )
    if result.interrupted:
        judged = result.verdict_round
        best = (
            f"the synthesis of round {judged.number}"
            if judged
            else "the last round's answers"
            if last
            else "nothing had finished"
        )
        lines.append(f"interrupted; showing {best}")
    return lines
