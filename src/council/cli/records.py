"""Commands on the local history: `council history`, `council show`, `council stats`."""

from __future__ import annotations

import math
import sys
import time
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from council.cli.base import app, handles_errors, history_app, say
from council.cli.usage import at_least
from council.errors import UsageError
from council.render.safe_text import strip_controls

if TYPE_CHECKING:
    from council.app.history import StatsReport

__all__ = ["history_list", "history_prune", "history_rm", "show_command", "stats_command"]

SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="Only runs this recent: 90m, 12h, 7d, 2w.", show_default=False),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str, flag: str) -> float:
    """Seconds in '90s', '15m', '12h', '7d' or '2w'; UsageError otherwise."""
    value = text.strip().lower()
    try:
        number, unit = float(value[:-1]), _AGE_UNITS[value[-1]]
        if not (0 <= number < math.inf):  # `-1d` or `infd` would prune everything or nothing
            raise ValueError(value)
    except (ValueError, KeyError, IndexError):
        raise UsageError(
            f"{flag} {text!r} is not an age",
            f"give a number and a unit, e.g. {flag} 7d (s m h d w)",
        ) from None
    return number * unit


def _since(text: str | None) -> float | None:
    return None if text is None else time.time() - parse_age(text, "--since")


def _when(started_at: float, short: bool = False) -> str:
    """Local time to the minute; `short`: without this year's number (a narrow terminal)."""
    moment = datetime.fromtimestamp(started_at)
    if short and moment.year == datetime.now().year:
        return moment.strftime("%m-%d %H:%M")
    return moment.strftime("%Y-%m-%d %H:%M")


def _timed(value: Any, digits: int) -> str:
    """Seconds as recorded, or "–" when unknown (or not a number: a history edited by hand)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return f"{value:.{digits}f}s"
    return "–"


def _short(text: str | None, width: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@history_app.callback(invoke_without_command=True)
@handles_errors
def history_list(
    context: typer.Context,
    limit: Annotated[
        int,
        typer.Option("--limit", "-n", help="Most runs to list (at least 1).", callback=at_least(1)),
    ] = 20,
    preset: Annotated[
        str | None, typer.Option("--preset", help="Only runs of this preset.", show_default=False)
    ] = None,
    since: SinceOption = None,
    search: Annotated[
        str | None,
        typer.Option(
            "--search",
            help="Only runs whose question holds this text (any case).",
            metavar="TEXT",
            show_default=False,
        ),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Recent runs, newest first, one line each (subcommands: rm, export, prune).

    \b
    Examples:
      council history
      council history --since 7d --preset review
      council history --search monorepo
      council show "$(council history --json -n 1 | jq -r '.[0].id')"
    """
    if context.invoked_subcommand is not None:
        return
    from council.app.history import list_runs
    from council.render.times import iso_time

    runs = list_runs(limit=limit, preset=preset, since=_since(since), search=search)
    rows = [
        {
            "id": run["id"],
            "started_at": iso_time(run["started_at"]),
            "command": run["command"],
            "status": run["status"],
            "exit_code": run["exit_code"],
            "wall": run["wall"],
            "preset": run["preset"],
            "query": run["query"],
        }
        for run in runs
    ]
    if json_output:
        from council.render.json_out import dumps

        typer.echo(dumps(rows))
        return
    if not rows:
        say("no runs recorded yet" + (" that match" if preset or since or search else ""))
        return
    from council.render.listing import fit_row, terminal_width

    columns = terminal_width()
    # Piped: the columns as they always were. In a terminal: as wide as what is shown,
    # and the question trimmed to the rest of the line.
    command_width = 10 if columns is None else max(len(r["command"]) for r in rows)
    status_width = 11 if columns is None else max(len(r["status"]) for r in rows)
    narrow = columns is not None and columns < 100  # the year goes: room for the question
    for run, row in zip(runs, rows, strict=True):
        wall = _timed(row["wall"], 1)
        preset_text = f" [{row['preset']}]" if row["preset"] else ""
        query = " ".join(row["query"].split()) if row["query"] is not None else None
        if columns is None and query is not None:
            query = _short(query, 60)
        left = (
            f"{row['id']}  {_when(run['started_at'], narrow)}  {row['command']:<{command_width}} "
            f"{row['status']:<{status_width}} {wall:>7}{preset_text}  "
        )
        say(fit_row(left, query if query is not None else "(text not stored)", "", columns))


