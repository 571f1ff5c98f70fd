"""What a project's `.council/` changed about a run, said on stderr before it starts.

A project's files are someone else's (a repository the user cloned): its config or
a preset of its own may send the run to another endpoint on this machine, and its
files may give a built-in persona's (or preset's) name another stance. Neither is
refused, but the run says so, one line each, so that a user never consults a
stranger's "judge" believing it is council's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from council.config.paths import builtin_dir, project_dirs
from council.config.personas import Persona, PersonaCatalog
from council.config.presets import Preset
from council.config.settings import ResolvedSettings

__all__ = ["project_notes"]

# A setting's source: "project config (/repo/.council/config.yaml:3)", "preset x (...)".
_SOURCE = re.compile(r".*? \((?P<path>.*):\d+\)$")


def _in_project(path: Path | None) -> bool:
    if path is None:
        return False
    folders = [directory / ".council" for directory in project_dirs()]
    return any(path.is_relative_to(folder) for folder in folders)


def _endpoint_note(settings: ResolvedSettings) -> str | None:
    for key in ("endpoint", "base_url"):
        match = _SOURCE.match(settings.sources.get(key, ""))
        if match and _in_project(Path(match["path"])):
            endpoint = settings.endpoint
            target = endpoint.base_url if endpoint.local_model_path is None else "the local model"
            return f"council: note: {match[0]} sends this run to {target}"
    return None


def _is_built_in_preset(name: str) -> bool:
    return (builtin_dir("presets") / f"{name}.yaml").is_file()


def project_notes(
    settings: ResolvedSettings,
    catalog: PersonaCatalog,
    members: Iterable[Persona],
    preset: Preset | None = None,
) -> list[str]:
    """One line when a project file chose the run's endpoint, and one per built-in
    persona (or preset) a project file stands in for among the run's."""
    notes = [note] if (note := _endpoint_note(settings)) else []
    if preset is not None and _in_project(preset.path) and _is_built_in_preset(preset.name):
        notes.append(
            f"council: note: preset {preset.name!r} is the project's ({preset.path}), "
            "not the built-in one"
        )
    built_in = {entry.name for entry in catalog.entries if entry.origin == "built-in"}
    said: set[str] = set()
    for persona in members:
        if persona.name in built_in and persona.name not in said and _in_project(persona.source):
            said.add(persona.name)
            notes.append(
                f"council: note: persona {persona.name!r} is the project's ({persona.source}), "
                "not the built-in one"
            )
    return notes
