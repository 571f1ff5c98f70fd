"""council: ask several LLM personas at once, and run councils that deliberate.

    from council import Council
    print(Council(personas=["judge", "critic"]).ask("Is this a good idea?").answer)

The public API (`Council`, its results and streams) is imported on first use, so that
`import council` (and `council --help`) load nothing of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Council", "CouncilAnswer", "CouncilResult", "CouncilStream", "__version__"]

_API = ("Council", "CouncilAnswer", "CouncilResult", "CouncilStream")

if TYPE_CHECKING:
    from council.app.council import Council, CouncilAnswer, CouncilResult, CouncilStream


def __getattr__(name: str) -> Any:
    if name in _API:
        from council.app import council as api

        return getattr(api, name)
    raise AttributeError(f"module 'council' has no attribute {name!r}")
