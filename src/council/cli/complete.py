"""Shell completion of the names council knows: personas, presets, endpoint profiles.

Typer completes command and option names itself (`council --install-completion`
installs its script for bash, zsh or fish); these are the `autocompletion=` of the
options that take a name. They run on every Tab, so they read only the catalogs'
files and the user's config (no openai), and a broken file completes nothing
rather than printing a traceback into the shell.

Usage:
    typer.Option("--personas", autocompletion=complete_personas)
"""

from __future__ import annotations

from collections.abc import Callable

from council.config.local_model import LOCAL_ENDPOINT

__all__ = ["complete_personas", "complete_presets", "complete_profiles"]


def _names(read: Callable[[], list[str]]) -> list[str]:
    try:
        return read()
    except Exception:  # a Tab must never print a traceback into the shell
        return []


def _persona_names() -> list[str]:
    from council.config.personas import PersonaCatalog

    return PersonaCatalog.discover().names()


def _preset_names() -> list[str]:
    from council.config.presets import PresetCatalog

    return PresetCatalog.discover().names()


def _profile_names() -> list[str]:
    from council.config.files import load_user_config

    return sorted({*load_user_config().profiles, LOCAL_ENDPOINT})


def complete_personas(incomplete: str) -> list[str]:
    """Persona names, the last of a comma list too: `-p judge,cr<Tab>` -> `judge,critic`."""
    given, comma, last = incomplete.rpartition(",")
    taken = set(given.split(",")) if comma else set()
    prefix = f"{given}," if comma else ""
    names = _names(_persona_names)
    return [prefix + name for name in names if name.startswith(last) and name not in taken]


def complete_presets(incomplete: str) -> list[str]:
    return [name for name in _names(_preset_names) if name.startswith(incomplete)]


def complete_profiles(incomplete: str) -> list[str]:
    return [name for name in _names(_profile_names) if name.startswith(incomplete)]
