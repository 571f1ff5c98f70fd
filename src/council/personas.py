"""The Persona model, and finding persona files: project, user and built-in.

A persona file is YAML:

    name: skeptic
    description: Questions assumptions and asks for evidence.
    system: |
      You are the skeptic on a council ...
    temperature: 0.7      # optional
    max_tokens: 800       # optional
    model: gpt-4o         # optional, overrides the run's model

Search order, first match wins: the project's `.council/personas/` (from the
current directory up to the repository root), `$COUNCIL_PERSONA_PATH`
(colon-separated), the user's `personas/` dir, and the built-ins shipped with
council.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from council.config import user_config_dir
from council.errors import ConfigError, UsageError

__all__ = [
    "MAX_PERSONA_FILE_BYTES",
    "Persona",
    "PersonaCatalog",
    "builtin_persona_dir",
    "load_persona_file",
]

MAX_PERSONA_FILE_BYTES = 256 * 1024
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
REQUIRED_KEYS = ("name", "description", "system")
OPTIONAL_KEYS = ("model", "temperature", "max_tokens")


@dataclass(frozen=True)
class Persona:
    """One council member: a name, a stance (the system prompt) and optional model settings.

    `model`, `temperature` and `max_tokens` are None when the persona leaves them
    to the run. `source` is the file it came from (None for personas built in code).
    """

    name: str
    description: str
    system: str
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    source: Path | None = None


def builtin_persona_dir() -> Path:
    """The built-in personas: inside the installed wheel, or the repository's `personas/`."""
    packaged = Path(str(resources.files("council"))) / "_builtin" / "personas"
    if packaged.is_dir():
        return packaged
    # An editable install or a source checkout: src/council/ -> repository root.
    return Path(__file__).resolve().parents[2] / "personas"


def _project_persona_dirs(start: Path) -> list[Path]:
    """`.council/personas/` in `start` and each parent, stopping at the repository root."""
    found: list[Path] = []
    for directory in [start, *start.parents]:
        candidate = directory / ".council" / "personas"
        if candidate.is_dir():
            found.append(candidate)
        if (directory / ".git").exists():
            break
    return found


def persona_search_path(cwd: Path | None = None) -> list[tuple[Path, str]]:
    """Directories to search, highest priority first, each with a label for listings."""
    path: list[tuple[Path, str]] = [
        (d, "project") for d in _project_persona_dirs((cwd or Path.cwd()).resolve())
    ]
    for entry in os.environ.get("COUNCIL_PERSONA_PATH", "").split(os.pathsep):
        if entry:
            path.append((Path(entry).expanduser(), "COUNCIL_PERSONA_PATH"))
    path.append((user_config_dir() / "personas", "user"))
    path.append((builtin_persona_dir(), "built-in"))
    return path


def _field_error(path: Path, key: str, problem: str, line: int | None = None) -> ConfigError:
    where = f"{path}:{line}" if line else str(path)
    return ConfigError(
        f"{where}: {key}: {problem}", "fix the persona file, then run the command again"
    )


def _key_lines(text: str) -> dict[str, int]:
    """Line numbers of top-level keys, for error messages (persona files are flat)."""
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        match = re.match(r"^([A-Za-z_][\w-]*)\s*:", line)
        if match and match.group(1) not in lines:
            lines[match.group(1)] = number
    return lines


def load_persona_file(path: Path) -> Persona:
    """Read and validate one persona file; ConfigError names the file, line and key."""
    import yaml  # only commands that read personas pay for yaml

    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read persona file ({exc.strerror})") from exc
    if size > MAX_PERSONA_FILE_BYTES:
        raise ConfigError(
            f"{path}: persona file is {size} bytes, over the {MAX_PERSONA_FILE_BYTES} byte limit",
            "persona prompts should be short; trim the file",
        )
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        # The C SafeLoader when libyaml is present: the same safe subset, faster.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}: {problem}", "fix the YAML syntax") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with name, description and system")
    return _persona_from_mapping(data, path, _key_lines(text))


def _persona_from_mapping(data: dict[str, Any], path: Path, lines: dict[str, int]) -> Persona:
    allowed = REQUIRED_KEYS + OPTIONAL_KEYS
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(allowed)}"
            raise _field_error(path, str(key), f"unknown key ({hint})", lines.get(str(key)))
    for key in REQUIRED_KEYS:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise _field_error(path, key, "required, a non-empty string", lines.get(key))
    name = data["name"].strip()
    if not NAME_PATTERN.match(name):
        raise _field_error(
            path, "name", f"{name!r} must be lowercase letters, digits, - or _", lines.get("name")
        )
    temperature = data.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0 <= temperature <= 2
    ):
        raise _field_error(path, "temperature", "a number from 0 to 2", lines.get("temperature"))
    max_tokens = data.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise _field_error(path, "max_tokens", "a positive whole number", lines.get("max_tokens"))
    model = data.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise _field_error(path, "model", "a model name", lines.get("model"))
    return Persona(
        name=name,
        description=data["description"].strip(),
        system=data["system"].strip(),
        model=model,
        temperature=float(temperature) if temperature is not None else None,
        max_tokens=max_tokens,
        source=path,
    )


@dataclass(frozen=True)
class CatalogEntry:
    persona: Persona
    origin: str  # "project", "user", "built-in", ...
    shadowed_by: Path | None = None


class PersonaCatalog:
    """All personas on the search path, by name; the first found wins.

    Usage:
        catalog = PersonaCatalog.discover()
        judge, critic = catalog.resolve(["judge", "critic"])
    """

    def __init__(self, entries: list[CatalogEntry]) -> None:
        self.entries = entries
        self._by_name: dict[str, Persona] = {}
        for entry in entries:
            if entry.shadowed_by is None:
                self._by_name[entry.persona.name] = entry.persona

    @classmethod
    def discover(cls, cwd: Path | None = None) -> PersonaCatalog:
        entries: list[CatalogEntry] = []
        winners: dict[str, Path] = {}
        for directory, origin in persona_search_path(cwd):
            if not directory.is_dir():
                continue
            for file in sorted(directory.glob("*.y*ml")):
                if file.suffix not in (".yaml", ".yml"):
                    continue
                persona = load_persona_file(file)
                if persona.name != file.stem:
                    raise ConfigError(
                        f"{file}: name {persona.name!r} does not match the file name {file.stem!r}",
                        f"rename the file to {persona.name}.yaml or change its name",
                    )
                shadowed_by = winners.get(persona.name)
                if shadowed_by is None:
                    winners[persona.name] = file
                entries.append(CatalogEntry(persona, origin, shadowed_by))
        return cls(entries)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def get(self, name: str) -> Persona:
        persona = self._by_name.get(name)
        if persona is None:
            raise self._unknown(name)
        return persona

    def resolve(self, names: list[str]) -> list[Persona]:
        """Personas for the given names, in order; UsageError for unknown or repeated names."""
        seen: set[str] = set()
        personas: list[Persona] = []
        for name in names:
            if name in seen:
                raise UsageError(f"persona {name!r} is listed twice", "list each persona once")
            seen.add(name)
            personas.append(self.get(name))
        return personas

    def _unknown(self, name: str) -> UsageError:
        close = difflib.get_close_matches(name, self.names(), n=1)
        suggestion = f"did you mean {close[0]!r}? " if close else ""
        return UsageError(
            f"unknown persona {name!r}",
            f"{suggestion}run 'council personas list' to see the {len(self._by_name)} available",
        )