@history_app.command(name="rm")
@handles_errors
def history_rm(
    run_id: Annotated[str, typer.Argument(help="The run's id (or a unique start of it).")],
) -> None:
    """Delete one run and its calls from the history.

    \b
    Example:
      council history rm 6742a1b2c3d4e5
    """
    from council.app.history import delete_run

    say(f"deleted {delete_run(run_id)}")


@history_app.command(name="export")
@handles_errors
def history_export(
    jsonl: Annotated[
        bool, typer.Option("--jsonl", help="One JSON object per run, with its calls.")
    ] = True,
) -> None:
    """Write the whole history to stdout as JSON lines, oldest run first.

    \b
    Example:
      council history export --jsonl > council-history.jsonl
    """
    from council.app.history import export_runs
    from council.render.json_out import dumps
    from council.render.times import iso_time

    for run in export_runs():
        run["started_at"] = iso_time(run["started_at"])  # calls' times: seconds from it
        sys.stdout.write(dumps(run, indent=None) + "\n")


@history_app.command(name="prune")
@handles_errors
def history_prune(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Delete runs older than this: 30d, 12h, 2w.")
    ],
) -> None:
    """Delete runs older than an age, with their calls.

    \b
    Example:
      council history prune --older-than 30d
    """
    from council.app.history import prune_runs

    removed = prune_runs(time.time() - parse_age(older_than, "--older-than"))
    say(f"deleted {removed} run{'s' if removed != 1 else ''} older than {older_than}")


# "-2" is a run counted back, not an option: click hands unknown options over as
# arguments here, and app/history.py refuses any other "-..." as an unknown option.
@app.command(name="show", context_settings={"ignore_unknown_options": True})
@handles_errors
def show_command(
    run_id: Annotated[
        str | None,
        typer.Argument(
            help="The run's id (or a unique start of it); -N: the Nth newest run.",
            show_default="the last run",
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="The run's --json document, as it was printed.")
    ] = False,
) -> None:
    """Show a past run again from the history, with no network.

    Piped, the output is exactly what the run printed when piped; `--json` is its
    `--json` document.

    \b
    Examples:
      council show
      council show -2
      council show 6742a1b2c3d4e5
      council show 6742a1b2 --json | jq .answers
    """
    import json

    from council.app.history import find_run

    run, calls = find_run(run_id)
    if run.get("continued_from"):  # stderr: stdout stays exactly what the run printed
        say(f"council: run {run['id']} is a follow-up of run {run['continued_from']}", err=True)
    if not json_output:
        # What went wrong goes to stderr, as it did during the run: stdout stays
        # exactly what the run printed.
        _say_what_went_wrong(run, calls)
    if not run["store_text"] or run["document"] is None:
        _show_metrics(run, calls, json_output)
        return
    if json_output:
        from council.render.json_out import dumps

        typer.echo(dumps(json.loads(run["document"])))
    elif sys.stdout.isatty():
        from rich.console import Console
        from rich.markdown import Markdown

        # Cleaned again: a run recorded by an older council may hold raw model text.
        Console().print(Markdown(strip_controls(run["markdown"] or ""), hyperlinks=False))
    else:
        sys.stdout.write(strip_controls(run["markdown"] or ""))


def _say_what_went_wrong(run: dict[str, Any], calls: list[Any]) -> None:
    """For a run that did not end well: its status and exit code, each failed call's error,
    and how to go on. Nothing for a run that succeeded."""
    from council.app.history import resume_command, resumed_by, run_failures

    if run["status"] == "ok" and not run["exit_code"]:
        return
    code = run["exit_code"]
    ended = f"exit code {code}" if code is not None else "no exit code recorded"
    if run["status"] == "died":  # see app/history.py: no process holds its lock
        ended = "its process ended without recording its end (killed, or the machine stopped)"
    say(
        f"run {run['id']} ({run['command']}, {_iso(run['started_at'])}): {run['status']}, {ended}",
        err=True,
    )
    # Calls that failed alike are one line (a batch through an outage fails hundreds).
    alike: dict[tuple[str, Any, str, str], int] = {}
    for failure in run_failures(run, calls):
        message = " ".join((failure.message or "(message not recorded)").split())
        key = (failure.persona, failure.round, failure.kind or "error", message)
        alike[key] = alike.get(key, 0) + 1
    for (persona, round_number, kind, message), count in alike.items():
        times = f" ({count} calls)" if count > 1 else ""
        say(f"  {persona}, round {round_number}: {kind}: {message}{times}", err=True)
    later = resumed_by(run["id"]) if resume_command(run) is not None else None
    if later is not None:  # resuming this one again would ask what the later run has
        say(
            f"resumed as run {later['id']} ({_iso(later['started_at'])}, {later['status']}); "
            f"see it with: council show {later['id']}",
            err=True,
        )
    go_on = resume_command(later if later is not None else run)
    if go_on is not None:
        say(f"go on with: {go_on}", err=True)


