"""The Preset model: finding preset files, `extends`, validation with file:line:column errors.

A preset fixes a council a team runs often, and is committed with their code:

    name: review
    description: Code and design review.
    extends: base               # optional: another preset, merged underneath this one
    personas: [critic, security, pragmatist]
    arbiter: arbiter
    endpoint: openrouter        # a profile in each user's own config
    model: openai/gpt-4o-mini
    rounds: 2
    speculative: true
    jury: [judge, critic@groq]  # optional: who `council judge --preset review` asks

Personas may also be written inline (a mapping with name, system or system_file,
and optionally description, model, temperature, max_tokens).

Search order, first match wins: `.council/presets/` from the current directory up
to the repository root, `$COUNCIL_PRESET_PATH` (colon-separated), the user's
`presets/`, the built-ins. A preset that `extends` its own name continues with
the next preset of that name down the search path, so a team can adjust a built-in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from council.config.catalog import Catalog, Entry, Found
from council.config.checks import (
    NAME_CHARACTERS,
    NAMED_SETTINGS,
    PRESET_FIELDS,
    RUN_SETTINGS,
    Check,
    check_fields,
    check_settings,
    expected,
    is_name,
    key_problems,
)
from council.config.files import UserConfig, has_profile, missing_profile_error
from council.config.paths import builtin_dir
from council.config.personas import Persona, PersonaCatalog, persona_from_mapping
from council.config.trust import is_secret_name, secret_problems, shared_endpoint_problems
from council.config.yamlfile import (
    FileError,
    FileProblem,
    Located,
    load_yaml_file,
    problems_error,
)
from council.errors import ConfigError, UsageError

__all__ = [
    "MAX_PRESET_BYTES",
    "Preset",
    "PresetCatalog",
    "builtin_preset_dir",
    "profile_warnings",
]

MAX_PRESET_BYTES = 1024 * 1024
# `jury`: the jurors of `council judge` (names, name@profile, or definitions, as personas).
JURY_KEY = "jury"
PRESET_KEYS = ("name", "description", "extends", *NAMED_SETTINGS, JURY_KEY, *RUN_SETTINGS)
PRESET_KEYS += ("escalate",)
# `escalate:` (council oracle --escalate): true, or its settings; checked with file:line.
ESCALATE_KEYS = ("panel", "threshold", "shadow_rate")
_FRACTION = Check(lambda v: _fraction(v), "a number from 0 to 1")
ESCALATE_CHECKS: dict[str, Check] = {
    "panel": Check(
        lambda v: _panel(v), "1, 2 or 3 (the council's first personas), or a list of names"
    ),
    "threshold": _FRACTION,
    "shadow_rate": _FRACTION,
}
_ESCALATE = Check(
    lambda v: isinstance(v, bool | dict),
    "true, false, or a mapping with panel, threshold and shadow_rate",
)
NOT_IN_PRESET = {
    "api_key_env": "a preset may not choose which of your keys is sent; name an endpoint "
    "profile from your own config instead (endpoint: NAME)",
}


def builtin_preset_dir() -> Path:
    return builtin_dir("presets")


@dataclass(frozen=True)
class Preset:
    """A preset with its `extends` chain merged: every value, and the `file:line` it came from.

    `personas` and `arbiter` are resolved Persona objects (None when the preset
    leaves them to the command line and config).
    """

    name: str
    description: str
    path: Path
    chain: tuple[Path, ...]
    values: dict[str, Any]
    where: dict[str, str]
    personas: tuple[Persona, ...] | None = None
    arbiter: Persona | None = None
    arbiter_fallback: tuple[Persona, ...] | None = None
    jury: tuple[Persona, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        named = (*NAMED_SETTINGS, JURY_KEY)
        values = {k: v for k, v in self.values.items() if k not in named}
        if self.personas is not None:
            values["personas"] = [p.name for p in self.personas]
        if self.arbiter is not None:
            values["arbiter"] = self.arbiter.name
        if self.arbiter_fallback is not None:
            values["arbiter_fallback"] = [p.name for p in self.arbiter_fallback]
        if self.jury is not None:
            values[JURY_KEY] = [p.name for p in self.jury]
        return {
            "name": self.name,
            "description": self.description,
            "path": str(self.path),
            "extends": [str(p) for p in self.chain[1:]],
            "values": values,
            "sources": self.where,
        }


@dataclass
class _Loaded:
    entry: Entry[None]
    data: Located


def _description(path: Path) -> str:
    """The description for listings, read cheaply; the real check happens on use."""
    try:
        data = load_yaml_file(path, what="preset", max_bytes=MAX_PRESET_BYTES)
    except ConfigError:
        return "(unreadable: run 'council presets validate')"
    value = data.get("description") if isinstance(data, dict) else None
    return value.strip() if isinstance(value, str) else ""


class PresetCatalog(Catalog[None]):
    """All presets on the search path; the first of a name wins.

    Entries hold no item: a preset is read and checked when it is used (`load`).

    Usage:
        catalog = PresetCatalog.discover()
        preset = catalog.load("review", personas=PersonaCatalog.discover(), user=user_config)
    """

    kind = "preset"

    @classmethod
    def read(cls, file: Path) -> Found[None] | None:
        return Found(file.stem, _description(file), None)

    def find(self, name: str, below: Path | None = None) -> Entry[None]:
        """The first preset called `name` (after the file `below`, for self-extension)."""
        if below is None:
            return super().find(name)
        candidates = [e for e in self.entries if e.name == name]
        paths = [e.path for e in candidates]
        candidates = candidates[paths.index(below) + 1 :] if below in paths else []
        if not candidates:
            raise self.unknown(name)
        return candidates[0]

    # -- validation --------------------------------------------------------------------

    def problems(self, path: Path, personas: PersonaCatalog, user: UserConfig) -> list[FileProblem]:
        """Everything wrong with one preset file and the chain it extends.

        A profile it names that `user` lacks is not among them: that is the user's
        setup (`profile_warnings`), and a flag may choose the endpoint instead.
        """
        try:
            chain = self._chain(path)
        except FileError as error:
            return [error.problem]
        except ConfigError as error:
            return [FileProblem(path, None, None, error.message)]
        except _ChainProblem as error:
            return [error.problem]
        problems: list[FileProblem] = []
        for loaded in chain:
            problems += _file_problems(loaded, personas)
        return problems

    def _chain(self, path: Path) -> list[_Loaded]:
        """The preset at `path`, then each preset it extends, root last."""
        chain: list[_Loaded] = []
        seen: list[Path] = []
        current = path
        while True:
            if current in seen:
                names = " -> ".join(p.stem for p in [*seen, current])
                raise _ChainProblem(
                    FileProblem(
                        seen[-1], None, "extends", f"extends goes round in a cycle: {names}"
                    )
                )
            seen.append(current)
            data = load_yaml_file(current, what="preset", max_bytes=MAX_PRESET_BYTES)
            if not isinstance(data, Located):
                raise _ChainProblem(
                    FileProblem(current, None, None, "expected a mapping (name, personas, ...)")
                )
            entry = next((e for e in self.entries if e.path == current), None)
            if entry is None:
                entry = Entry(current.stem, current, "file", "", None)
            chain.append(_Loaded(entry, data))
            parent = data.get("extends")
            if parent is None:
                return chain
            if not PRESET_FIELDS["extends"].accepts(parent):
                raise _ChainProblem(expected(current, data, "extends", PRESET_FIELDS["extends"]))
            below = current if parent == current.stem else None
            try:
                current = self.find(parent.strip(), below=below).path
            except UsageError as error:
                raise _ChainProblem(
                    FileProblem(
                        current,
                        data.value_position("extends"),
                        "extends",
                        f"{error.message} ({error.hint})" if error.hint else error.message,
                    )
                ) from None

    # -- loading ---------------------------------------------------------------------------

    def load(self, name: str, *, personas: PersonaCatalog, user: UserConfig) -> Preset:
        """The named preset, validated and merged; ConfigError (exit 2) with file:line:col."""
        return self.load_file(self.find(name).path, personas=personas, user=user)

    def load_file(self, path: Path, *, personas: PersonaCatalog, user: UserConfig) -> Preset:
        problems = self.problems(path, personas, user)
        if problems:
            raise problems_error(problems, "fix the preset (council presets validate shows all)")
        chain = self._chain(path)
        values: dict[str, Any] = {}
        where: dict[str, str] = {}
        for loaded in reversed(chain):  # root first, so each child overrides its parent
            for key, value in loaded.data.items():
                if key in ("name", "extends"):
                    continue
                values[key] = _merge(values.get(key), value)
                position = loaded.data.key_position(key)
                where[key] = f"{loaded.entry.path}:{position.line}"
        top = chain[0]
        return Preset(
            name=top.entry.name,
            description=str(values.pop("description", "")).strip(),
            path=top.entry.path,
            chain=tuple(loaded.entry.path for loaded in chain),
            values=values,
            where=where,
            personas=_personas(values.get("personas"), chain, personas),
            arbiter=_arbiter(values.get("arbiter"), chain, personas),
            arbiter_fallback=_personas(
                values.get("arbiter_fallback"), chain, personas, key="arbiter_fallback"
            ),
            jury=_personas(values.get(JURY_KEY), chain, personas, key=JURY_KEY),
        )


def profile_warnings(preset: Preset, user: UserConfig) -> list[str]:
    """Endpoint profiles the preset names that the user's config lacks, one line each.

    Not a broken preset but this user's setup: `presets validate` warns (fails with
    `--strict`), `presets show` shows the preset anyway, and a run fails only when it
    would use the profile (a flag such as --base-url chooses before it is looked up).
    """
    # (profile, who names it, where, whether a flag overrides it)
    named: list[tuple[str, str, str, bool]] = []
    endpoint = preset.values.get("endpoint")
    if isinstance(endpoint, str):
        owner = f"preset {preset.name!r}"
        named.append((endpoint, owner, preset.where.get("endpoint", ""), True))
    groups = {
        "personas": preset.personas or (),
        "arbiter": (preset.arbiter,) if preset.arbiter is not None else (),
        "arbiter_fallback": preset.arbiter_fallback or (),
        JURY_KEY: preset.jury or (),
    }
    for key, members in groups.items():
        for member in members:
            if member.endpoint:  # `name@profile`, or `endpoint:` in its definition
                owner = f"persona {member.name!r} of preset {preset.name!r}"
                named.append((member.endpoint, owner, preset.where.get(key, ""), False))
    warnings = []
    for profile, owner, where, overridable in dict.fromkeys(named):
        if not has_profile(user, profile):
            error = missing_profile_error(profile, user, owner, overridable=overridable)
            warnings.append(f"{where}: {error.one_line()}" if where else error.one_line())
    return warnings


class _ChainProblem(Exception):
    def __init__(self, problem: FileProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _merge(base: Any, override: Any) -> Any:
    """Deep merge: mappings key by key, anything else (lists included) replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base.get(key), value)
        return merged
    return override


