"""A catalog of named files on a search path (personas, presets): discovery, shadowing, lookup.

Both kinds are found the same way (`council.config.paths.search_path`): every
`*.yaml`/`*.yml` file in each directory, highest priority first. The first file of
a name wins; a later one of the same name is kept, marked `shadowed_by` the winner,
so that `council personas list` and `council presets list` can show it.

    class PersonaCatalog(Catalog[Persona]):
        kind = "persona"
        @classmethod
        def read(cls, file): ...        # -> Found(name, description, item), or None to skip

    catalog = PersonaCatalog.discover()
    catalog.get("judge")                # the winning item; UsageError with "did you mean"
    catalog.skipped                     # files left out unread: broken symlinks, FIFOs...

Only regular files are read: a broken symlink, a directory, a FIFO or a device with
a catalog name is left out (never opened: a FIFO would block, a device never end),
and kept in `skipped` so that `council presets validate` can say so. A project's
file that another user owns, or that anyone may write, is left out with a warning
(`paths.yours`).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Self, TypeVar

from council.config.paths import search_path, yours
from council.config.reading import file_kind
from council.errors import UsageError

__all__ = ["Catalog", "Entry", "Found", "Skipped", "not_a_regular_file"]

T = TypeVar("T")

CATALOG_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Found(Generic[T]):
    """What reading one file found: its name, its one-line description, and its item."""

    name: str
    description: str
    item: T


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One file on the search path. `shadowed_by` is the file of the same name that wins
    (None for the winner itself); `origin` says where it was found ("project", "user",
    "built-in", or the environment variable that listed its directory)."""

    name: str
    path: Path
    origin: str
    description: str
    item: T
    shadowed_by: Path | None = None


@dataclass(frozen=True)
class Skipped:
    """A file on the search path that was left out unread, and why ("a broken symlink to x")."""

    path: Path
    origin: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}; council ignores it"


def not_a_regular_file(path: Path) -> str | None:
    """Why `path` is no file to read (a broken symlink, a FIFO, ...), or None when it is one."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            return f"a broken symlink to {os.readlink(path)}"
        return "gone"
    except OSError as exc:  # a symlink loop, no permission
        return f"unreadable ({exc.strerror})"
    kind = file_kind(mode)
    return None if kind == "a regular file" else f"{kind}, not a regular file"


class Catalog(Generic[T]):
    """Every file of one kind on the search path, in search order; the first of a name wins.

    A subclass names its `kind` ("persona": searched in `personas/`, listed by
    `council personas list`) and says how to `read` one file.
    """

    kind: str = ""

    def __init__(self, entries: list[Entry[T]], skipped: list[Skipped] | None = None) -> None:
        self.entries = entries
        self.skipped = skipped or []
        self._winners: dict[str, Entry[T]] = {}
        for entry in entries:
            self._winners.setdefault(entry.name, entry)

    @classmethod
    def read(cls, file: Path) -> Found[T] | None:
        """Read one file found on the search path; None to leave it out."""
        raise NotImplementedError

    @classmethod
    def discover(cls, cwd: Path | None = None) -> Self:
        entries: list[Entry[T]] = []
        skipped: list[Skipped] = []
        winners: dict[str, Path] = {}
        for directory, origin in search_path(f"{cls.kind}s", cwd):
            if not directory.is_dir():
                continue
            for file in sorted(directory.iterdir()):
                if file.suffix not in CATALOG_SUFFIXES:
                    continue
                reason = not_a_regular_file(file)
                if reason is not None:
                    skipped.append(Skipped(file, origin, reason))
                    continue
                if origin == "project" and not yours(file):
                    continue  # another user's file (or anyone's) in the project's folder
                found = cls.read(file)
                if found is None:
                    continue
                shadowed_by = winners.get(found.name)
                winners.setdefault(found.name, file)
                entries.append(
                    Entry(found.name, file, origin, found.description, found.item, shadowed_by)
                )
        return cls(entries, skipped)

    def names(self) -> list[str]:
        return sorted(self._winners)

    def find(self, name: str) -> Entry[T]:
        """The winning entry called `name`; UsageError (with a suggestion) when there is none."""
        entry = self._winners.get(name)
        if entry is None:
            raise self.unknown(name)
        return entry

    def get(self, name: str) -> T:
        return self.find(name).item

    def closest(self, name: str) -> str | None:
        """The known name nearest to a mistyped one, if any is near."""
        close = difflib.get_close_matches(name, self.names(), n=1)
        return close[0] if close else None

    def unknown(self, name: str) -> UsageError:
        close = self.closest(name)
        hint = f"did you mean {close!r}? " if close else ""
        return UsageError(
            f"unknown {self.kind} {name!r}",
            f"{hint}run 'council {self.kind}s list' to see the {len(self.names())} available",
        )