def _iso(started_at: Any) -> str:
    from council.render.times import iso_time

    return iso_time(started_at) or "unknown time"


def _show_metrics(run: Any, calls: list[Any], json_output: bool) -> None:
    """A run recorded without its texts (or before it finished): what is known."""
    if json_output:
        from council.app.history import run_failures
        from council.render.json_out import dumps
        from council.render.times import iso_time

        shown = {
            "run": {**dict(run), "started_at": iso_time(run["started_at"])},
            "errors": [failure.to_dict() for failure in run_failures(run, calls)],
            "calls": [dict(c) for c in calls],
        }
        typer.echo(dumps(shown))
        return
    reason = "texts were not stored" if not run["store_text"] else f"status {run['status']}"
    say(f"run {run['id']} ({run['command']}, {reason}); its calls:")
    for call in calls:
        latency = _timed(call["latency"], 2)
        say(
            f"  round {call['round']}  {call['persona']:<16} {call['status']:<9} {latency:>7}"
            f"  tokens {call['tokens_out'] if call['tokens_out'] is not None else '?'}"
        )


@app.command(name="stats")
@handles_errors
def stats_command(
    since: SinceOption = None,
    by: Annotated[
        str,
        typer.Option("--by", help="Group calls by persona, model or endpoint."),
    ] = "persona",
    json_output: JsonFlag = False,
    bias: Annotated[
        bool,
        typer.Option(
            "--bias", help="Reviewer bias of --rank and judge runs, by persona and by model."
        ),
    ] = False,
    escalation: Annotated[
        bool,
        typer.Option(
            "--escalation",
            help="What --escalate saved across runs, and what its shadow runs measured.",
        ),
    ] = False,
) -> None:
    """Where the time goes: latency, first token, errors and tokens per persona, model or endpoint.

    \b
    Examples:
      council stats --since 7d
      council stats --by endpoint --json
      council stats --bias
      council stats --escalation --since 30d
    """
    from council.app.history import GROUPINGS, compute_bias_stats, compute_stats

    if escalation:
        if bias or by != "persona":
            raise UsageError(
                "--escalation sums runs up whole", "drop --bias and --by, or --escalation"
            )
        _print_escalation(since, json_output=json_output)
        return
    if bias:
        if by != "persona":  # --bias groups by persona and by model, both
            raise UsageError(f"--bias takes no --by {by}", "drop --by: it shows both groupings")
        found = compute_bias_stats(since=_since(since))
        if json_output:
            from council.render.json_out import dumps

            typer.echo(dumps(found.to_dict()))
        else:
            from council.render.bias import bias_stats_text

            say(bias_stats_text(found))
        return
    if by not in GROUPINGS:
        raise UsageError(f"--by {by!r} is not one of {', '.join(GROUPINGS)}", "e.g. --by model")
    report = compute_stats(by=by, since=_since(since))
    if json_output:
        from council.render.json_out import dumps

        typer.echo(dumps(report.to_dict()))
        return
    say(_stats_text(report))


def _print_escalation(since: str | None, *, json_output: bool) -> None:
    from council.app.escalate import escalation_line
    from council.app.history import compute_escalation_stats

    summary = compute_escalation_stats(since=_since(since))
    if json_output:
        from council.render.json_out import dumps

        typer.echo(dumps({"escalation": summary}))
        return
    if summary is None:
        say('No escalating run in the history yet: council oracle --escalate "…" makes one.')
        return
    say(str(escalation_line(summary)))
    if summary["cost_saved_usd"] is not None:
        saved = summary["cost_saved_usd"]
        say(f"cost saved: ≈${saved:.4f} (calls not made × the panel's mean cost a call)")
    if not summary["shadow_runs"]:
        say("No shadow run yet: --shadow-rate 0.1 measures what the saving costs in answers.")


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}s"


