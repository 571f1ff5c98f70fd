"""A call within its model's context window: the window as far as it is known, the call
fitted to it before it is sent, and what a server's context error teaches.

    await check_fits(client, calls)          # before anything is sent: UsageError, exit 2
    stream = await send_fitted(client, reporter)
"""

from __future__ import annotations

from council.endpoint.client import CallError, EndpointClient, StreamResult
from council.engine.fit import WINDOW_FROM_CUT, DoesNotFit, correct, estimate, fit, too_long_error
from council.engine.model import CallSpec
from council.engine.reporter import CallReporter
from council.errors import ErrorKind

__all__ = ["check_fits", "known_window", "send_fitted"]

# A question this large (in estimated tokens) is worth asking the server its window
# before any call, so that one too long for it fails at once (exit 2).
PROBE_BEFORE_ASKING = 1024


async def known_window(client: EndpointClient, model: str, *, ask: bool) -> int | None:
    """The context window of `model` on the client's endpoint, as far as it is known.

    In order: the profile's `context_window:`, what the server states (asked once per
    run, and only when `ask`), what an earlier run learned. A server's context error,
    or a prompt it cut (its count, WINDOW_FROM_CUT), beats them all but the profile,
    and that only when it is larger.
    """
    settings = client.settings
    configured = settings.window_for(model)
    learned = client.limiter.learned_for(model)
    if learned.window_source in ("error", WINDOW_FROM_CUT) and learned.context_window is not None:
        return min(configured or learned.context_window, learned.context_window)
    if configured is not None:
        return configured
    if ask and learned.window_source != "server":
        stated = await client.stated_window(model)
        if stated is not None:
            learned.context_window, learned.window_source = stated, "server"
            learned.touch()
    return learned.context_window


def _learn_from(client: EndpointClient, call: CallSpec, error: CallError) -> None:
    """What a context error says: the window (kept), and how the estimate undercounted."""
    learned = client.limiter.learned_for(call.model)
    if error.window is not None:
        learned.context_window, learned.window_source = error.window, "error"
        learned.touch()
    if error.prompt_tokens is not None:
        correct(learned, call.messages, error.prompt_tokens)


def _fit(client: EndpointClient, reporter: CallReporter, window: int | None) -> None:
    """Shorten the reporter's call to `window` if it must; CallError when it cannot fit."""
    if window is None:
        return
    call = reporter.call
    try:
        fitted_call, fitted = fit(call, window, client.limiter.learned_for(call.model))
    except DoesNotFit as exc:
        raise CallError(
            ErrorKind.CONTEXT_LENGTH,
            f"the question and system prompt alone need about {exc.needed:,} tokens "
            f"with room for the answer; the context window is {exc.window:,}",
        ) from None
    if fitted is not None:
        reporter.call, reporter.fitted = fitted_call, fitted


async def send_fitted(client: EndpointClient, reporter: CallReporter) -> StreamResult:
    """Fit the call to what is known of the window, send it; on a context error, once more."""
    call = reporter.call
    # Only a call that quotes something can be cut: it waits for the server's word.
    _fit(client, reporter, await known_window(client, call.model, ask=bool(call.parts)))
    try:
        return await client.complete(reporter.call, reporter, reporter.priority)
    except CallError as error:
        if error.kind != ErrorKind.CONTEXT_LENGTH:
            raise
        _learn_from(client, reporter.call, error)
        window = await known_window(client, call.model, ask=False)
        if window is None:
            window = _window_from_prompt(client, reporter.call)
        if window is None:
            raise
        try:
            _fit(client, reporter, window)
        except CallError:
            raise error from None  # the server's own words say it best
        if reporter.fitted is None:
            raise  # nothing could be cut: sending it again would fail again
        return await client.complete(reporter.call, reporter, reporter.priority)


def _window_from_prompt(client: EndpointClient, call: CallSpec) -> int | None:
    """A window when the error named none: somewhat less than the prompt it refused."""
    estimated = estimate(call.messages, client.limiter.learned_for(call.model))
    return max(256, (estimated * 3) // 4) if call.parts else None


async def check_fits(client: EndpointClient, calls: list[CallSpec]) -> None:
    """Before anything is sent: UsageError (exit 2) when a question cannot fit the window."""
    for call in calls:
        learned = client.limiter.learned_for(call.model)
        size = estimate(call.messages, learned)
        window = await known_window(client, call.model, ask=size > PROBE_BEFORE_ASKING)
        if window is None:
            continue
        try:
            fit(call, window, learned)
        except DoesNotFit as exc:
            raise too_long_error(exc) from None