def _owner(key: str, chain: list[_Loaded]) -> Path:
    """The file whose value of `key` won: inline personas resolve system_file next to it."""
    for loaded in chain:
        if key in loaded.data:
            return loaded.entry.path
    return chain[0].entry.path


def _inline(item: Any, path: Path) -> Persona:
    persona, problems = persona_from_mapping(item, path, inline=True)
    if problems or persona is None:  # validated already; a file changed underneath us
        raise problems_error(problems, "fix the preset")
    return persona


def _personas(
    value: Any, chain: list[_Loaded], catalog: PersonaCatalog, key: str = "personas"
) -> tuple[Persona, ...] | None:
    if value is None:
        return None
    path = _owner(key, chain)
    found = [catalog.get(item) if isinstance(item, str) else _inline(item, path) for item in value]
    return tuple(found)


def _arbiter(value: Any, chain: list[_Loaded], catalog: PersonaCatalog) -> Persona | None:
    if value is None:
        return None
    return (
        catalog.get(value) if isinstance(value, str) else _inline(value, _owner("arbiter", chain))
    )


def _persona_problems(
    data: Located, key: str, path: Path, catalog: PersonaCatalog
) -> list[FileProblem]:
    value = data[key]
    listed = key != "arbiter"  # personas, arbiter_fallback
    items = value if listed else [value]
    if listed and (not isinstance(value, list) or not value):
        return [
            FileProblem(
                path,
                data.value_position(key),
                key,
                "expected a list of persona names or definitions",
            )
        ]
    problems: list[FileProblem] = []
    names: list[str] = []
    for index, item in enumerate(items):
        # The line the item is on, not the list's first one.
        where = data.item_position(key, index) if listed else data.value_position(key)
        if isinstance(item, str) and item.strip():
            base = item.partition("@")[0].strip()  # name@profile: on that endpoint profile
            if base not in catalog.names():
                close = catalog.closest(base)
                hint = f" (did you mean {close!r}?)" if close else ""
                problems.append(FileProblem(path, where, key, f"unknown persona {base!r}{hint}"))
            names.append(base)
        elif isinstance(item, Located):
            persona, found = persona_from_mapping(item, path, inline=True)
            problems += found
            if persona is not None:
                names.append(persona.name)
        else:
            problems.append(
                FileProblem(
                    path, where, key, f"expected a persona name or definition, got {item!r}"
                )
            )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        problems.append(
            FileProblem(
                path, data.value_position(key), key, f"listed twice: {', '.join(duplicates)}"
            )
        )
    return problems