def _usd(cost: float | None, unknown: int) -> str:
    """A group's cost: the known sum, marked when some calls' cost is unknown."""
    if cost is None:
        return "unknown"
    return f"${cost:.4f}" + ("+" if unknown else "")


# `council stats`'s columns: header, width, and whether it is the name (left-aligned).
_STATS_COLUMNS = (
    ("", 16),  # the group's name; its header is what it is grouped by
    ("calls", 5),
    ("errors", 7),
    ("retries", 7),
    ("p50", 7),
    ("p95", 7),
    ("ttft p50", 8),
    ("ttft p95", 8),
    ("queued p95", 10),
    ("re-sent", 7),
    ("tokens in", 10),
    ("out", 8),
    ("cost", 9),
)
# What a narrow terminal keeps first: the name, then where the time and money go.
_STATS_PRIORITY = (0, 1, 2, 5, 4, 12, 6, 3, 9, 11, 10, 7, 8)


def _stats_cells(g: Any) -> list[str]:
    return [
        g.name[:16],
        f"{g.calls}",
        f"{g.error_rate * 100:.1f}%",
        f"{g.retries}",
        _seconds(g.p50_latency),
        _seconds(g.p95_latency),
        _seconds(g.p50_ttft),
        _seconds(g.p95_ttft),
        _seconds(g.p95_queued),
        f"{g.resends}",
        f"{g.tokens_in:,}",
        f"{g.tokens_out:,}",
        _usd(g.cost_usd, g.cost_unknown),
    ]


def _stats_text(report: StatsReport) -> str:
    from council.render.listing import fit_columns, terminal_width

    if not report.groups:
        return "no calls recorded yet" + ("" if report.runs else "; run a council first")
    cells = [_stats_cells(g) for g in report.groups]
    widths = [width for _, width in _STATS_COLUMNS]
    columns = terminal_width()
    if columns is not None:  # as wide as what is shown, and only the columns that fit
        widths = [
            max([len(report.by) if i == 0 else len(header), *(len(row[i]) for row in cells)])
            for i, (header, _) in enumerate(_STATS_COLUMNS)
        ]
    # The "(N ?)" of unknown tokens goes after the last column: room for it is kept.
    unknown = max(
        (len(f" ({g.tokens_unknown} ?)") for g in report.groups if g.tokens_unknown), default=0
    )
    room = None if columns is None else columns - unknown
    kept = fit_columns(widths, _STATS_PRIORITY, room, gap=1)

    def line(values: list[str]) -> str:
        return " ".join(
            f"{values[i]:<{widths[i]}}" if i == 0 else f"{values[i]:>{widths[i]}}" for i in kept
        )

    noun = "run" if report.runs == 1 else "runs"
    header = line([report.by, *(h for h, _ in _STATS_COLUMNS[1:])])
    lines = [
        f"{report.runs} {noun}; slowest first (p95 latency)",
        header.rstrip() if columns else header,
    ]
    for g, row in zip(report.groups, cells, strict=True):
        lines.append(line(row) + (f" ({g.tokens_unknown} ?)" if g.tokens_unknown else ""))
    d = report.deliberations
    if d.runs:
        lines.append(
            f"deliberations: {d.runs}, {d.rounds / d.runs:.1f} rounds on average, "
            f"{d.convergence_rate * 100:.0f}% converged; speculation saved {d.saved:.1f}s "
            f"and wasted {d.wasted_tokens:,} tokens"
        )
    for suggestion in report.suggestions:
        lines.append(f"suggestion: {suggestion}")
    if columns is None:
        return "\n".join(lines)
    import textwrap

    # In a terminal the sentences below the table are wrapped here, at words.
    table = 2 + len(report.groups)
    return "\n".join(
        lines[:table]
        + [
            textwrap.fill(text, columns, subsequent_indent="  ", break_on_hyphens=False)
            for text in lines[table:]
        ]
    )
