"""Plain Markdown output, for when stdout is a pipe or a file."""

from __future__ import annotations

from council.plan import OraclePlan, estimate_tokens
from council.render.format import answer_metrics, run_footer, seconds
from council.results import Answer, Failure, OracleResult

__all__ = ["oracle_markdown", "plan_markdown"]


def _failure_line(failure: Failure) -> str:
    retries = f" after {failure.retries} retries" if failure.retries else ""
    return f"- **{failure.persona}**: {failure.error_kind}{retries} — {failure.message}"


def oracle_markdown(result: OracleResult, *, quiet: bool = False) -> str:
    """Each answer under its persona's name, failures, the synthesis, and a footer."""
    blocks: list[str] = []
    synthesis = result.synthesis
    if quiet:
        if isinstance(synthesis, Answer):
            return synthesis.text.strip() + "\n"
        answers = result.answers
        if len(result.plan.personas) == 1 and answers:
            return answers[0].text.strip() + "\n"
        return "\n\n".join(f"## {a.persona}\n\n{a.text.strip()}" for a in answers) + "\n"
    for answer in result.answers:
        blocks.append(f"## {answer.persona}\n\n_{answer_metrics(answer)}_\n\n{answer.text.strip()}")
    failures = result.failures
    if failures:
        blocks.append("## Did not answer\n\n" + "\n".join(_failure_line(f) for f in failures))
    if isinstance(synthesis, Answer):
        name = synthesis.persona
        blocks.append(
            f"## Synthesis ({name})\n\n_{answer_metrics(synthesis)}_\n\n{synthesis.text.strip()}"
        )
    elif isinstance(synthesis, Failure):
        blocks.append("## Synthesis failed\n\n" + _failure_line(synthesis))
    blocks.append(f"---\n\n_{run_footer(result)}_")
    return "\n\n".join(blocks) + "\n"


def plan_markdown(plan: OraclePlan) -> str:
    """The plan for `--dry-run`: where it would go, with what, and the exact messages."""
    e = plan.endpoint
    estimate = sum(estimate_tokens(c.messages) for c in plan.calls)
    key_state = "set" if e.api_key else "not set"
    lines = [
        "# Dry run: nothing was sent",
        "",
        f"- endpoint: {e.host} ({e.base_url}; {e.sources.get('base_url', 'default')})",
        f"- model: {e.model} ({e.sources.get('model', 'default')})",
        f"- key: ${e.api_key_env} ({key_state})",
        f"- personas: {', '.join(p.name for p in plan.personas)}",
        f"- synthesis: {plan.arbiter.name if plan.arbiter else 'no'}",
        f"- limits: timeout {seconds(e.timeout)} · first token {seconds(e.first_token_timeout)}"
        f" · retries {e.retries} · max concurrency {plan.max_concurrency}",
        f"- estimate: ~{estimate:,} input tokens over {len(plan.calls)} calls"
        + (" (plus one synthesis call)" if plan.arbiter else ""),
    ]
    if plan.attachments:
        lines.append(f"- context: {', '.join(a.path for a in plan.attachments)}")
    for call in plan.calls:
        settings = [f"model {call.model}"]
        if call.temperature is not None:
            settings.append(f"temperature {call.temperature:g}")
        if call.max_tokens is not None:
            settings.append(f"max_tokens {call.max_tokens}")
        lines += ["", f"## {call.persona} ({', '.join(settings)})"]
        for message in call.messages:
            lines += ["", f"### {message['role']}", "", "````text", message["content"], "````"]
    return "\n".join(lines) + "\n"
