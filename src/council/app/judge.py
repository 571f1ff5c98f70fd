"""`council judge`: a jury grades one answer against a rubric, a pair, or a file of them.

The jurors are the resolved council (`-p`, `-m` several times, a preset, or the
preset's `jury:`: `app/jury_cases.py`), asked through `council batch`'s engine
(`app/jury_run.py`): a rubric case is one oracle plan whose calls ask for JSON grades;
a pair is two vote plans in turn (`A`, `B`, `tie`, no early stop), one with each answer
first. The run is recorded in the history as `judge` (unless --no-history). What is
read, pooled and measured is `engine/jury.py`'s. `--gate` makes the verdict the exit
code. `--items FILE.jsonl` is `app/judge_items.py`.

    outcome = judge_case(request, JuryCase("q", answer="Use Postgres.", criteria=("correct",)),
                         pool="majority", pass_score=3.5, gate=True, record=None)
    outcome.verdict.verdict, outcome.exit_code     # "approve", 0
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from council.app.ask import ResolvedCouncil, resolve_council
from council.app.flags import AskFlags
from council.app.jury_cases import JuryCase, case_plans, case_verdict, jury_of
from council.engine.jury import APPROVE, REJECT, JuryVerdict, criteria_of
from council.errors import EXIT_FAILURE, EXIT_OK, EXIT_PARTIAL, EXIT_REJECT, UsageError
from council.store.recorder import RecordOptions

__all__ = ["EXIT_REJECT", "JudgeOutcome", "gate_code", "judge", "judge_case"]

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


def check_pool(pool: str) -> None:
    if pool not in POOLS:
        raise UsageError(f"--pool {pool} is not one of {', '.join(POOLS)}", "use majority or mean")


def check_flags(flags: AskFlags) -> None:
    """The shared options a jury has no use for: refused, not ignored."""
    for given, name in _NOT_FOR_JUDGE:
        if getattr(flags, given):
            raise UsageError(f"{name} is not for council judge", f"drop {name}")


def rubric_criteria(rubric: str) -> tuple[str, ...]:
    """The criteria of `--rubric` (text, or a file of one a line); UsageError when none."""
    criteria = criteria_of(_rubric_text(rubric))
    if not criteria:
        raise UsageError("the rubric names no criterion", "give one criterion a line")
    return tuple(criteria)


def judge(
    flags: AskFlags,
    *,
    answer: Path | None,
    rubric: str | None,
    pair: tuple[Path, Path] | None,
    pool: str,
    gate: bool,
    pass_score: float,
    out: str | None = None,
    retry_failed: bool = False,
) -> int:
    """Run the jury, print its verdict (Markdown or `--json`), and return the exit code."""
    check_pool(pool)
    for given, name in ((out, "--out"), (retry_failed, "--retry-failed")):
        if given:
            raise UsageError(f"{name} goes with --items", f"add --items FILE.jsonl, or drop {name}")
    if (pair is None) == (answer is None):
        raise UsageError(
            "council judge grades one answer, a pair, or a file of items",
            "give --answer FILE --rubric TEXT|FILE, --pair A.txt B.txt, or --items FILE.jsonl",
        )
    if answer is not None and not rubric:
        raise UsageError("--answer needs --rubric", "add --rubric 'correct, clear' or a file")
    check_flags(flags)
    question = flags.query or ""
    if pair is not None:
        case = JuryCase(question, pair=(_read(pair[0], "answer"), _read(pair[1], "answer")))
    else:
        assert answer is not None and rubric is not None
        criteria = rubric_criteria(rubric)
        case = JuryCase(question, answer=_read(answer, "answer"), criteria=criteria)
    request = jury_of(resolve_council(flags, flags.setting_values()))
    for note in request.notes:
        sys.stderr.write(note + "\n")
    record = request.record_options(no_history=flags.no_history, no_store_text=flags.no_store_text)
    outcome = judge_case(request, case, pool=pool, pass_score=pass_score, gate=gate, record=record)
    for line in outcome.notes:
        sys.stderr.write(line + "\n")
    if outcome.verdict is None:
        sys.stderr.write("council: judge stopped before the jury had ruled\n")
        return outcome.exit_code
    _print(outcome, json_output=flags.json_output, quiet=flags.quiet)
    return outcome.exit_code


@dataclass
class JudgeOutcome:
    """A judged case: the jury's verdict (None: stopped first), the exit code, the run's
    `--json` document, its id in the history (None: not recorded) and lines to say."""

    verdict: JuryVerdict | None
    exit_code: int
    document: dict[str, Any]
    run_id: str | None = None
    notes: list[str] = field(default_factory=list)


def judge_case(
    request: ResolvedCouncil,
    case: JuryCase,
    *,
    pool: str = "majority",
    pass_score: float = 3.5,
    gate: bool = False,
    record: RecordOptions | None = None,
) -> JudgeOutcome:
    """Ask `request`'s personas (the jury: see `jury_of`) to judge `case`; its outcome.

    The exit code: with `gate`, `gate_code`'s; else 0, 3 when some juror gave no
    verdict, 1 when none did; 130/143/129 when a signal stopped it.
    """
    from council.app.jury_run import case_job, run_cases
    from council.render.jury import jury_markdown

    check_pool(pool)
    found: list[JuryVerdict] = []
    failures: list[Any] = []

    def on_item(outcome: Any) -> None:
        plans = [outcome.job.plan, *outcome.job.then]
        results = [outcome.result, *outcome.then] if outcome.error is None else [None] * 2
        found.append(case_verdict(case, plans, results[: len(plans)], pool, pass_score))
        failures.extend(f for r in results if r is not None for f in r.failures)

    def code_of(run: Any) -> int:
        if run.interrupted or not found:
            return run.interrupted_exit
        return gate_code(found[0]) if gate else _exit_code(found[0])

    def ended(run: Any) -> tuple[str | None, dict[str, Any], str]:
        code = code_of(run)
        if not found:
            return None, {"command": "judge", "query": case.question, "exit_code": code}, ""
        return found[0].verdict, _document(found[0], case.question, code), jury_markdown(found[0])

    run, run_id, notes = run_cases(
        request,
        lambda council: [case_job(0, "case", case_plans(council, case))],
        on_item,
        record=record,
        label=case.question or f"judge ({case.kind})",
        described={"kind": case.kind, "pool": pool, "pass_score": pass_score, "gate": gate},
        ended=ended,
        outage_limit=0.0,  # one case, someone waiting: an endpoint that is down fails it now
    )
    code = code_of(run)
    verdict = found[0] if found else None
    document = _document(verdict, case.question, code) if verdict is not None else {}
    if verdict is not None and verdict.failed and failures:
        from council.app.run_context import all_failed_error

        # No juror answered: why, and what to do, as every asking command says it.
        error = all_failed_error(failures, request.settings.endpoint, len(verdict.jurors))
        notes = [f"council: error: {error.one_line()}", *notes]
    return JudgeOutcome(verdict, code, document, run_id, notes)


def _document(verdict: JuryVerdict, question: str, code: int) -> dict[str, Any]:
    return {"command": "judge", "query": question, **verdict.to_dict(), "exit_code": code}


def _print(outcome: JudgeOutcome, *, json_output: bool, quiet: bool) -> None:
    """`--json`'s document, `-q`'s verdict alone ("approve"), or the Markdown report."""
    from council.render.json_out import dumps
    from council.render.jury import jury_markdown

    assert outcome.verdict is not None
    if json_output:
        sys.stdout.write(dumps(outcome.document) + "\n")
    elif quiet:
        sys.stdout.write(outcome.verdict.verdict + "\n")
    else:
        sys.stdout.write(jury_markdown(outcome.verdict))
