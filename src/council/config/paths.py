"""Where council's files are found: the project's `.council/`, env paths, the user's, built-ins.

Personas and presets are searched the same way, first match wins:
`.council/<kind>/` from the current directory up to the repository root (the
directory holding `.git`), then each directory on `$COUNCIL_<KIND>_PATH`
(colon-separated), then `<kind>/` in the user's council home, then the built-ins
shipped in the wheel (the repository's top-level `<kind>/` in a source checkout).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

__all__ = ["builtin_dir", "project_paths", "search_path", "user_config_dir", "user_data_dir"]


def user_config_dir() -> Path:
    """Where per-user files live: $COUNCIL_HOME, else the platform's config dir.

    Linux `$XDG_CONFIG_HOME/council` or `~/.config/council`, macOS
    `~/Library/Application Support/council`, Windows `%APPDATA%\\council` (roaming): the
    places click's get_app_dir chose before. (Recent platformdirs releases also honour
    an absolute $XDG_CONFIG_HOME on macOS.)
    """
    home = os.environ.get("COUNCIL_HOME")
    if home:
        return Path(home).expanduser()
    # Imported here: tests and scripts set COUNCIL_HOME and never pay for it.
    import platformdirs

    return Path(platformdirs.user_config_dir("council", appauthor=False, roaming=True))


def user_data_dir() -> Path:
    """Where council keeps data (history.db): $COUNCIL_HOME, else the platform's data dir.

    Linux `$XDG_DATA_HOME/council` or `~/.local/share/council`, macOS
    `~/Library/Application Support/council`, Windows `%LOCALAPPDATA%\\council`.
    """
    home = os.environ.get("COUNCIL_HOME")
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("council", appauthor=False))


def project_paths(relative: str, cwd: Path | None = None) -> list[Path]:
    """`.council/<relative>` in the current directory and each parent that has it,
    nearest first, stopping at the repository root."""
    start = (cwd or Path.cwd()).resolve()
    found: list[Path] = []
    for directory in [start, *start.parents]:
        candidate = directory / ".council" / relative
        if candidate.exists():
            found.append(candidate)
        if (directory / ".git").exists():
            break
    return found


def builtin_dir(kind: str) -> Path:
    """The built-in `kind` ("personas", "presets"): in the wheel, or the repository's top level."""
    packaged = Path(str(resources.files("council"))) / "_builtin" / kind
    if packaged.is_dir():
        return packaged
    # An editable install or a source checkout: src/council/config/ -> repository root.
    return Path(__file__).resolve().parents[3] / kind


def search_path(kind: str, cwd: Path | None = None) -> list[tuple[Path, str]]:
    """Directories to search for `kind`, highest priority first, each with a label."""
    path = [(d, "project") for d in project_paths(kind, cwd) if d.is_dir()]
    variable = f"COUNCIL_{kind.upper().rstrip('S')}_PATH"
    for entry in os.environ.get(variable, "").split(os.pathsep):
        if entry:
            path.append((Path(entry).expanduser(), variable))
    path.append((user_config_dir() / kind, "user"))
    path.append((builtin_dir(kind), "built-in"))
    return path
