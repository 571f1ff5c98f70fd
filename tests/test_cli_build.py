"""The command line builds only the command it runs, which behaves as in the whole app."""

from __future__ import annotations

import pytest
import typer.main

from council.cli import app
from tests.helpers import invoke


def _built(args: list[str]) -> set[str]:
    """The commands of the app as `council ARGS` builds it."""
    with app.only_the_command(args):
        return set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_a_command_is_built_alone_and_the_app_is_whole_again_after():
    everything = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert {"oracle", "deliberate", "personas", "history"} <= everything
    assert _built(["oracle", "-p", "judge", "q"]) == {"oracle"}
    assert _built(["--debug", "deliberate", "q"]) == {"deliberate"}
    assert set(typer.main.get_command(app).commands) == everything  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--help"],
        ["--version"],
        ["-h", "oracle"],
        ["personas", "list"],  # a group's command
        ["oracel", "q"],  # no command: its "did you mean" needs them all
        ["--", "oracle"],
    ],
)
def test_the_whole_app_is_built_where_more_of_it_shows(args):
    everything = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert _built(args) == everything


def test_shell_completion_builds_the_whole_app(monkeypatch):
    everything = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    monkeypatch.setenv("_COUNCIL_COMPLETE", "complete_bash")
    assert _built(["oracle", "q"]) == everything


@pytest.mark.parametrize(
    "args",
    [
        ["oracle", "--help"],
        ["--debug", "deliberate", "--help"],
        ["oracle", "--jsn", "q"],  # an unknown option and its "did you mean"
        ["oracle", "one", "two"],  # an unquoted question
        ["oracle", "-s", "one", "two"],  # llm's -s
        ["oracle", "--max-concurrency", "0", "q"],
        ["oracle", "--dry-run", "-p", "judge,critic", "Is it safe?"],
        ["oracle"],
    ],
)
def test_a_command_built_alone_says_what_it_says_in_the_whole_app(args):
    whole = invoke(*args, input="")
    with app.only_the_command(args):
        alone = invoke(*args, input="")
    assert (alone.exit_code, alone.output) == (whole.exit_code, whole.output)
