"""`council judge`: a jury grades one answer against a rubric, or a pair of answers.

The jurors are the resolved council (`-p`, `-m` several times, a preset), asked with
the oracle's plans and engine: a rubric case is one oracle run whose calls ask for
JSON grades; a pair is two vote runs in turn (`--choices A,B,tie`, no early stop),
one with each answer first, on one endpoint pool. Not recorded in the history. What is
read, pooled and measured is `engine/jury.py`'s. `--gate` makes the verdict the exit code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path
from typing import Any

from council.app.ask import oracle_plan, resolve_council, serving_plan
from council.app.flags import AskFlags
from council.engine.jury import (
    APPROVE,
    PAIR_CHOICES,
    REJECT,
    JurorVerdict,
    JuryVerdict,
    criteria_of,
    pair_prompt,
    pair_verdict,
    pool_jury,
    read_grades,
    rubric_prompt,
    rubric_response_format,
)
from council.engine.plan import OraclePlan
from council.engine.results import OracleResult
from council.errors import EXIT_FAILURE, EXIT_OK, EXIT_PARTIAL, EXIT_REJECT, UsageError

__all__ = ["EXIT_REJECT", "gate_code", "judge"]

POOLS = ("majority", "mean")
MAX_FILE_BYTES = 1_000_000
# Shared options a jury has no use for: said so, rather than ignored.
_NOT_FOR_JUDGE = (
    ("vote", "--vote"),
    ("choices", "--choices"),
    ("rank", "--rank"),
    ("position_checks", "--position-checks"),  # a pair judges both orders already
    ("self_check_rate", "--self-check-rate"),
    ("dry_run", "--dry-run"),
    ("jsonl_output", "--jsonl"),
)


def _read(path: Path, what: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UsageError(
            f"cannot read {what} {path}: {error.strerror or error}", "check the path"
        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise UsageError(f"{what} {path} is over 1 MB", "give a shorter file")
    return data.decode("utf-8", errors="replace")


def _rubric_text(rubric: str) -> str:
    path = Path(rubric)
    return _read(path, "the rubric") if "\n" not in rubric and path.is_file() else rubric


def gate_code(verdict: JuryVerdict) -> int:
    """0 approve (a pair: A wins), 4 reject (B wins), 3 undecided, a tie or failed."""
    if verdict.verdict in (APPROVE, "A"):
        return EXIT_OK
    if verdict.verdict in (REJECT, "B"):
        return EXIT_REJECT
    return EXIT_PARTIAL


def _exit_code(verdict: JuryVerdict) -> int:
    if verdict.failed:
        return EXIT_FAILURE
    return EXIT_PARTIAL if any(j.verdict is None for j in verdict.jurors) else EXIT_OK


def judge(
    flags: AskFlags,
    *,
    answer: Path | None,
    rubric: str | None,
    pair: tuple[Path, Path] | None,
    pool: str,
    gate: bool,
    pass_score: float,
) -> int:
    """Run the jury, print its verdict (Markdown or `--json`), and return the exit code."""
    if pool not in POOLS:
        raise UsageError(f"--pool {pool} is not one of {', '.join(POOLS)}", "use majority or mean")
    if (pair is None) == (answer is None):
        raise UsageError(
            "council judge grades one answer or a pair",
            "give --answer FILE --rubric TEXT|FILE, or --pair A.txt B.txt",
        )
    if answer is not None and not rubric:
        raise UsageError("--answer needs --rubric", "add --rubric 'correct, clear' or a file")
    for given, name in _NOT_FOR_JUDGE:
        if getattr(flags, given):
            raise UsageError(f"{name} is not for council judge", f"drop {name}")
    request = resolve_council(flags, flags.setting_values())
    question = flags.query or ""
    if pair is not None:
        first, second = _read(pair[0], "answer"), _read(pair[1], "answer")
        verdict = _judge_pair(request, question, first, second, pool)
    else:
        assert answer is not None and rubric is not None
        criteria = criteria_of(_rubric_text(rubric))
        if not criteria:
            raise UsageError("the rubric names no criterion", "give one criterion a line")
        text = _read(answer, "answer")
        verdict = _judge_rubric(request, question, text, criteria, pool, pass_score)
    code = gate_code(verdict) if gate else _exit_code(verdict)
    _print(verdict, question, code, json_output=flags.json_output, quiet=flags.quiet)
    return code


def _run(plans: list[OraclePlan]) -> list[OracleResult]:
    """The plans one after another on one endpoint pool (their endpoints served once).

    A pair's two orders go in turn, not at once: each juror then reads the orders in a
    known sequence, and a server that caches prompts sees the second as a new one.
    """
    from council.app.run_context import PlanRun, RunContext, plan_endpoints

    with serving_plan(plans[0]) as served:
        where = {"endpoint": served.endpoint, "endpoints": served.endpoints}
        plans = [dataclasses.replace(p, **where) for p in plans]

        async def in_turn() -> list[Any]:
            # One context (one endpoint pool, what it learned kept); no history.
            context = RunContext(plan_endpoints(plans[0]), keep_learned=True)
            try:
                return [await PlanRun(p, context).execute() for p in plans]
            finally:
                context.close()

        return asyncio.run(in_turn())


def _judge_rubric(
    request: Any, question: str, answer: str, criteria: list[str], pool: str, pass_score: float
) -> JuryVerdict:
    plan = oracle_plan(request, rubric_prompt(question, answer, criteria), synthesize=False)
    asked = rubric_response_format()
    calls = tuple(dataclasses.replace(c, response_format=asked) for c in plan.calls)
    (result,) = _run([dataclasses.replace(plan, calls=calls)])
    jurors = []
    for persona in plan.personas:
        outcome = result.outcomes.get(persona.name)
        if outcome is None or not outcome.answered:
            why = outcome.message if outcome is not None else "did not finish"
            jurors.append(JurorVerdict(persona.name, None, problem=why))
        else:
            jurors.append(read_grades(persona.name, outcome.text, len(criteria), pass_score))
    return pool_jury("rubric", jurors, pool, pass_score, criteria)


def _judge_pair(request: Any, question: str, first: str, second: str, pool: str) -> JuryVerdict:
    voting = {"vote": True, "choices": PAIR_CHOICES, "vote_early_stop": False}
    plans = [
        oracle_plan(request, pair_prompt(question, first, second), synthesize=False, **voting),
        oracle_plan(request, pair_prompt(question, second, first), synthesize=False, **voting),
    ]
    a_first, b_first = _run(plans)
    jurors = []
    for persona in plans[0].personas:
        ballots = [r.vote.ballots.get(persona.name) if r.vote else None for r in (a_first, b_first)]
        juror = pair_verdict(persona.name, *ballots)
        if juror.verdict is None:
            failed = [r.outcomes.get(persona.name) for r in (a_first, b_first)]
            why = next((o.message for o in failed if o is not None and not o.answered), None)
            juror = dataclasses.replace(juror, problem=why or juror.problem)
        jurors.append(juror)
    models = {p.name: plans[0].where(p.name)[0] for p in plans[0].personas}
    lengths = (len(first.strip()), len(second.strip()))
    return pool_jury("pair", jurors, pool, lengths=lengths, models=models)


def _print(
    verdict: JuryVerdict, question: str, code: int, *, json_output: bool, quiet: bool
) -> None:
    """`--json`'s document, `-q`'s verdict alone ("approve"), or the Markdown report."""
    from council.render.json_out import dumps
    from council.render.jury import jury_markdown

    if json_output:
        document = {"command": "judge", "query": question, **verdict.to_dict(), "exit_code": code}
        sys.stdout.write(dumps(document) + "\n")
    elif quiet:
        sys.stdout.write(verdict.verdict + "\n")
    else:
        sys.stdout.write(jury_markdown(verdict))
