"""Running one call to its one outcome, within the run's budget.

Shared by the oracle and the deliberation engines. `run_call` runs a call and
always ends with exactly one outcome on its reporter (answer, failure, or
cancellation), whatever happened inside it, a bug included, so one call can never
cost the others theirs, and an engine that is cancelled half-way still knows what
every call did and what it cost. Every call is reserved with the run's budget (the
reporter's, passed by the engine) before it goes and settled when it ends, once:
`reserve_together` for calls that start together, `release_unsettled` for those
that never ran.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from council.endpoint.client import CallError, EndpointClient
from council.endpoint.errors import internal_error
from council.engine.budget import Budget
from council.engine.model import CallOutcome
from council.engine.reporter import CallReporter
from council.engine.windows import send_fitted

__all__ = ["release_unsettled", "reserve_together", "run_call"]


async def run_call(client: EndpointClient, reporter: CallReporter) -> CallOutcome:
    """Run one call to its one outcome; on cancellation, record it as cancelled and re-raise.

    Nothing but cancellation leaves: a failure of any kind, a bug included (kind
    `internal`, its exception type in the message), is the call's outcome. A call
    is fitted to its context window before it goes (engine/fit.py), and a server's
    context error teaches the window: the call is fitted and sent once more.
    """
    budget = reporter.budget
    if budget is not None and budget.limited and not reporter.asked_budget:
        reporter.priced(client)
        reporter.granted(budget.reserve(reporter.ask(), reporter.call.call_id))
    if reporter.refused:
        reporter.endpoint_host = client.settings.host
        return reporter.not_affordable()
    try:
        reporter.asked_at = time.monotonic()
        reporter.endpoint_host = client.settings.host  # a council may call several
        reporter.priced(client)
        stream = await send_fitted(client, reporter)
    except CallError as error:
        return reporter.failed(error)
    except asyncio.CancelledError:
        reporter.cancelled()
        raise
    except Exception as exc:  # the endpoint should have classified it: a bug
        return reporter.failed(internal_error(exc))
    try:
        return reporter.finished(stream)
    except Exception as exc:
        return reporter.failed(internal_error(exc))


def reserve_together(
    pairs: list[tuple[EndpointClient, CallReporter]],
    budget: Budget | None,
    *,
    all_or_none: bool,
    tentative: bool = False,
) -> bool:
    """Reserve calls that start together from the run's budget, their rooms lowered alike.

    Those refused do not start (`run_call` ends them as NOT_AFFORDABLE). With
    `all_or_none`, nothing is reserved unless everything fits. True when every call
    got its reservation (or there is no budget).
    """
    if budget is None or not budget.limited or not pairs:
        return True
    for client, reporter in pairs:
        reporter.priced(client)
    reporters = [reporter for _, reporter in pairs]
    granted = budget.reserve_all(
        [r.ask() for r in reporters],
        [r.call.call_id for r in reporters],
        all_or_none=all_or_none,
        tentative=tentative,
    )
    for reporter, reservation in zip(reporters, granted, strict=True):
        reporter.granted(reservation)
    return all(g is not None for g in granted)


def release_unsettled(reporters: Iterable[CallReporter]) -> None:
    """Give back what was reserved for calls that never ran (cancelled before they started),
    so that a budget shared with other runs does not lose it."""
    for reporter in reporters:
        if reporter.budget is not None and reporter.reservation is not None:
            reporter.budget.release(reporter.reservation)
            reporter.reservation = None
