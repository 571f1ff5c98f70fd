"""The wheel ships the built-in personas and presets, so an install outside the repo finds them."""

from __future__ import annotations

import re
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
    (wheel,) = tmp_path.glob("council_llm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.rsplit("/", 1)[-1] for n in names if n.startswith("council/_builtin/personas/")}
    in_repo = {p.name for p in (ROOT / "personas").glob("*.yaml")}
    assert in_repo and shipped == in_repo
    presets = {n.rsplit("/", 1)[-1] for n in names if n.startswith("council/_builtin/presets/")}
    assert presets == {p.name for p in (ROOT / "presets").glob("*.yaml")} and presets
    assert "council/cli/__init__.py" in names
    # `council` on the package index is someone else's: the distribution is council-llm,
    # the command and the import stay `council`.
    wheel_zip = zipfile.ZipFile(wheel)
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    assert "\nName: council-llm\n" in wheel_zip.read(metadata).decode()
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "council = council.cli:main" in wheel_zip.read(entry_points).decode()


def test_every_install_hint_names_the_council_llm_distribution():
    """A hint naming the bare `council` distribution installs an unrelated package."""
    texts = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *(ROOT / "src").rglob("*.py")]
    bare = re.compile(r"pip install [\"']?council(?![-\w])")
    offenders = [str(path) for path in texts if bare.search(path.read_text(encoding="utf-8"))]
    assert offenders == []
