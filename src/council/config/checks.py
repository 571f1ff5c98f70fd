"""What each setting and field in council's files accepts, and the words that say so.

The one place a check is defined: a preset, a project's `.council/config.yaml`, the
user's `config.yaml`, an endpoint profile and a persona file all test `rounds: 0`,
`temperature: 3` or `api_key_env: my-key` with the same function, and say what
was expected in the same words.

    RUN_SETTINGS["temperature"].accepts(0.7) # True
    RUN_SETTINGS["temperature"].expects      # "a number from 0 to 2"
    check_settings(data, path)               # every run setting present in a file
    check_flags({"rounds": 1000}, names)     # UsageError: "--rounds 1000: expected ..."
    check_fields(data, path, PROFILE_FIELDS) # "path:3:5: model: expected a model name"
    key_problems(data, path, ALLOWED)        # "path:4:1: temprature: unknown key (...)"
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from council.config.keys import is_key_name
from council.config.yamlfile import FileProblem, Located, unknown_key_problem
from council.errors import UsageError

__all__ = [
    "ENV_NAME",
    "ENV_NAME_PATTERN",
    "HISTORY_SETTINGS",
    "MODEL",
    "NAMED_SETTINGS",
    "NAME_CHARACTERS",
    "NAME_PATTERN",
    "NUMERIC_SETTINGS",
    "PRESET_FIELDS",
    "PROFILE_FIELDS",
    "RUN_SETTINGS",
    "Check",
    "check_fields",
    "check_flags",
    "check_settings",
    "expected",
    "is_env_name",
    "is_http_url",
    "is_name",
    "is_text",
    "key_problems",
]

ENV_NAME_PATTERN = "letters, digits and _, e.g. OPENROUTER_API_KEY"
# Names of personas, presets and endpoint profiles; they become file names.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
NAME_CHARACTERS = "lowercase letters, digits, - or _"


@dataclass(frozen=True)
class Check:
    """One rule: a test of a value, and the words for what it expects.

    Usage:
        RUN_SETTINGS["rounds"].accepts(0)      # False
        RUN_SETTINGS["rounds"].expects         # "a whole number from 1 to 20"
    """

    accepts: Callable[[Any], bool]
    expects: str


def is_env_name(value: object) -> bool:
    return isinstance(value, str) and value.replace("_", "").isalnum() and not value[0].isdigit()


def is_http_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def is_text(value: object) -> bool:
    """A string with something in it besides spaces."""
    return isinstance(value, str) and bool(value.strip())


def is_name(value: object) -> bool:
    """A name for a persona, preset or profile: NAME_PATTERN."""
    return isinstance(value, str) and bool(NAME_PATTERN.match(value))


def _number(
    low: float, high: float | None = None, *, low_open: bool = False
) -> Callable[..., bool]:
    def check(value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not math.isfinite(value):  # nan passes no comparison; .inf passes "above 0"
            return False
        above = value > low if low_open else value >= low
        return above and (high is None or value <= high)

    return check


def _whole(low: int, high: int | None = None) -> Callable[..., bool]:
    def check(value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        return value >= low and (high is None or value <= high)

    return check


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


def _is_names(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(is_text(item) for item in value)


def _is_headers(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _is_window(value: object) -> bool:
    """A context window in tokens, or one per model name."""
    if isinstance(value, dict):
        return bool(value) and all(is_text(k) and _whole(1)(v) for k, v in value.items())
    return _whole(1)(value)


def _is_one_price(value: object) -> bool:
    """USD per million tokens: {input: X, output: Y}, both numbers of at least 0."""
    return (
        isinstance(value, dict)
        and set(value) == {"input", "output"}
        and all(_number(0)(v) for v in value.values())
    )


def _is_price(value: object) -> bool:
    """One price for every model of a profile, or one per model name."""
    if _is_one_price(value):
        return True
    return (
        isinstance(value, dict)
        and bool(value)
        and all(is_text(k) and _is_one_price(v) for k, v in value.items())
    )


MODEL = Check(is_text, "a model name")
SWITCH = Check(_is_bool, "true or false")
ENV_NAME = Check(is_env_name, f"the NAME of an environment variable ({ENV_NAME_PATTERN})")

# The settings of a run, which presets and both config files may set (and persona
# files, for model, temperature and max_tokens). In this order problems are listed.
RUN_SETTINGS: dict[str, Check] = {
    "model": MODEL,
    "endpoint": Check(is_text, "the name of an endpoint profile in your config"),
    "base_url": Check(is_http_url, "an http(s) URL, e.g. http://127.0.0.1:8000/v1"),
    "rounds": Check(_whole(1, 20), "a whole number from 1 to 20"),
    "speculative": SWITCH,
    "threshold": Check(_number(0, 1), "a number from 0 to 1"),
    "temperature": Check(_number(0, 2), "a number from 0 to 2"),
    "max_tokens": Check(_whole(1), "a positive whole number"),
    "max_concurrency": Check(_whole(1, 1000), "a whole number from 1 to 1000"),
    "timeout": Check(_number(0, low_open=True), "a number of seconds above 0"),
    "retries": Check(_whole(0, 10), "a whole number from 0 to 10"),
}

# The run settings that are numbers, which flags are checked for too.
NUMERIC_SETTINGS = (
    "rounds",
    "threshold",
    "temperature",
    "max_tokens",
    "max_concurrency",
    "timeout",
    "retries",
)

# Who sits on the council, by name, in config files (presets may also define personas
# inline, and check them themselves).
NAMED_SETTINGS: dict[str, Check] = {
    "personas": Check(_is_names, "a list of names"),
    "arbiter": Check(is_text, "a name"),
    # Who judges when the arbiter cannot: tried in order, for that round only.
    "arbiter_fallback": Check(_is_names, "a list of names"),
}

# The user's switches for the history: record runs; keep their texts.
HISTORY_SETTINGS: dict[str, Check] = {"history": SWITCH, "store_text": SWITCH}

# A preset's own fields (its name is checked against its file name by the preset).
PRESET_FIELDS: dict[str, Check] = {
    "description": Check(lambda value: isinstance(value, str), "text"),
    "extends": Check(is_text, "a preset name"),
}

# An endpoint profile's fields, except base_url and model_path, which depend on each other.
PROFILE_FIELDS: dict[str, Check] = {
    "name": Check(is_name, f"a profile name: {NAME_CHARACTERS}"),
    "model_path": Check(is_text, "the path of a .gguf model file"),
    "base_url": Check(is_http_url, "an http(s) URL, e.g. https://openrouter.ai/api/v1"),
    "api_key_env": ENV_NAME,
    # The NAME of a key stored with `council keys set NAME`, never a key.
    "api_key": Check(
        is_key_name, "the name of a stored key (council keys list), e.g. api_key: openrouter"
    ),
    "model": MODEL,
    "max_concurrency": Check(_whole(1), "a whole number of at least 1"),
    "headers": Check(_is_headers, "a mapping of header names to text values"),
    "context_window": Check(
        _is_window, "a number of tokens of at least 1, or a mapping of model names to one"
    ),
    "price": Check(
        _is_price,
        "USD per million tokens as {input: 0.15, output: 0.6} (numbers of at least 0), "
        "or a mapping of model names to one",
    ),
}


def expected(
    path: Path, data: Located, key: str, check: Check, *, got: bool = False
) -> FileProblem:
    """`file:line:column: key: expected <what>` at the value (`, got <value>` if asked)."""
    problem = f"expected {check.expects}"
    if got:
        problem += f", got {data[key]!r}"
    return FileProblem(path, data.value_position(key), key, problem)


def check_fields(
    data: Located, path: Path, checks: Mapping[str, Check], *, got: bool = False
) -> list[FileProblem]:
    """Problems of the keys of `checks` that `data` has, in the order of `checks`."""
    return [
        expected(path, data, key, check, got=got)
        for key, check in checks.items()
        if key in data and not check.accepts(data[key])
    ]


def check_settings(data: Located, path: Path) -> list[FileProblem]:
    """Type and range problems of the run settings present in `data`, with the value found."""
    return check_fields(data, path, RUN_SETTINGS, got=True)


def check_flags(flags: Mapping[str, Any], flag_names: Mapping[str, str]) -> None:
    """Refuse a numeric flag a file could not say either: `--rounds 1000`, `--timeout nan`.

    `flags` are settings given on the command line by setting name, `flag_names` the
    flag each was given as. The checks are the files' own (RUN_SETTINGS); raises
    UsageError for the first value out of range.
    """
    for key, value in flags.items():
        check = RUN_SETTINGS.get(key)
        if key in NUMERIC_SETTINGS and check is not None and not check.accepts(value):
            flag = flag_names.get(key, f"--{key.replace('_', '-')}")
            if isinstance(value, float):
                shown = f"{value:g}"
                if not math.isfinite(value):
                    shown += " (not a finite number)"
            else:
                shown = str(value)
            raise UsageError(f"{flag} {shown}: expected {check.expects}")


def key_problems(
    data: Located,
    path: Path,
    allowed: tuple[str, ...],
    *,
    ignore: Callable[[str], bool] | None = None,
    refused: Mapping[str, str] | None = None,
) -> list[FileProblem]:
    """A problem for each key of `data`, in file order, that is refused (saying why) or unknown.

    `ignore` leaves keys to another check: secret-looking names, which the trust rules
    report, are not also "unknown".
    """
    problems: list[FileProblem] = []
    for key in data:
        if ignore is not None and ignore(key):
            continue
        if refused and key in refused:
            problems.append(FileProblem(path, data.key_position(key), key, refused[key]))
        elif key not in allowed:
            problems.append(unknown_key_problem(path, data, key, allowed))
    return problems
