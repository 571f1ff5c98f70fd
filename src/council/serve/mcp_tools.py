"""The bodies of council's MCP tools that read rather than ask: presets, recent runs, one run.

Each returns the text a model reads and the structured content (`mcp_schemas.py`);
errors a user can cause are raised as `CouncilError`. Nothing here imports the MCP
SDK: `mcp_server.py` wires these into tools.
"""

from __future__ import annotations

import json
from typing import Any

from council.errors import ConfigError, UsageError
from council.serve.mcp_run import McpSettings
from council.serve.mcp_schemas import (
    PersonaInfo,
    PresetInfo,
    Presets,
    RecentRuns,
    RunRecord,
    RunSummary,
)

__all__ = ["list_presets", "recent_runs", "show_run"]

# Most runs `recent_runs` lists at once, and the longest query or answer preview it gives.
MOST_RUNS = 100
PREVIEW = 300


def _preset_info(entry: Any, catalog: Any, personas: Any, user: Any) -> PresetInfo:
    info = PresetInfo(name=entry.name, description=entry.description, origin=entry.origin)
    try:
        preset = catalog.load_file(entry.path, personas=personas, user=user)
    except (ConfigError, UsageError) as error:
        return info.model_copy(update={"problem": error.one_line()})
    values = preset.values
    rounds = values.get("rounds")
    speculative = values.get("speculative")
    return info.model_copy(
        update={
            "description": preset.description or entry.description,
            "personas": [p.name for p in preset.personas] if preset.personas else None,
            "arbiter": preset.arbiter.name if preset.arbiter else None,
            "rounds": rounds if isinstance(rounds, int) else None,
            "speculative": speculative if isinstance(speculative, bool) else None,
        }
    )


def list_presets(settings: McpSettings) -> tuple[str, Presets]:
    """Every preset and persona council can find here, and the council asked by default."""
    from council.config.files import load_user_config
    from council.config.personas import PersonaCatalog
    from council.config.presets import PresetCatalog
    from council.config.settings import load_settings, split_names

    user = load_user_config()
    personas = PersonaCatalog.discover()
    catalog = PresetCatalog.discover()
    presets = [
        _preset_info(e, catalog, personas, user) for e in catalog.entries if e.shadowed_by is None
    ]
    members = [
        PersonaInfo(name=e.name, description=e.description, origin=e.origin)
        for e in personas.entries
        if e.shadowed_by is None
    ]
    flags = {"endpoint": settings.endpoint} if settings.endpoint else {}
    resolved = load_settings(flags, {"endpoint": "--endpoint"}, settings.preset, require_key=False)
    default = resolved.settings.get("personas")
    if resolved.preset is not None and resolved.preset.personas is not None:
        default_names = [p.name for p in resolved.preset.personas]
    elif isinstance(default, str):
        default_names = split_names(default, "personas")
    else:
        default_names = [str(name) for name in default]
    result = Presets(presets=presets, personas=members, default_personas=default_names)
    return _presets_text(result), result


def _presets_text(result: Presets) -> str:
    lines = ["Presets (ask or deliberate with preset=NAME):"]
    for p in result.presets:
        how = []
        if p.personas:
            how.append(", ".join(p.personas))
        if p.rounds:
            how.append(f"{p.rounds} rounds" + (", speculative" if p.speculative else ""))
        detail = f" [{'; '.join(how)}]" if how else ""
        problem = f" (cannot be used: {p.problem})" if p.problem else ""
        lines.append(f"- {p.name}: {p.description}{detail}{problem}")
    if not result.presets:
        lines.append("- (none)")
    lines.append("")
    lines.append("Personas (ask or deliberate with personas=[NAMES]):")
    lines += [f"- {p.name}: {p.description}" for p in result.personas]
    lines.append("")
    lines.append(f"Asked when no personas or preset is given: {', '.join(result.default_personas)}")
    return "\n".join(lines)


def _preview(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW else flat[: PREVIEW - 1] + "…"


def _summary(run: dict[str, Any]) -> RunSummary:
    from council.render.times import iso_time

    return RunSummary(
        id=run["id"],
        started_at=iso_time(run["started_at"]),
        command=run["command"],
        status=run["status"],
        preset=run.get("preset"),
        query=_preview(run.get("query")),
        answer=_preview(run.get("answer")),
        cost_usd=run.get("cost_usd"),
    )


def recent_runs(limit: int) -> tuple[str, RecentRuns]:
    """The newest runs in the history (every command's, `mcp` ones among them)."""
    from council.app.history import list_runs

    if not 1 <= limit <= MOST_RUNS:
        raise UsageError(f"limit {limit}: expected 1 to {MOST_RUNS}", "e.g. limit 10")
    runs = [_summary(run) for run in list_runs(limit=limit, preset=None, since=None)]
    result = RecentRuns(runs=runs)
    if not runs:
        return "The history has no runs yet.", result
    lines = [
        f"{r.id}  {r.started_at}  {r.command}  {r.status}  {r.query or '(question not kept)'}"
        for r in runs
    ]
    return "\n".join(["Recent runs, newest first (show_run ID shows one):", *lines]), result


def show_run(run_id: str) -> tuple[str, RunRecord]:
    """One past run, by its id or a unique start of it, as the history kept it."""
    from council.app.history import find_run, run_failures

    run, calls = find_run(run_id.strip())
    document = json.loads(run["document"]) if run.get("document") else None
    failures = [f.to_dict() for f in run_failures(run, calls)]
    result = RunRecord(run=_summary(run), document=document, failures=failures)
    summary = result.run
    head = f"Run {summary.id} ({summary.command}, {summary.started_at}): {summary.status}."
    if isinstance(run.get("query"), str):
        head += f"\nQuestion: {run['query']}"
    if not run.get("store_text") or document is None:
        body = "Its texts were not kept (recorded with --no-store-text, or it never finished)."
        return f"{head}\n\n{body}", result
    return f"{head}\n\n{run.get('markdown') or ''}".rstrip() + "\n", result
