"""The settings a preset or a config file may set, and what each one accepts.

One table, so that a preset, a project's `.council/config.yaml` and the user's
`config.yaml` check `rounds: 0` or `threshold: high` with the same words.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from council.config.yamlfile import FileProblem, Located

__all__ = [
    "ENV_NAME_PATTERN",
    "RUN_SETTINGS",
    "check_settings",
    "is_env_name",
    "is_http_url",
]

ENV_NAME_PATTERN = "letters, digits and _, e.g. OPENROUTER_API_KEY"


def is_env_name(value: object) -> bool:
    return isinstance(value, str) and value.replace("_", "").isalnum() and not value[0].isdigit()


def is_http_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _number(
    low: float, high: float | None = None, *, low_open: bool = False
) -> Callable[..., bool]:
    def check(value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
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


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


# setting -> (check, what it expects). Personas and arbiter are checked by their owners:
# presets allow inline definitions, config files only names.
RUN_SETTINGS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "model": (_text, "a model name"),
    "endpoint": (_text, "the name of an endpoint profile in your config"),
    "base_url": (is_http_url, "an http(s) URL, e.g. http://127.0.0.1:8000/v1"),
    "rounds": (_whole(1, 20), "a whole number from 1 to 20"),
    "speculative": (lambda v: isinstance(v, bool), "true or false"),
    "threshold": (_number(0, 1), "a number from 0 to 1"),
    "temperature": (_number(0, 2), "a number from 0 to 2"),
    "max_tokens": (_whole(1), "a positive whole number"),
    "max_concurrency": (_whole(1, 1000), "a whole number from 1 to 1000"),
    "timeout": (_number(0, low_open=True), "a number of seconds above 0"),
    "retries": (_whole(0, 10), "a whole number from 0 to 10"),
}


def check_settings(data: Located, path: Path) -> list[FileProblem]:
    """Type and range problems of the run settings present in `data`."""
    problems: list[FileProblem] = []
    for key, (check, expected) in RUN_SETTINGS.items():
        if key in data and not check(data[key]):
            problems.append(
                FileProblem(
                    path, data.value_position(key), key, f"expected {expected}, got {data[key]!r}"
                )
            )
    return problems
