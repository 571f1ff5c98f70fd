"""The wheel ships the built-in personas and presets, so an install outside the repo finds them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_the_built_in_personas_and_presets(tmp_path: Path):
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("council-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.rsplit("/", 1)[-1] for n in names if n.startswith("council/_builtin/personas/")}
    in_repo = {p.name for p in (ROOT / "personas").glob("*.yaml")}
    assert in_repo and shipped == in_repo
    presets = {n.rsplit("/", 1)[-1] for n in names if n.startswith("council/_builtin/presets/")}
    assert presets == {p.name for p in (ROOT / "presets").glob("*.yaml")} and presets
    assert "council/cli/__init__.py" in names
