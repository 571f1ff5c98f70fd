"""Reading council's YAML files safely, keeping where every key stands for error messages.

`yaml.safe_load` returns plain values with no positions, so a validation error could
only name the file. `load_yaml_file` parses with a SafeLoader subclass (never a full
loader: no Python objects can be built from a file) whose mappings are `Located`
dicts that remember the line and column of each key and value.

    data = load_yaml_file(path, what="preset", max_bytes=MAX_PRESET_BYTES)
    data.where("rounds")           # "review.yaml:7:9"
    raise FileProblem(path, data.line_of("rounds"), ...)
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from council.errors import ConfigError

__all__ = [
    "FileProblem",
    "Located",
    "Position",
    "load_yaml_file",
    "problems_error",
    "unknown_key_problem",
]


@dataclass(frozen=True)
class Position:
    """A 1-based line and column in a file."""

    line: int
    column: int


class Located(dict[str, Any]):
    """A YAML mapping that knows where its keys and values are."""

    def __init__(self) -> None:
        super().__init__()
        self.start = Position(1, 1)
        self.key_positions: dict[str, Position] = {}
        self.value_positions: dict[str, Position] = {}

    def key_position(self, key: str) -> Position:
        return self.key_positions.get(key, self.start)

    def value_position(self, key: str) -> Position:
        return self.value_positions.get(key, self.key_position(key))


@dataclass(frozen=True)
class FileProblem:
    """One thing wrong in a file, at a position: what, and what was expected."""

    path: Path
    position: Position | None
    key: str | None
    problem: str

    def __str__(self) -> str:
        where = str(self.path)
        if self.position is not None:
            where += f":{self.position.line}:{self.position.column}"
        return f"{where}: {self.key}: {self.problem}" if self.key else f"{where}: {self.problem}"


def problems_error(problems: list[FileProblem], hint: str) -> ConfigError:
    """One ConfigError for the first problem (the CLI prints one line), noting how many more."""
    first = problems[0]
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return ConfigError(f"{first}{more}", hint)


def unknown_key_problem(
    path: Path, data: Located, key: str, allowed: tuple[str, ...] | list[str]
) -> FileProblem:
    close = difflib.get_close_matches(str(key), list(allowed), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(allowed)}"
    return FileProblem(path, data.key_position(key), str(key), f"unknown key ({hint})")


def _position(mark: Any) -> Position:
    return Position(mark.line + 1, mark.column + 1)


def _loader_class() -> type:
    import yaml

    # The C SafeLoader when libyaml is present: the same safe subset, faster.
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class LocatedLoader(base):  # type: ignore[misc, valid-type]
        """SafeLoader whose mappings are Located dicts."""

    def construct_located(loader: Any, node: Any) -> Any:
        data = Located()
        data.start = _position(node.start_mark)
        yield data
        loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            if key in data:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            data[key] = loader.construct_object(value_node, deep=True)
            data.key_positions[key] = _position(key_node.start_mark)
            data.value_positions[key] = _position(value_node.start_mark)

    LocatedLoader.add_constructor("tag:yaml.org,2002:map", construct_located)
    return LocatedLoader


_LOADER: type | None = None


def load_yaml_file(path: Path, *, what: str, max_bytes: int) -> Any:
    """Parse one YAML file; ConfigError with file:line:column for anything unreadable.

    `what` names the kind of file in messages ("preset", "persona file", ...).
    Files over `max_bytes` are refused before they are read.
    """
    global _LOADER
    import yaml  # only commands that read files pay for yaml

    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ConfigError(
                f"{path}: {what} is {size:,} bytes, over the {max_bytes:,} byte limit",
                f"a {what} should be small; trim it",
            )
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: {what} is not UTF-8 text", "save it as UTF-8 (plain YAML)"
        ) from exc
    if _LOADER is None:
        _LOADER = _loader_class()
    try:
        return yaml.load(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{where}: {problem}", "fix the YAML syntax") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})", "fix the YAML syntax") from exc
