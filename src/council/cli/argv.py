"""A command line read the way typer's parser reads it, before it does.

Typer's errors name what went wrong only in English prose, and it has no option
taking KEY VALUE pairs more than once. So council reads the command line itself
first, from the public description of a command's parameters (`opts`, `nargs`,
`is_flag`...), with the parser's rules: `--` ends the options, `--name=value`,
short flags clustered (`-qs`), a value glued to a short option (`-pjudge`), an
option's values taken whatever they look like, and a group stopping at its
command's name. It finds the first option nobody declares or one short of its
values, the positional arguments, and writes each KEY VALUE pair as one value
(`KEY\\0VALUE`: no command-line argument can hold a NUL byte).

Usage:
    reading = read_command_line(command.params, args, interspersed=True)
    reading.problem         # None, or Problem("unknown", "--retrys", ...)
    reading.args            # `args` with every pair as one value
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PAIR_SEPARATOR", "Problem", "Reading", "closest", "read_command_line"]

# Joins a KEY VALUE pair into the one value the parser is given.
PAIR_SEPARATOR = "\0"


@dataclass(frozen=True)
class _Spec:
    values: int  # how many values the option takes (0: a flag)
    pairs: bool  # its values are joined into one (KEY VALUE)


@dataclass(frozen=True)
class Problem:
    """The first thing on the command line that no parser would take."""

    kind: str  # "unknown" (no such option), "short" (fewer values than it takes), "flag"
    option: str
    values: int = 0
    known: tuple[str, ...] = ()  # every long option the command declares


@dataclass
class Reading:
    positionals: list[str] = field(default_factory=list)
    problem: Problem | None = None
    args: list[str] = field(default_factory=list)


def _specs(params: Iterable[Any], pairs: Iterable[str]) -> dict[str, _Spec]:
    paired = set(pairs)
    specs: dict[str, _Spec] = {}
    for param in params:
        if param.param_type_name != "option":
            continue
        values = 0 if (param.is_flag or param.count) else max(param.nargs, 1)
        as_pairs = param.name in paired
        for name in [*param.opts, *param.secondary_opts]:
            specs[name] = _Spec(2 if as_pairs else values, as_pairs)
    return specs


def _is_short(name: str) -> bool:
    return len(name) == 2 and name[0] == "-" and name[1] != "-"


def read_command_line(
    params: Iterable[Any],
    args: list[str],
    *,
    interspersed: bool,
    pairs: Iterable[str] = (),
    ignore_unknown: bool = False,
) -> Reading:
    """`args` as the parser would read them for a command of `params`.

    `interspersed`: options may follow positional arguments (a command), or the first
    positional one ends them (a group: it is the command's name). `pairs`: the names of
    options (`param.name`) that take KEY VALUE. `ignore_unknown` (click's
    `ignore_unknown_options`): an unknown option is a positional argument (`show -2`).
    """
    specs = _specs(params, pairs)
    known = tuple(sorted(n for n in specs if not _is_short(n)))
    reading = Reading()
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            reading.positionals += rest
            reading.args += [arg, *rest]
            break
        if arg.startswith("-") and len(arg) > 1:
            problem = _option(arg, rest, specs, reading.args)
            if problem is not None and problem.kind == "unknown" and ignore_unknown:
                reading.positionals.append(arg)
                reading.args.append(arg)
                continue
            if problem is not None:
                reading.problem = Problem(problem.kind, problem.option, problem.values, known)
                return reading
        elif interspersed:
            reading.positionals.append(arg)
            reading.args.append(arg)
        else:
            reading.positionals += [arg, *rest]
            reading.args += [arg, *rest]
            break
    return reading


def _option(arg: str, rest: list[str], specs: dict[str, _Spec], out: list[str]) -> Problem | None:
    name, equals, value = arg.partition("=")
    spec = specs.get(name)
    if spec is not None and not _is_short(name):
        if spec.values == 0:
            if equals:
                return Problem("flag", name)
            out.append(arg)
            return None
        if equals:
            rest.insert(0, value)
        return _take(name, spec, name, rest, out)
    if arg.startswith("--"):
        return Problem("unknown", name)
    # Short options, clustered: flags, then perhaps one taking values (the rest of the
    # cluster, if any, being its first value).
    for at, letter in enumerate(arg[1:], start=2):
        short = f"-{letter}"
        spec = specs.get(short)
        if spec is None:
            return Problem("unknown", short)
        if spec.values:
            if at < len(arg):
                rest.insert(0, arg[at:])
            return _take(short, spec, arg[:at], rest, out)
    out.append(arg)
    return None


def _take(name: str, spec: _Spec, typed: str, rest: list[str], out: list[str]) -> Problem | None:
    if len(rest) < spec.values:
        return Problem("short", name, spec.values)
    values = rest[: spec.values]
    del rest[: spec.values]
    out.append(typed)
    out.extend([PAIR_SEPARATOR.join(values)] if spec.pairs else values)
    return None


def closest(word: str, known: Iterable[str], most: int = 3) -> list[str]:
    """The known words near `word`, the nearest first."""
    return difflib.get_close_matches(word, sorted(set(known)), n=most)
