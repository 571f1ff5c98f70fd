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
from typing import Self

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from council.engine.ballots import read_ballot
from council.engine.events import (
    ArbiterVerdict,
    CallCancelled,
    CallEvent,
    CallFailed,
    CallFinished,
    CallRetrying,
    CallStarted,
    Event,
    FirstToken,
    LimitChanged,
    ReasoningDelta,
    RoundDiscarded,
    TextDelta,
)
from council.engine.model import CONSISTENCY_CALL, VOTE_DECIDED
from council.render.format import count_label, limit_note, seconds
from council.render.keys_echo import QuietControlKeys
from council.render.safe_text import strip_controls

__all__ = ["LiveView", "RoundsLiveView"]

SIDE_BY_SIDE_MAX = 4
# A streaming answer's text kept by the view: its last TAIL_CHARS characters, once it
# has more than TAIL_CHUNKS pieces (far more than a terminal shows of it).
TAIL_CHARS = 20_000
TAIL_CHUNKS = 1_000
SYNTHESIS_PREFIX = "synthesis · "  # the label of the arbiter's synthesis call
RANKING_PREFIX = "ranking · "  # the label of a persona's peer-ranking call (--rank)
STATUS_STYLE = {
    "waiting": "dim",
    "thinking": "yellow",
    "streaming": "cyan",
    "retrying": "magenta",
    "done": "green",
    "failed": "red",
    "cancelled": "dim red",
}


# What a cancelled call's row says, by the reason it was cancelled for.
CANCEL_NOTES = {"superseded": "speculation discarded", VOTE_DECIDED: "vote decided"}


@dataclass
class _CallView:
    label: str
    status: str = "waiting"
    started: float | None = None
    ttft: float | None = None
    chunks: list[str] = field(default_factory=list)
    note: str = ""
    speculative: bool = False

    @property
    def text(self) -> str:
        # Cleaned as a whole: a control sequence may be split across deltas.
        text = strip_controls("".join(self.chunks))
        if self.label.startswith(SYNTHESIS_PREFIX):  # its agreement map is shown once read
            text = text.partition("<agreement>")[0]
        return text

    def apply(self, event: Event) -> None:
        """Update the view from one of its call's events.

        "thinking" until the answer's text starts: waiting for the first token, or a
        reasoning model streaming its reasoning (which is not shown as the answer).
        """
        if isinstance(event, CallStarted):
            self.status, self.started = "thinking", event.at
            self.speculative = event.speculative
        elif isinstance(event, FirstToken):
            self.ttft = event.ttft
        elif isinstance(event, ReasoningDelta):
            if not self.chunks:
                self.status = "thinking"
        elif isinstance(event, TextDelta):
            self.status = "streaming"
            self.chunks.append(event.text)
            if len(self.chunks) > TAIL_CHUNKS:
                # The view shows an answer's last lines: an endless one takes no more.
                self.chunks = ["".join(self.chunks)[-TAIL_CHARS:]]
        elif isinstance(event, CallRetrying):
            self.status, self.chunks = "retrying", []
            self.note = f"{event.error_kind}, retry {event.attempt} in {seconds(event.wait)}"
        elif isinstance(event, CallFinished):
            self.status, self.note = "done", seconds(event.outcome.latency)
        elif isinstance(event, CallFailed):
            self.status, self.note = "failed", event.outcome.message
        elif isinstance(event, CallCancelled):
            self.status = "cancelled"
            self.note = CANCEL_NOTES.get(event.reason, "")


def ballot_note(text: str, choices: tuple[str, ...]) -> str:
    """A finished ballot as the live view says it: "ballot B (0.80)", or "abstained"."""
    ballot = read_ballot("", text, choices)
    if ballot.choice is None:
        return "abstained"
    confidence = f" ({ballot.confidence:.2f})" if ballot.confidence is not None else ""
    return f"ballot {ballot.choice}{confidence}"


def _status_text(view: _CallView) -> Text:
    status = Text(view.status, style=STATUS_STYLE.get(view.status, ""))
    if view.status in ("thinking", "streaming") and view.started is not None:
        status.append(f" {time.monotonic() - view.started:.1f}s", style="dim")
    elif view.note:
        status.append(f" {strip_controls(view.note)}", style="dim")  # may quote the server
    return status


class _LiveBase:
    """A rich Live on stderr, redrawn from `render`, refreshed from rich's own thread."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.limit_notes: dict[str, str] = {}  # host -> its latest limit change, said
        self._lock = threading.Lock()  # rich refreshes from its own thread
        self._live = Live(
            console=console, get_renderable=self.render, refresh_per_second=8, transient=True
        )

    def __enter__(self) -> Self:
        self._quiet_keys = QuietControlKeys()  # no "^C" echoed into the view's lines
        self._quiet_keys.__enter__()
        self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._live.__exit__(exc_type, exc, tb)
        finally:
            self._quiet_keys.__exit__(exc_type, exc, tb)

    def render(self) -> RenderableType:
        raise NotImplementedError

    def _note_limit(self, event: Event) -> bool:
        """Keep an endpoint's limit change to show (True: it was one)."""
        if not isinstance(event, LimitChanged):
            return False
        text = strip_controls(limit_note(event.host, event.new, event.reason))
        with self._lock:
            self.limit_notes[event.host] = text
        return True

    def _limits_line(self) -> Text | None:
        if not self.limit_notes:
            return None
        return Text(" · ".join(self.limit_notes.values()), style="yellow")


