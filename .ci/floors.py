"""Print pip constraints that pin each direct dependency to its floor.

pip has no "lowest versions" resolution, so CI turns every `name>=X` of
`[project] dependencies` in pyproject.toml into `name==X` and installs with them:
the floors it declares are then the versions the smoke test runs on. A dependency
without a `>=` floor is an error, since its lowest allowed version is untested.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

FLOOR = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*>=\s*([0-9][^,;\s]*)\s*(?:,[^;]*)?$")


def floors(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    pins = []
    for requirement in project["dependencies"]:
        match = FLOOR.match(requirement)
        if match is None:
            raise SystemExit(f"floors: {requirement!r} has no '>=' floor; give it one")
        pins.append(f"{match[1]}=={match[2]}")
    return pins


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    print("\n".join(floors(root / "pyproject.toml")))
