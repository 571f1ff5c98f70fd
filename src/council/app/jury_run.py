"""Running a jury's cases: `council batch`'s fan-out engine, recorded as one `judge` run.

    run, run_id, notes = run_cases(request, jobs, on_item, record=record, label=question,
                           described={...}, ended=lambda run: (answer, document, markdown))

Every case is one job of `engine/batch.py`'s `BatchRun` (a pair's second order is the
job's `then` plan: the two orders go in turn, on the same clients), so one case and a
file of thousands share what a batch has: every call under the endpoint's one limiter,
outages waited through, Ctrl-C and SIGTERM stopping it with what finished kept. The
whole run is one run in the history (command "judge", every juror's call), written 0600
as every history file is; `ended` says what `council show` replays.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

from council.app.ask import ResolvedCouncil, serving_plan
from council.app.jury_cases import JuryCase, case_plans
from council.config.defaults import DEFAULT_OUTAGE_LIMIT
from council.engine.batch import BatchJob, BatchRun, ItemOutcome
from council.engine.results import BatchProgress
from council.store.recorder import RecordOptions

__all__ = ["case_job", "run_cases"]

Ended = Callable[[BatchRun], tuple[str | None, dict[str, Any], str]]


def run_cases(
    request: ResolvedCouncil,
    jobs: Callable[[ResolvedCouncil], Iterable[BatchJob]],
    on_item: Callable[[ItemOutcome], None],
    *,
    record: RecordOptions | None,
    label: str,
    described: dict[str, Any],
    ended: Ended,
    progress: BatchProgress | None = None,
    view: contextlib.AbstractContextManager[Any] | None = None,
    outage_limit: float = DEFAULT_OUTAGE_LIMIT,
) -> tuple[BatchRun, str | None, list[str]]:
    """Run the jobs `jobs(council)` makes (the council on its served endpoints); the run,
    stopped or not (`run.interrupted`), its id in the history (None: not recorded), and
    the lines to say after it (history problems).

    `ended(run)` gives the history its (answer, document, Markdown) when the run ends,
    however it ends. `outage_limit`: how long cases wait for an endpoint that stopped
    answering (a file of cases, as a batch does), 0: they fail at once (one case).
    """
    from council.app.run import run_until_stopped
    from council.app.run_context import RunContext, plan_endpoints

    template = case_plans(request, JuryCase("", answer="", criteria=("",)))[0]
    with serving_plan(template) as served:
        council = request.on(served.endpoint, dict(served.endpoints))
        plan = {**served.to_dict(), "command": "judge", "judge": described}
        context = RunContext(plan_endpoints(served), record=record, command="judge", plan=plan)
        run = BatchRun(
            served,
            context.bus,
            on_item=on_item,
            items_at_once=max(1, served.max_concurrency),
            label=label,
            progress=progress,
            pool=context.pool,
            outage_limit=outage_limit,
        )

        def stopping(code: int) -> None:
            run.interrupted_exit = code

        try:
            stopped = run_until_stopped(lambda: run.execute(jobs(council)), stopping, during=view)
            if stopped is not None:
                run.interrupted, run.interrupted_exit = True, stopped
        finally:
            answer, document, markdown = ended(run)
            context.finish(answer=answer, document=document, markdown=markdown)
            notes = context.close()
    return run, context.run_id, notes


def case_job(seq: int, key: str, plans: list[Any], payload: Any = None) -> BatchJob:
    """A case's job: its first plan, then (a pair) the other order in turn."""
    return BatchJob(seq, key, plans[0], payload, then=tuple(plans[1:]))
