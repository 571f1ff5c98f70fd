"""The Persona model, and finding persona files: project, user and built-in.

A persona file is YAML:

    name: skeptic
    description: Questions assumptions and asks for evidence.
    system: |
      You are the skeptic on a council ...
    temperature: 0.7      # optional
    max_tokens: 800       # optional
    model: gpt-4o         # optional, overrides the run's model

(`system_file: prompt.md` instead of `system:` reads the prompt from a file in the
same directory.)

Search order, first match wins: the project's `.council/personas/` (from the
current directory up to the repository root), `$COUNCIL_PERSONA_PATH`
(colon-separated), the user's `personas/` dir, and the built-ins shipped with
council.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from council.config.catalog import Catalog, Found
from council.config.checks import NAME_CHARACTERS, RUN_SETTINGS, is_name, key_problems
from council.config.paths import builtin_dir
from council.config.reading import NotARegularFile, read_limited
from council.config.yamlfile import FileProblem, Located, load_yaml_file, problems_error
from council.errors import ConfigError, UsageError

__all__ = [
    "MAX_PERSONA_FILE_BYTES",
    "Persona",
    "PersonaCatalog",
    "builtin_persona_dir",
    "load_persona_file",
    "persona_from_mapping",
]

MAX_PERSONA_FILE_BYTES = 256 * 1024
PERSONA_SETTINGS = ("temperature", "max_tokens", "model")
PERSONA_KEYS = ("name", "description", "system", "model", "endpoint", "temperature", "max_tokens")


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
    # The endpoint profile its calls go to (None: the run's endpoint). Set by
    # `endpoint:` in its definition, or by `name@profile` where it is named.
    endpoint: str | None = None


def builtin_persona_dir() -> Path:
    return builtin_dir("personas")


def _problem(path: Path, data: Located, key: str, problem: str) -> FileProblem:
    return FileProblem(path, data.key_position(key), key, problem)


def read_system_file(
    path: Path, data: Located, reference: str
) -> tuple[str | None, FileProblem | None]:
    """The text of a `system_file:`, which must stay inside the referring file's directory.

    A shared preset is someone else's file: it may not make council read (and send to a
    model) a file outside its own directory, by `..`, an absolute path or a symlink.
    """
    base = path.parent.resolve()
    position = data.value_position("system_file")

    def problem(text: str) -> tuple[None, FileProblem]:
        return None, FileProblem(path, position, "system_file", text)

    candidate = Path(reference)
    if candidate.is_absolute() or ".." in candidate.parts:
        return problem(f"{reference!r} must be a relative path inside {base}")
    target = (base / candidate).resolve()
    if not target.is_relative_to(base):
        return problem(f"{reference!r} leads outside {base} (a symlink?)")
    try:
        data = read_limited(target, MAX_PERSONA_FILE_BYTES)
        if len(data) > MAX_PERSONA_FILE_BYTES:
            return problem(f"{reference!r} is over {MAX_PERSONA_FILE_BYTES:,} bytes")
        return data.decode("utf-8"), None
    except FileNotFoundError:
        return problem(f"{reference!r} does not exist")
    except NotARegularFile as exc:
        return problem(f"{reference!r} is {exc.kind}, not a regular file")
    except (OSError, UnicodeDecodeError) as exc:
        return problem(f"cannot read {reference!r} ({exc})")


def persona_from_mapping(
    data: Located, path: Path, *, inline: bool = False
) -> tuple[Persona | None, list[FileProblem]]:
    """Validate a persona mapping (a file, or inline in a preset); the persona or the problems.

    `system_file:` (instead of `system:`) reads the prompt from a file next to `path`.
    An inline persona may leave out its description.
    """
    problems: list[FileProblem] = []
    problems += key_problems(data, path, (*PERSONA_KEYS, "system_file"))
    required = ("name",) if inline else ("name", "description")
    for key in required:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.append(_problem(path, data, key, "required, a non-empty string"))
    name = data.get("name")
    if isinstance(name, str) and name.strip() and not is_name(name.strip()):
        problems.append(_problem(path, data, "name", f"{name!r} must be {NAME_CHARACTERS}"))
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        problems.append(_problem(path, data, "description", "a string"))
    system = data.get("system")
    if "system" in data and "system_file" in data:
        problems.append(_problem(path, data, "system_file", "give system or system_file, not both"))
    elif "system_file" in data:
        reference = data["system_file"]
        if not isinstance(reference, str) or not reference.strip():
            problems.append(_problem(path, data, "system_file", "a file name"))
        else:
            system, problem = read_system_file(path, data, reference.strip())
            if problem:
                problems.append(problem)
    system_missing = not isinstance(system, str) or not system.strip()
    if system_missing and not any(p.key in ("system", "system_file") for p in problems):
        problems.append(
            _problem(path, data, "system", "required, a non-empty string (or system_file)")
        )
    # The run settings a persona may set, checked as in presets and config files; left
    # out or null, the run's own value applies.
    for key in PERSONA_SETTINGS:
        value = data.get(key)
        if value is not None and not RUN_SETTINGS[key].accepts(value):
            problems.append(_problem(path, data, key, RUN_SETTINGS[key].expects))
    endpoint = data.get("endpoint")
    if endpoint is not None and not is_name(endpoint):
        problems.append(_problem(path, data, "endpoint", f"a profile name: {NAME_CHARACTERS}"))
    if problems:
        return None, problems
    assert isinstance(name, str) and isinstance(system, str)
    temperature = data.get("temperature")
    return (
        Persona(
            name=name.strip(),
            description=(description or f"defined in {path.name}").strip(),
            system=system.strip(),
            model=data.get("model"),
            temperature=float(temperature) if temperature is not None else None,
            max_tokens=data.get("max_tokens"),
            source=path,
            endpoint=endpoint,
        ),
        [],
    )


def load_persona_file(path: Path) -> Persona:
    """Read and validate one persona file; ConfigError names the file, line and key."""
    data = load_yaml_file(path, what="persona file", max_bytes=MAX_PERSONA_FILE_BYTES)
    if not isinstance(data, Located):
        raise ConfigError(f"{path}: expected a mapping with name, description and system")
    persona, problems = persona_from_mapping(data, path)
    if problems:
        raise problems_error(problems, "fix the persona file, then run the command again")
    assert persona is not None
    return persona


class PersonaCatalog(Catalog[Persona]):
    """All personas on the search path, by name; the first found wins.

    Usage:
        catalog = PersonaCatalog.discover()
        judge, critic = catalog.resolve(["judge", "critic"])
    """

    kind = "persona"

    @classmethod
    def read(cls, file: Path) -> Found[Persona]:
        persona = load_persona_file(file)
        if persona.name != file.stem:
            raise ConfigError(
                f"{file}: name {persona.name!r} does not match the file name {file.stem!r}",
                f"rename the file to {persona.name}.yaml or change its name",
            )
        return Found(persona.name, persona.description, persona)

    def get(self, name: str) -> Persona:
        """The persona called `name`; `name@profile` is it on that endpoint profile."""
        base, at, profile = name.partition("@")
        persona = super().get(base.strip())
        return replace(persona, endpoint=profile.strip()) if at and profile.strip() else persona

    def resolve(self, names: list[str]) -> list[Persona]:
        """Personas for the given names, in order; UsageError for unknown or repeated names."""
        seen: set[str] = set()
        personas: list[Persona] = []
        for name in names:
            persona = self.get(name)
            if persona.name in seen:
                raise UsageError(f"persona {name!r} is listed twice", "list each persona once")
            seen.add(persona.name)
            personas.append(persona)
        return personas
