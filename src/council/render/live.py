"""The live view: every persona's answer streaming side by side, on stderr.

Built from events alone. Up to four calls are shown as panels side by side;
more than that as a compact table, one row per call.
"""

from __future__ import annotations

import textwrap
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

from rich.console import Console, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from council.events import (
    CallCancelled,
    CallFailed,
    CallFinished,
    CallRetrying,
    CallStarted,
    Event,
    FirstToken,
    TextDelta,
)
from council.render.format import seconds

__all__ = ["LiveView"]

SIDE_BY_SIDE_MAX = 4
STATUS_STYLE = {
    "waiting": "dim",
    "thinking": "yellow",
    "streaming": "cyan",
    "retrying": "magenta",
    "done": "green",
    "failed": "red",
    "cancelled": "dim red",
}


@dataclass
class _CallView:
    label: str
    status: str = "waiting"
    started: float | None = None
    ttft: float | None = None
    chunks: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def text(self) -> str:
        return "".join(self.chunks)


class LiveView:
    """Subscribe `handle` to the event bus and use the view as a context manager.

    Usage:
        with LiveView(console, ["judge", "critic"]) as view:
            bus.subscribe(view.handle)
            ...run...
    """

    def __init__(self, console: Console, labels: list[str]) -> None:
        self.console = console
        self._lock = threading.Lock()  # rich refreshes from its own thread
        self._calls: dict[str, _CallView] = {label: _CallView(label) for label in labels}
        self._live = Live(
            console=console, get_renderable=self.render, refresh_per_second=8, transient=True
        )

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.__exit__(exc_type, exc, tb)

    def handle(self, event: Event) -> None:
        persona = getattr(event, "persona", None)
        if persona is None:
            return
        label = (
            persona if getattr(event, "role", "persona") == "persona" else f"synthesis · {persona}"
        )
        with self._lock:
            view = self._calls.setdefault(label, _CallView(label))
            if isinstance(event, CallStarted):
                view.status, view.started = "thinking", event.at
            elif isinstance(event, FirstToken):
                view.status, view.ttft = "streaming", event.ttft
            elif isinstance(event, TextDelta):
                view.chunks.append(event.text)
            elif isinstance(event, CallRetrying):
                view.status, view.chunks = "retrying", []
                view.note = f"{event.error_kind}, retry {event.attempt} in {seconds(event.wait)}"
            elif isinstance(event, CallFinished):
                view.status, view.note = "done", seconds(event.latency)
            elif isinstance(event, CallFailed):
                view.status, view.note = "failed", event.message
            elif isinstance(event, CallCancelled):
                view.status = "cancelled"

    def render(self) -> RenderableType:
        with self._lock:
            views = list(self._calls.values())
            if len(views) <= SIDE_BY_SIDE_MAX:
                return self._side_by_side(views)
            return self._table(views)

    def _status(self, view: _CallView) -> Text:
        status = Text(view.status, style=STATUS_STYLE.get(view.status, ""))
        if view.status in ("thinking", "streaming") and view.started is not None:
            status.append(f" {time.monotonic() - view.started:.1f}s", style="dim")
        elif view.note:
            status.append(f" {view.note}", style="dim")
        return status

    def _side_by_side(self, views: list[_CallView]) -> RenderableType:
        width = max(20, self.console.width // max(1, len(views)) - 4)
        most = max(6, min(24, self.console.height - 4)) - 2  # text lines a panel may show
        wrapped: list[list[str]] = []
        for view in views:
            lines: list[str] = []
            for paragraph in view.text.splitlines() or [""]:
                lines.extend(textwrap.wrap(paragraph, width) or [""])
            wrapped.append(lines[-most:])
        # Panels grow with the longest answer so far, up to what the terminal can show.
        height = max(3, max(len(lines) for lines in wrapped)) + 2
        grid = Table.grid(expand=True, padding=(0, 1))
        for _ in views:
            grid.add_column(ratio=1)
        cells = [
            Panel(
                Text("\n".join(lines)),
                title=f"[bold]{view.label}[/]",
                title_align="left",
                subtitle=self._status(view),
                subtitle_align="right",
                height=height,
                border_style=STATUS_STYLE.get(view.status, ""),
            )
            for view, lines in zip(views, wrapped, strict=True)
        ]
        grid.add_row(*cells)
        return grid

    def _table(self, views: list[_CallView]) -> RenderableType:
        table = Table(expand=True, box=None, show_edge=False, pad_edge=False)
        table.add_column("persona", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("first token", justify="right", no_wrap=True)
        table.add_column("latest", ratio=1, no_wrap=True, overflow="ellipsis")
        done = sum(1 for v in views if v.status == "done")
        limit = max(5, self.console.height - 4)
        active = [v for v in views if v.status not in ("done", "waiting")] + [
            v for v in views if v.status == "waiting"
        ]
        for view in active[:limit]:
            latest = " ".join(view.text[-200:].split())
            table.add_row(view.label, self._status(view), seconds(view.ttft), latest)
        table.caption = f"{done} of {len(views)} done"
        return table
