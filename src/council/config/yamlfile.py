"""Reading council's YAML files safely, keeping where every key stands for error messages.

`yaml.safe_load` returns plain values with no positions, so a validation error could
only name the file. `load_yaml_file` parses with a SafeLoader subclass (never a full
loader: no Python objects can be built from a file) whose mappings are `Located`
dicts that remember the line and column of each key and value.

    data = load_yaml_file(path, what="preset", max_bytes=MAX_PRESET_BYTES)
    data.where("rounds")           # "review.yaml:7:9"
    raise FileProblem(path, data.line_of("rounds"), ...)

Only a regular file is read, and never more than `max_bytes + 1` of it
(`council.config.reading`). Anchors and aliases (`&base`, `*base`, `<<: *base`) are
allowed, but what they expand to is budgeted: a few hundred bytes of nested aliases
(a "billion laughs") would otherwise expand to billions of values, and every check
that walks the data (the secret scan first) would hang on them.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from council.config.reading import NotARegularFile, read_limited
from council.errors import ConfigError

__all__ = [
    "MAX_ALIAS_EXPANSION",
    "FileError",
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
        # Where each item of a list value is: a problem with one item points at it.
        self.item_positions: dict[str, list[Position]] = {}

    def key_position(self, key: str) -> Position:
        return self.key_positions.get(key, self.start)

    def value_position(self, key: str) -> Position:
        return self.value_positions.get(key, self.key_position(key))

    def item_position(self, key: str, index: int) -> Position:
        """Where item `index` of the list under `key` is, when on a line of its own (a
        block list); else where the list is (`[a, b]`, or unknown)."""
        items = self.item_positions.get(key, [])
        listed = self.value_position(key)
        if 0 <= index < len(items) and items[index].line != listed.line:
            return items[index]
        return listed


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


class FileError(ConfigError):
    """A file could not be read or parsed at all; `problem` says where (for listings)."""

    def __init__(self, problem: FileProblem, hint: str | None = None) -> None:
        super().__init__(str(problem), hint)
        self.problem = problem


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
            if isinstance(value_node, yaml.SequenceNode):
                data.item_positions[key] = [_position(n.start_mark) for n in value_node.value]

    LocatedLoader.add_constructor("tag:yaml.org,2002:map", construct_located)
    return LocatedLoader


# What aliases may add to a file's data, all of them together, in values: plenty
# for `<<: *defaults` in a config, far too few for a bomb.
MAX_ALIAS_EXPANSION = 10_000
# Nesting deeper than this is no council file (and would exhaust Python's stack).
MAX_DEPTH = 100

_LOADER: type | None = None


class _TooBig(Exception):
    """The composed YAML would expand to too much; at the collection where it ran out."""

    def __init__(self, mark: Any, problem: str) -> None:
        super().__init__(problem)
        self.position = _position(mark)
        self.problem = problem


def _children(node: Any) -> list[Any]:
    import yaml

    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: Any) -> None:
    """Refuse a composed document whose aliases expand to over MAX_ALIAS_EXPANSION values.

    An alias is a second reference to a node composed earlier, so what it costs is
    that node's whole expanded size. One depth-first walk in document order computes
    each node's size once (time linear in the file, whatever it expands to) and adds
    up what the aliases cost; the position reported is the collection holding the
    alias that went over. A cycle (an alias inside its own anchor) is refused too.
    """
    sizes: dict[int, int] = {}
    entered: set[int] = {id(root)}
    spent = 0
    # Frames of [node, its children, index of the next child]: no recursion to overflow.
    stack: list[list[Any]] = [[root, _children(root), 0]]
    while stack:
        frame = stack[-1]
        node, children, index = frame
        if index == len(children):
            stack.pop()
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in children)
            continue
        frame[2] += 1
        child = children[index]
        if id(child) not in entered:
            if len(stack) >= MAX_DEPTH:
                raise _TooBig(child.start_mark, f"nested over {MAX_DEPTH} levels deep")
            entered.add(id(child))
            stack.append([child, _children(child), 0])
        elif id(child) not in sizes:
            raise _TooBig(node.start_mark, "an alias refers to a collection it is part of")
        else:
            spent += sizes[id(child)]
            if spent > MAX_ALIAS_EXPANSION:
                raise _TooBig(
                    node.start_mark, f"YAML aliases expand to over {MAX_ALIAS_EXPANSION:,} values"
                )


def _read_text(path: Path, what: str, max_bytes: int) -> str:
    try:
        data = read_limited(path, max_bytes)
    except NotARegularFile as exc:
        raise FileError(
            FileProblem(path, None, None, f"{what} is {exc.kind}, not a regular file"),
            f"council reads only plain files; remove or replace {path.name}",
        ) from exc
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if path.is_symlink() and not path.exists():
            reason = f"a broken symlink to {os.readlink(path)}"
        raise FileError(FileProblem(path, None, None, f"cannot read {what} ({reason})")) from exc
    if len(data) > max_bytes:
        raise FileError(
            FileProblem(path, None, None, f"{what} is over the {max_bytes:,} byte limit"),
            f"a {what} should be small; trim it",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileError(
            FileProblem(path, None, None, f"{what} is not UTF-8 text"),
            "save it as UTF-8 (plain YAML)",
        ) from exc


def load_yaml_file(path: Path, *, what: str, max_bytes: int) -> Any:
    """Parse one YAML file; ConfigError with file:line:column for anything unreadable.

    `what` names the kind of file in messages ("preset", "persona file", ...).
    Only a regular file is read, and no more than `max_bytes` (plus one byte, to know).
    """
    global _LOADER
    import yaml  # only commands that read files pay for yaml

    text = _read_text(path, what, max_bytes)
    if _LOADER is None:
        _LOADER = _loader_class()
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    except _TooBig as exc:
        raise FileError(
            FileProblem(path, exc.position, None, exc.problem),
            "write the values out; aliases may only be small",
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = _position(mark) if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise FileError(FileProblem(path, position, None, problem), "fix the YAML syntax") from exc
    except yaml.YAMLError as exc:
        raise FileError(
            FileProblem(path, None, None, f"invalid YAML ({exc})"), "fix the YAML syntax"
        ) from exc
    finally:
        loader.dispose()