class LiveView(_LiveBase):
    """Subscribe `handle` to the event bus and use the view as a context manager.

    Usage:
        with LiveView(console, ["judge", "critic"]) as view:
            bus.subscribe(view.handle)
            ...run...
    """

    def __init__(
        self, console: Console, labels: list[str], ballots: tuple[str, ...] | None = None
    ) -> None:
        self._calls: dict[str, _CallView] = {label: _CallView(label) for label in labels}
        # --vote: each finished answer is a ballot, shown as read (the choices, () if free).
        self._ballots = ballots
        super().__init__(console)  # last: rich may render as soon as the Live exists

    def handle(self, event: Event) -> None:
        if self._note_limit(event):
            return
        persona = getattr(event, "persona", None)
        if persona is None:
            return
        role = getattr(event, "role", "persona")
        label = {"persona": persona, "reviewer": f"{RANKING_PREFIX}{persona}"}.get(
            role, f"{SYNTHESIS_PREFIX}{persona}"
        )
        if role == "check":  # --rank's bias check: "r3-reversed-judge" -> "reversed · judge"
            kind = str(getattr(event, "call_id", "r3-check-")).split("-")[1]
            label = f"{kind} check · {persona}"
        if getattr(event, "call_id", None) == CONSISTENCY_CALL:  # --vote -s: a pick
            label = f"most consistent · {persona}"
        with self._lock:
            view = self._calls.setdefault(label, _CallView(label))
            view.apply(event)
            if self._ballots is not None and isinstance(event, CallFinished) and role == "persona":
                view.note = f"{ballot_note(event.outcome.text, self._ballots)} · {view.note}"

    def render(self) -> RenderableType:
        with self._lock:
            views = list(self._calls.values())
            few = len(views) <= SIDE_BY_SIDE_MAX
            shown = self._side_by_side(views) if few else self._table(views)
            limits = self._limits_line()
            return shown if limits is None else Group(shown, limits)

    def _status(self, view: _CallView) -> Text:
        return _status_text(view)

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
        limit = max(5, self.console.height - 4)
        shown = views
        if len(views) > limit:
            # What still moves first; finished answers fill the rows that are left.
            moving = [v for v in views if v.status not in ("done", "waiting")]
            waiting = [v for v in views if v.status == "waiting"]
            done = [v for v in views if v.status == "done"]
            keep = {id(v) for v in [*moving, *waiting, *done][:limit]}
            shown = [v for v in views if id(v) in keep]  # in the plan's order
        for view in shown:
            latest = Text(" ".join(view.text[-200:].split()))  # Text: never read as markup
            table.add_row(view.label, self._status(view), seconds(view.ttft), latest)
        table.caption = _progress(views)
        return table


def _progress(views: list[_CallView]) -> str:
    """ "3 of 5 personas answered", as the footer counts (personas, not calls), and what
    the synthesis is doing once it has started."""
    personas = [v for v in views if not v.label.startswith((SYNTHESIS_PREFIX, RANKING_PREFIX))]
    answered = sum(1 for v in personas if v.status == "done")
    line = f"{answered} of {count_label(len(personas), 'persona')} answered"
    synthesis = [v for v in views if v.label.startswith(SYNTHESIS_PREFIX)]
    if synthesis and synthesis[0].status != "waiting":
        line += f" · synthesis {synthesis[0].status}"
    return line


class RoundsLiveView(_LiveBase):
    """A deliberation as it runs: one row per persona per round, then the arbiter's.

    Speculative calls are marked, cancelled ones say so, and each verdict shows
    up in its arbiter's row as soon as the council has read it.
    """

    def __init__(self, console: Console, rounds: int) -> None:
        self.rounds = rounds
        self._calls: dict[str, _CallView] = {}  # call id -> view, in start order
        self._round_of: dict[str, int] = {}
        self._verdicts: dict[int, str] = {}
        self._discarded: set[int] = set()
        self._confirmed: set[int] = set()  # speculative rounds the council went on to keep
        super().__init__(console)  # last: rich may render as soon as the Live exists

    def handle(self, event: Event) -> None:
        if self._note_limit(event):
            return
        with self._lock:
            if isinstance(event, ArbiterVerdict):
                state = "converged" if event.converged else "not converged"
                if event.problem:
                    state = "unreadable verdict"
                self._verdicts[event.round] = f"{state}, confidence {event.confidence:.2f}"
                if not event.ends_council:
                    self._confirmed.add(event.round + 1)
            elif isinstance(event, RoundDiscarded):
                self._discarded.add(event.round)
            elif isinstance(event, CallEvent):
                label = event.persona if event.role == "persona" else f"verdict · {event.persona}"
                view = self._calls.setdefault(event.call_id, _CallView(label))
                self._round_of[event.call_id] = event.round
                view.apply(event)

    def render(self) -> RenderableType:
        table = Table(expand=True, box=None, show_edge=False, pad_edge=False)
        table.add_column("round", no_wrap=True, justify="right")
        table.add_column("who", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("latest", ratio=1, no_wrap=True, overflow="ellipsis")
        with self._lock:
            items = list(self._calls.items())
            limit = max(5, self.console.height - 4)
            for call_id, view in items[-limit:]:
                number = self._round_of[call_id]
                status = _status_text(view)
                if view.speculative and number not in self._confirmed:
                    status.append(" speculative", style="italic blue")
                elif number in self._discarded:
                    status.append(" discarded", style="dim")
                if view.label.startswith("verdict") and number in self._verdicts:
                    latest = Text(self._verdicts[number])
                else:  # Text: model output is never read as rich markup
                    latest = Text(" ".join(view.text[-200:].split()))
                style = "dim" if number in self._discarded else ""
                table.add_row(str(number), view.label, status, latest, style=style)
            latest_round = max(self._round_of.values(), default=0)
            limits = " · ".join(self.limit_notes.values())
        table.caption = f"round {latest_round} of at most {self.rounds}"
        if limits:
            table.caption += f" · {limits}"
        return table
