"""Small formatting helpers shared by the renderers: durations, token counts, metric lines."""

from __future__ import annotations

from council.results import Answer, OracleResult

__all__ = ["answer_metrics", "count_label", "run_footer", "seconds", "tokens"]


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


def count_label(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def answer_metrics(answer: Answer) -> str:
    parts = [seconds(answer.latency), f"first token {seconds(answer.ttft)}"]
    parts.append(f"{tokens(answer.tokens_in)} → {tokens(answer.tokens_out)} tokens")
    if answer.retries:
        parts.append(count_label(answer.retries, "retry").replace("retrys", "retries"))
    return " · ".join(parts)


def run_footer(result: OracleResult) -> str:
    """wall time vs. the sum of call times: what running them concurrently saved."""
    plan = result.plan
    answered = len(result.answers)
    parts = [f"{answered} of {len(plan.personas)} personas answered"]
    if result.interrupted:
        parts[0] += " (interrupted)"
    parts.append(f"wall {seconds(result.wall)}")
    total = result.sum_of_calls
    if answered > 1 and result.wall > 0:
        parts.append(f"sum of calls {seconds(total)} ({total / result.wall:.1f}× less waiting)")
    parts.append(f"{plan.endpoint.model} @ {plan.endpoint.host}")
    return " · ".join(parts)
