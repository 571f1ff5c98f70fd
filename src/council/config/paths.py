"""Where council's files are found: the project's `.council/`, env paths, the user's, built-ins.

Personas and presets are searched the same way, first match wins:
`.council/<kind>/` from the current directory up to the repository root (the
directory holding `.git`), then each directory on `$COUNCIL_<KIND>_PATH`
(colon-separated), then `<kind>/` in the user's council home, then the built-ins
shipped in the wheel (the repository's top-level `<kind>/` in a source checkout).

A project's `.council/` can send questions elsewhere and speak for built-in
personas, so it is read only where the user put it (the same hole as git's
`safe.directory`, CVE-2022-24765): the search stops at the repository root, or
at the current directory outside a repository, and never goes above `$HOME`;
and a `.council/` (or a file or folder in it) that another user owns, or that
anyone may write, is ignored, with one line on stderr saying so.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from importlib import resources
from pathlib import Path

__all__ = [
    "builtin_dir",
    "private_directory",
    "project_dirs",
    "project_paths",
    "search_path",
    "untrusted",
    "user_config_dir",
    "user_data_dir",
    "yours",
]


def private_directory(path: Path) -> None:
    """Make `path` and any missing parent 0700: council's state is its user's alone.

    (`Path.mkdir(parents=True, mode=...)` gives the mode to the last one only.) A
    directory that is there already keeps its mode: the user may have chosen it.
    """
    missing: list[Path] = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            directory.mkdir(mode=0o700)


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


def project_dirs(cwd: Path | None = None) -> list[Path]:
    """The directories whose `.council/` may be read, nearest first: the current one
    up to the repository root (the nearest holding `.git`), or the current one alone
    outside a repository; none above `$HOME` when the search starts under it."""
    start = (cwd or Path.cwd()).resolve()
    upward = [start, *start.parents]
    root = next((d for d in upward if (d / ".git").exists()), None)
    dirs = upward[: upward.index(root) + 1] if root is not None else [start]
    try:
        home = Path.home().resolve()
    except (RuntimeError, KeyError):  # no home directory to be found
        return dirs
    if home in dirs:
        dirs = dirs[: dirs.index(home) + 1]
    return dirs


def _owner(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def untrusted(path: Path) -> str | None:
    """Why `path` is someone else's to write (owned by another user, or writable by
    anyone), or None when only its owner, the current user, can change it.

    Not checked where there are no owners to compare (Windows)."""
    if not hasattr(os, "geteuid"):
        return None
    try:
        info = path.stat()
    except OSError:
        return None  # gone, or unreadable: reading it fails where it is read
    if info.st_uid != os.geteuid():
        return f"it is owned by {_owner(info.st_uid)}, not by you"
    if info.st_mode & stat.S_IWOTH:  # a sticky bit does not help: anyone may add a file
        return "anyone may write to it"
    return None


_said: set[Path] = set()


def yours(path: Path) -> bool:
    """Whether a project's `path` may be read: True when only the user can change it;
    else False, and one line on stderr says why (once per process and path)."""
    why = untrusted(path)
    if why is None:
        return True
    if path not in _said:
        _said.add(path)
        sys.stderr.write(
            f"council: warning: ignoring {path}: {why} (a project's .council/ is read "
            "only when it is yours alone)\n"
        )
    return False


def project_paths(relative: str, cwd: Path | None = None) -> list[Path]:
    """`.council/<relative>` in the directories `project_dirs` allows, nearest first,
    leaving out (and saying so) those that are not the user's alone."""
    found: list[Path] = []
    for directory in project_dirs(cwd):
        folder = directory / ".council"
        candidate = folder / relative
        if candidate.exists() and yours(folder) and yours(candidate):
            found.append(candidate)
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
