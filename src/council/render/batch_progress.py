"""How far a batch is, on stderr: a rich progress bar in a terminal, plain periodic lines elsewhere.

    with BatchProgressView(console, progress) as view:   # progress: the engine's BatchProgress
        ...  view.item_ended()                           # after each item (plain lines)

In a terminal a live bar redraws a few times a second from the engine's numbers:
items done and failed, rate, ETA, calls at once against the endpoint's current
limit, tokens. When stderr is not a terminal (a log, CI), a line is written at
most every PLAIN_INTERVAL seconds or each PLAIN_SHARE of the items, whichever
comes first, and one at the end: never a line per item.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.text import Text

from council.engine.results import BatchProgress

__all__ = ["PLAIN_INTERVAL", "PLAIN_SHARE", "BatchProgressView", "down_note", "progress_line"]

PLAIN_INTERVAL = 5.0
PLAIN_SHARE = 0.10


def _duration(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def down_note(progress: BatchProgress) -> str | None:
    """ "endpoint down since 02:41:07 UTC (12s), 8 items waiting"; None while it answers."""
    since = progress.down_since
    if since is None:
        return None
    clock = datetime.fromtimestamp(since, UTC).strftime("%H:%M:%S UTC")
    note = f"endpoint down since {clock} ({_duration(time.time() - since)})"
    return note + (f", {progress.waiting:,} items waiting" if progress.waiting else "")


def progress_line(progress: BatchProgress, width: int | None = None, noun: str = "items") -> str:
    """One line of numbers: `120/1000 items (3 failed) · 4.1/s · ETA 3m34s · 8/8 calls · ...`.

    `width`: the line fits it, the least telling numbers left out first (tokens, the
    rate, calls at once), never the count or the ETA; None: every number. `noun`: what
    is counted (`council eval` counts runs). The calls at once are left out where
    nothing samples a limiter (no limit known).
    """
    p = progress
    down = down_note(p)
    if down is not None:  # nothing moves while the endpoint is down: that comes first
        line = f"{p.finished:,}{f'/{p.total:,}' if p.total is not None else ''} {noun} · {down}"
        return line if width is None or len(line) <= width else line[: width - 1] + "…"
    elapsed = p.elapsed()
    rate = p.finished / elapsed if elapsed > 0 else 0.0
    total = f"/{p.total:,}" if p.total is not None else ""
    # (what is said, how readily it goes when the line is too long: higher goes first)
    parts = [(f"{p.finished:,}{total} {noun} ({p.failed:,} failed)", 0), (f"{rate:.1f}/s", 3)]
    if p.total is not None and rate > 0:
        parts.append((f"ETA {_duration((p.total - p.finished) / rate)}", 0))
    in_flight, limit = p.current()
    if limit:
        parts.append((f"{in_flight}/{limit} calls at once", 2))
    if p.rate_limited:
        parts.append((f"{p.rate_limited:,} × 429", 1))
    parts.append((f"{p.tokens_in:,} tokens in, {p.tokens_out:,} out", 5))
    if p.skipped:
        parts.append((f"{p.skipped:,} skipped", 4))
    line = " · ".join(text for text, _ in parts)
    while width is not None and len(line) > width and any(rank for _, rank in parts):
        dropped = max(rank for _, rank in parts)
        parts = [(text, rank) for text, rank in parts if rank != dropped]
        line = " · ".join(text for text, _ in parts)
    return line if width is None or len(line) <= width else line[: width - 1] + "…"


class BatchProgressView:
    """Shows a BatchProgress on `console` (stderr): live when it is a terminal, else plain lines."""

    def __init__(
        self,
        console: Console,
        progress: BatchProgress,
        *,
        enabled: bool = True,
        label: str = "batch",
        noun: str = "items",
    ) -> None:
        self.console = console
        self.progress = progress
        self.enabled = enabled
        self.label, self.noun = label, noun  # "council: eval 12/40 runs ..."
        self.live: Live | None = None
        self._last_at = time.monotonic()
        self._last_count = 0

    def _renderable(self) -> Group:
        p = self.progress
        bar = ProgressBar(total=float(p.total) if p.total else None, completed=float(p.finished))
        # The numbers first: a ProgressBar ends without a line break of its own.
        # Fitted to the terminal: a wrapped line would leave its end behind the bar.
        line = progress_line(p, self.console.width, self.noun)
        return Group(Text(line, style="dim", no_wrap=True, overflow="ellipsis"), bar)

    def __enter__(self) -> BatchProgressView:
        if self.enabled and self.console.is_terminal:
            self.live = Live(
                get_renderable=self._renderable,
                console=self.console,
                refresh_per_second=4,
                transient=True,
            )
            self.live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def item_ended(self) -> None:
        """In plain mode, a line when enough time or enough of the items went by."""
        if not self.enabled or self.live is not None:
            return
        p = self.progress
        share = (p.finished - self._last_count) / p.total if p.total else 0.0
        if time.monotonic() - self._last_at >= PLAIN_INTERVAL or share >= PLAIN_SHARE:
            self._plain()

    def outage_changed(self) -> None:
        """The endpoint went down or came back: said at once in plain mode (a live bar
        shows it on its next redraw)."""
        if not self.enabled or self.live is not None:
            return
        p = self.progress
        down = down_note(p)
        if down is None:
            line = f"council: batch: the endpoint answers again; going on ({progress_line(p)})"
        else:
            line = f"council: batch: {down}; no item starts until it answers"
        self.console.print(line, markup=False, highlight=False)

    def _plain(self) -> None:
        self._last_at, self._last_count = time.monotonic(), self.progress.finished
        line = f"council: {self.label} {progress_line(self.progress, noun=self.noun)}"
        self.console.print(line, markup=False, highlight=False)
