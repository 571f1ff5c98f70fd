"""`--help` as a person reads it at 80 and 100 columns: defaults shown, no type clutter,
bracketed words kept, short enough to read, and no openai imported to print it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from council.config.defaults import (
    DEFAULT_ARBITER,
    DEFAULT_MAX_CONCURRENCY_CAP,
    DEFAULT_PERSONAS,
    DEFAULT_RETRIES,
    DEFAULT_ROUNDS,
    DEFAULT_THRESHOLD,
    DEFAULT_TIMEOUT,
)

# Prints the help of `council ARGS`, then whether printing it imported openai.
HELP_SCRIPT = """
import sys
from council.cli import app
try:
    app(sys.argv[1:], prog_name="council")
except SystemExit:
    pass
print("OPENAI IMPORTED" if "openai" in sys.modules else "NO OPENAI")
"""

# Most lines each help may take (with room for a few more options).
# --position-checks and --self-check-rate (issue 26, reviewer bias) took 2 lines at 100
# columns, 4 at 80 (the panel's name column widens for them); oracle's --stop-rule and
# --weighting (issue 26) 2 more at 100 columns, 3 at 80.
MOST_LINES = {("oracle", 100): 74, ("deliberate", 100): 83, ("oracle", 80): 92}
MOST_LINES[("deliberate", 80)] = 103
# The Escalation panel (--escalate, --panel, --escalate-threshold, --shadow-rate): one
# line each at 100 columns, two or three at 80, and the panel's borders.
for _command in ("oracle", "deliberate"):
    MOST_LINES[(_command, 100)] += 6
    MOST_LINES[(_command, 80)] += 10


def help_text(*args: str, columns: int) -> str:
    env = {k: v for k, v in os.environ.items() if k != "LINES"}
    env["COLUMNS"] = str(columns)
    done = subprocess.run(
        [sys.executable, "-c", HELP_SCRIPT, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    text, marker = done.stdout.rstrip("\n").rsplit("\n", 1)
    assert marker == "NO OPENAI", f"council {' '.join(args)} imported openai"
    return text


def flowing(text: str) -> str:
    """The help's words as one line: boxes gone, wrapped cells joined."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.mark.parametrize("columns", [80, 100])
@pytest.mark.parametrize("command", ["oracle", "deliberate"])
def test_help_shows_defaults_without_type_clutter(command: str, columns: int) -> None:
    text = help_text(command, "--help", columns=columns)
    words = flowing(text)
    defaults = [
        f"[default: {','.join(DEFAULT_PERSONAS)}]",
        f"[default: {DEFAULT_ARBITER}]",
        f"[default: {DEFAULT_TIMEOUT:g}]",
        f"[default: {DEFAULT_RETRIES}]",
        f"[default: {DEFAULT_MAX_CONCURRENCY_CAP},",
    ]
    if command == "deliberate":
        defaults += [f"[default: {DEFAULT_ROUNDS}]", f"[default: {DEFAULT_THRESHOLD:g}]"]
    for default in defaults:
        assert default in words, default
    for clutter in ("<bool>", "<str>", "<int", "<float>", "<path>", "list[", "[x>=", "[x<="):
        assert clutter not in text, clutter
    # A flag shows no type at all; a value a plain word.
    assert re.search(r"--json\s+Print one JSON", text)
    assert re.search(r"--timeout\s+SECONDS", text) and re.search(r"--context\s+-c\s+FILE", text)
    # Bracketed words are text, not rich markup: the extra's name keeps its "[local]".
    assert re.search(r"council[\w-]*\[local\]", words), "the --model-path help lost [local]"
    # Grouped, and short enough to read.
    for panel in ("Endpoint", "Limits", "Output", "History"):
        assert f"─ {panel} ─" in text
    lines = text.splitlines()
    assert len(lines) <= MOST_LINES[(command, columns)], len(lines)
    assert max(len(line) for line in lines) <= columns
    assert "Examples:" in text


def test_every_command_shows_its_bracketed_words() -> None:
    """The escaping is done once for every command: a sub-group's help keeps its brackets."""
    words = flowing(help_text("presets", "validate", "--help", columns=100))
    assert "[default: every preset council can find]" in words
    assert "<bool>" not in words and "<list" not in words
