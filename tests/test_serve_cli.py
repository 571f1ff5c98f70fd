"""`council serve` as a command: its help imports no server stack, and without the `serve`
extra it says in one line how to install it."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Runs `council ARGS` in-process, then prints which heavy modules it imported.
SCRIPT = """
import sys
blocked = [name for name in sys.argv[1].split(",") if name]
for name in blocked:
    sys.modules[name] = None  # as if the serve extra were not installed
from council.cli import app
try:
    app(sys.argv[2:], prog_name="council")
except SystemExit as exit:
    code = exit.code
else:
    code = 0
heavy = ("openai", "starlette", "uvicorn", "mcp")
loaded = [n for n in heavy if n not in blocked and n in sys.modules]
print(f"EXIT {code} LOADED {','.join(loaded) or '-'}")
"""


def council(*args: str, blocked: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, blocked, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("args", [("--help",), ("serve", "--help")])
def test_help_imports_neither_the_server_stack_nor_openai(args: tuple[str, ...]) -> None:
    done = council(*args)
    assert done.stdout.rstrip().endswith("EXIT 0 LOADED -"), done.stdout[-300:]
    if args[0] == "serve":
        assert "Example:" in done.stdout and "--api-key-env" in done.stdout
    else:
        assert "serve" in done.stdout


@pytest.mark.parametrize("missing", ["starlette", "uvicorn"])
def test_without_the_serve_extra_it_says_how_to_install_it(missing: str) -> None:
    done = council("serve", blocked=missing)
    assert done.stdout.rstrip().endswith("EXIT 2 LOADED -") or "EXIT 2" in done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert missing in lines[0]
    assert 'pip install "council-llm[serve]"' in lines[0]
    assert "Traceback" not in done.stderr