def _file_problems(loaded: _Loaded, catalog: PersonaCatalog) -> list[FileProblem]:
    data, path = loaded.data, loaded.entry.path
    # Secrets first: they matter most, and a secret-looking key is not also "unknown".
    problems = secret_problems(data, path)
    problems += key_problems(data, path, PRESET_KEYS, ignore=is_secret_name, refused=NOT_IN_PRESET)
    name = data.get("name")
    if not is_name(name):
        problems.append(
            FileProblem(path, data.value_position("name"), "name", f"required: {NAME_CHARACTERS}")
        )
    elif name != path.stem:
        problems.append(
            FileProblem(
                path,
                data.value_position("name"),
                "name",
                f"{name!r} does not match the file name {path.stem!r}; rename one of them",
            )
        )
    problems += check_fields(data, path, {"description": PRESET_FIELDS["description"]})
    problems += check_settings(data, path)
    problems += _escalate_problems(data, path)
    problems += shared_endpoint_problems(data, path)
    for key in (*NAMED_SETTINGS, JURY_KEY):
        if key in data:
            problems += _persona_problems(data, key, path, catalog)
    return problems


def _fraction(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and 0 <= value <= 1


def _panel(value: object) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return 1 <= value <= 3
    return (
        isinstance(value, list)
        and 1 <= len(value) <= 3
        and all(isinstance(v, str) and is_name(v) for v in value)
    )


def _escalate_problems(data: Located, path: Path) -> list[FileProblem]:
    """`escalate:` is true/false or a mapping of its known keys, each in range."""
    if "escalate" not in data:
        return []
    if not _ESCALATE.accepts(data["escalate"]):
        return [expected(path, data, "escalate", _ESCALATE, got=True)]
    value = data["escalate"]
    if not isinstance(value, Located):
        return []
    return key_problems(value, path, ESCALATE_KEYS) + check_fields(
        value, path, ESCALATE_CHECKS, got=True
    )
