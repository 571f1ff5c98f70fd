"""Stored API keys, the way `llm keys` keeps them: one JSON file of name -> key, mode 0600.

    set_key("openrouter", "sk-or-...")     # `council keys set openrouter` (a hidden prompt)
    key_names()                            # ["openrouter"]: `council keys list`, never values
    stored_key("openrouter")               # what a profile's `api_key: openrouter` sends

The file is `keys.json` in the user's config directory (`$COUNCIL_HOME` when set),
beside `config.yaml`, which names keys and never holds one. It is written whole to a
0600 file in the same directory and renamed over the old one, so a reader never sees
half a file and the key is never readable by another user, even for a moment.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path

from council.config.paths import private_directory, user_config_dir
from council.errors import ConfigError, UsageError

__all__ = [
    "KEYS_FILE_NAME",
    "check_key_name",
    "is_key_name",
    "key_names",
    "keys_path",
    "set_key",
    "stored_key",
]

KEYS_FILE_NAME = "keys.json"
# A file of keys has no business being larger: a corrupt or foreign one is refused.
MAX_KEYS_BYTES = 256 * 1024
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def keys_path() -> Path:
    return user_config_dir() / KEYS_FILE_NAME


def is_key_name(name: object) -> bool:
    """A stored key's name: a letter or digit, then letters, digits, `_`, `.` or `-` (≤ 64)."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def check_key_name(name: str) -> str:
    if not is_key_name(name):
        raise UsageError(
            f"{name!r} is not a key name",
            "use letters, digits, '_', '.' or '-', e.g. council keys set openrouter",
        )
    return name


def _unreadable(path: Path, why: str) -> ConfigError:
    return ConfigError(
        f"cannot read the stored keys in {path}: {why}",
        "move the file away and store the keys again with 'council keys set NAME'",
    )


def _load() -> dict[str, str]:
    path = keys_path()
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_KEYS_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise _unreadable(path, exc.strerror or str(exc)) from None
    if len(raw) > MAX_KEYS_BYTES:
        raise _unreadable(path, f"it is larger than {MAX_KEYS_BYTES // 1024} KB")
    try:
        data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise _unreadable(path, "it is not a JSON object of names and keys") from None
    if not isinstance(data, dict) or not all(
        is_key_name(k) and isinstance(v, str) for k, v in data.items()
    ):
        raise _unreadable(path, "it is not a JSON object of names and keys")
    return data


def key_names() -> list[str]:
    """The names of the stored keys, sorted."""
    return sorted(_load())


def stored_key(name: str) -> str | None:
    """The key stored under `name` (None: there is none)."""
    return _load().get(name) or None


def set_key(name: str, value: str) -> Path:
    """Store `value` under `name` (replacing any), in a file only its owner can read."""
    check_key_name(name)
    value = value.strip()
    if not value:
        raise UsageError("the key is empty", "paste the key at the prompt, or pipe it in")
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise UsageError(
            "the key holds spaces or control characters",
            "paste the key alone, on one line",
        )
    keys = _load()
    keys[name] = value
    path = keys_path()
    private_directory(path.parent)
    # mkstemp creates the file 0600; the rename makes the new file the keys file whole.
    handle, temporary = tempfile.mkstemp(prefix=".keys-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(keys, file, indent=2, sort_keys=True)
            file.write("\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path
