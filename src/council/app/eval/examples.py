"""The example data sets shipped with council (`council eval --example basics`).

`examples/eval-NAME.jsonl` in the repository; in the wheel, `council/_builtin/examples/`
(pyproject.toml's force-include), so an example runs after `pip install council-llm`
alone, without the checkout.
"""

from __future__ import annotations

from pathlib import Path

from council.config.paths import builtin_dir
from council.errors import UsageError

__all__ = ["example_data", "example_names"]

_PREFIX, _SUFFIX = "eval-", ".jsonl"


def example_names() -> list[str]:
    """The shipped examples' names, sorted ("basics" for eval-basics.jsonl)."""
    folder = builtin_dir("examples")
    if not folder.is_dir():
        return []
    return sorted(
        p.name[len(_PREFIX) : -len(_SUFFIX)]
        for p in folder.glob(f"{_PREFIX}*{_SUFFIX}")
        if p.is_file()
    )


def example_data(name: str) -> Path:
    """The data file of the example `name`; UsageError naming the shipped ones otherwise."""
    names = example_names()
    if name not in names:
        shipped = ", ".join(names) if names else "none (this install has no examples)"
        raise UsageError(
            f"--example {name!r} is not an example shipped with council",
            f"shipped: {shipped}",
        )
    return builtin_dir("examples") / f"{_PREFIX}{name}{_SUFFIX}"
