"""What a shared file may not do: carry a key, or send the user's key somewhere new.

A preset or a project's `.council/config.yaml` is someone else's file, committed to
a repository the user merely cloned. council checks it before using it:

- no field that looks like it holds a secret (`api_key`, `token`, `password`, ...)
  and no value that looks like one (`sk-...`), anywhere in the file;
- no `base_url` off this machine: the user's key would go there. A shared file may
  name an endpoint profile from the user's own config, or a loopback URL, to which
  council sends no key at all.

(Reading prompt files outside the file's own directory is refused where prompts
are read: `personas.read_system_file`.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from council.config.endpoint_settings import is_loopback_url
from council.config.yamlfile import FileProblem, Located

__all__ = ["is_secret_name", "looks_like_secret", "secret_problems", "shared_endpoint_problems"]

# Field names that hold secrets. `max_tokens` is a count, not a token.
_SECRET_NAME = re.compile(
    r"(^|[_-])(api[_-]?key|apikey|key|secret|password|passwd|token|access[_-]?token|"
    r"auth|authorization|bearer|credentials?)$",
    re.IGNORECASE,
)
_NOT_SECRET = {"max_tokens"}
# Values shaped like well-known keys: OpenAI/Anthropic-style, GitHub, Slack, AWS, bearer.
_SECRET_VALUE = re.compile(
    r"\b(sk-[A-Za-z0-9_-]{16,}|sk_(live|test)_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|"
    r"xox[abpr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16})|Bearer\s+[A-Za-z0-9._~+/-]{16,}"
)


def is_secret_name(name: str) -> bool:
    """A field name that suggests it holds a secret (`api_key`, `token`, `password`...)."""
    lowered = name.lower()
    return lowered not in _NOT_SECRET and bool(_SECRET_NAME.search(lowered))


def looks_like_secret(value: object) -> bool:
    """A value shaped like a well-known key (`sk-...`, `ghp_...`, `Bearer ...`)."""
    return isinstance(value, str) and _SECRET_VALUE.search(value) is not None


def _walk(data: Any, path: Path, owner: Located | None, key: str | None) -> list[FileProblem]:
    problems: list[FileProblem] = []
    if isinstance(data, Located):
        for name, value in data.items():
            if is_secret_name(name):
                problems.append(
                    FileProblem(
                        path,
                        data.key_position(name),
                        name,
                        "looks like a secret: keys never go in council's files; an endpoint "
                        "profile in your own config names the environment variable that holds "
                        "the key (api_key_env), or a key stored with 'council keys set NAME' "
                        "(api_key: NAME)",
                    )
                )
            else:
                problems += _walk(value, path, data, name)
    elif isinstance(data, list):
        for item in data:
            problems += _walk(item, path, owner, key)
    elif isinstance(data, str) and _SECRET_VALUE.search(data):
        position = owner.value_position(key) if owner is not None and key is not None else None
        problems.append(
            FileProblem(
                path,
                position,
                key,
                "this value looks like an API key: remove it, and revoke the key if it was "
                "ever committed",
            )
        )
    return problems


def secret_problems(data: Any, path: Path) -> list[FileProblem]:
    """Every field or value in a file that looks like it holds a secret."""
    return _walk(data, path, None, None)


def shared_endpoint_problems(data: Located, path: Path) -> list[FileProblem]:
    """A shared file's `base_url` must be on this machine, and not beside an `endpoint`.

    An `endpoint:` naming a profile the user has not defined is not the file's fault
    but the user's setup: a warning from `presets validate`, and an error only for a
    run it would choose the endpoint of (`files.missing_profile_error`).
    """
    problems: list[FileProblem] = []
    if "endpoint" in data and "base_url" in data:
        problems.append(
            FileProblem(
                path,
                data.key_position("base_url"),
                "base_url",
                "give endpoint or base_url, not both",
            )
        )
    url = data.get("base_url")
    if isinstance(url, str) and not is_loopback_url(url):
        problems.append(
            FileProblem(
                path,
                data.value_position("base_url"),
                "base_url",
                f"{url} is not on this machine, and a shared file may not choose where your "
                "key is sent; name an endpoint profile from your own config instead "
                "(see 'council endpoints list')",
            )
        )
    return problems
