"""What a project's `.council/` changed about a run, said on stderr before it starts.

A project's files are someone else's (a repository the user cloned): they may send
the run to another endpoint on this machine, or give a built-in persona's name
another stance. Neither is refused, but the run says so, one line each, so that
a user never consults a stranger's "judge" without knowing.
"""

from __future__ import annotations

from collections.abc import Iterable

from council.config.personas import Persona, PersonaCatalog
from council.config.settings import ResolvedSettings

__all__ = ["project_notes"]

PROJECT = "project config"


def project_notes(
    settings: ResolvedSettings, catalog: PersonaCatalog, members: Iterable[Persona]
) -> list[str]:
    """One line for the endpoint a project config chose, one per built-in persona a
    project file stands in for among the run's `members`."""
    notes: list[str] = []
    endpoint = settings.endpoint
    for key in ("endpoint", "base_url"):
        source = settings.sources.get(key, "")
        if source.startswith(PROJECT):
            where = source.removeprefix(PROJECT).strip(" ()")
            notes.append(
                f"council: note: the project config ({where}) sends this run to "
                f"{endpoint.base_url if endpoint.local_model_path is None else 'the local model'}"
            )
            break
    built_in = {entry.name for entry in catalog.entries if entry.origin == "built-in"}
    project_files = {entry.path for entry in catalog.entries if entry.origin == "project"}
    said: set[str] = set()
    for persona in members:
        source = persona.source
        if persona.name in built_in and source in project_files and persona.name not in said:
            said.add(persona.name)
            notes.append(
                f"council: note: persona {persona.name!r} is the project's ({source}), "
                "not the built-in one"
            )
    return notes
