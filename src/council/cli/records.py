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


def _when(started_at: float) -> str:
    return datetime.fromtimestamp(started_at).strftime("%Y-%m-%d %H:%M")


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
    json_output: JsonFlag = False,
) -> None:
    """Recent runs, newest first, one line each (subcommands: rm, export, prune).

    \b
    Examples:
      council history
      council history --since 7d --preset review
      council show "$(council history --json -n 1 | jq -r '.[0].id')"
    """
    if context.invoked_subcommand is not None:
        return
    from council.app.history import list_runs
    from council.render.times import iso_time

    runs = list_runs(limit=limit, preset=preset, since=_since(since))
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
        say("no runs recorded yet" + (" that match" if preset or since else ""))
        return
    for run, row in zip(runs, rows, strict=True):
        wall = _timed(row["wall"], 1)
        preset_text = f" [{row['preset']}]" if row["preset"] else ""
        query = _short(row["query"], 60) if row["query"] is not None else "(text not stored)"
        say(
            f"{row['id']}  {_when(run['started_at'])}  {row['command']:<10} "
            f"{row['status']:<11} {wall:>7}{preset_text}  {query}"
        )


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


@app.command(name="show")
@handles_errors
def show_command(
    run_id: Annotated[str, typer.Argument(help="The run's id (or a unique start of it).")],
    json_output: Annotated[
        bool, typer.Option("--json", help="The run's --json document, as it was printed.")
    ] = False,
) -> None:
    """Show a past run again from the history, with no network.

    Piped, the output is exactly what the run printed when piped; `--json` is its
    `--json` document.

    \b
    Examples:
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
    from council.app.history import resume_command, run_failures

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
    go_on = resume_command(run)
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
) -> None:
    """Where the time goes: latency, first token, errors and tokens per persona, model or endpoint.

    \b
    Examples:
      council stats --since 7d
      council stats --by endpoint --json
    """
    from council.app.history import GROUPINGS, compute_stats

    if by not in GROUPINGS:
        raise UsageError(f"--by {by!r} is not one of {', '.join(GROUPINGS)}", "e.g. --by model")
    report = compute_stats(by=by, since=_since(since))
    if json_output:
        from council.render.json_out import dumps

        typer.echo(dumps(report.to_dict()))
        return
    say(_stats_text(report))


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}s"


def _usd(cost: float | None, unknown: int) -> str:
    """A group's cost: the known sum, marked when some calls' cost is unknown."""
    if cost is None:
        return "unknown"
    return f"${cost:.4f}" + ("+" if unknown else "")


def _stats_text(report: StatsReport) -> str:
    if not report.groups:
        return "no calls recorded yet" + ("" if report.runs else "; run a council first")
    header = (
        f"{report.by:<16} {'calls':>5} {'errors':>7} {'retries':>7} {'p50':>7} {'p95':>7} "
        f"{'ttft p50':>8} {'ttft p95':>8} {'queued p95':>10} {'re-sent':>7} "
        f"{'tokens in':>10} {'out':>8} {'cost':>9}"
    )
    noun = "run" if report.runs == 1 else "runs"
    lines = [f"{report.runs} {noun}; slowest first (p95 latency)", header]
    for g in report.groups:
        unknown = f" ({g.tokens_unknown} ?)" if g.tokens_unknown else ""
        lines.append(
            f"{g.name[:16]:<16} {g.calls:>5} {g.error_rate * 100:>6.1f}% {g.retries:>7} "
            f"{_seconds(g.p50_latency):>7} {_seconds(g.p95_latency):>7} "
            f"{_seconds(g.p50_ttft):>8} {_seconds(g.p95_ttft):>8} "
            f"{_seconds(g.p95_queued):>10} {g.resends:>7} "
            f"{g.tokens_in:>10,} {g.tokens_out:>8,} {_usd(g.cost_usd, g.cost_unknown):>9}{unknown}"
        )
    d = report.deliberations
    if d.runs:
        lines.append(
            f"deliberations: {d.runs}, {d.rounds / d.runs:.1f} rounds on average, "
            f"{d.convergence_rate * 100:.0f}% converged; speculation saved {d.saved:.1f}s "
            f"and wasted {d.wasted_tokens:,} tokens"
        )
    for suggestion in report.suggestions:
        lines.append(f"suggestion: {suggestion}")
    return "\n".join(lines)
