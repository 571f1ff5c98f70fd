"""A run imports only what it needs before its first request (issue 21, point 4).

Asserted on what a real `council` process had imported when it opened its
connections to the fake server, and on the commands the app lists afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.fake_openai import FakeOpenAI

# In a fresh interpreter: `council ARGS` through the command line, noting the council
# modules imported each time a connection to the server is opened; printed at exit.
CONNECT_SCRIPT = """
import atexit, json, sys
port = int(sys.argv[1].rsplit(":", 1)[1].split("/")[0])
seen = []
def hook(event, args):
    if event == "socket.connect" and isinstance(args[1], tuple) and args[1][1] == port:
        names = list(sys.modules)  # one call: the SDK's thread may be importing meanwhile
        seen.append([name for name in names if name.startswith("council.")])
sys.addaudithook(hook)
import council.cli
atexit.register(lambda: print("CONNECTS " + json.dumps(seen), file=sys.stderr))
sys.argv = ["council", *sys.argv[2:]]
council.cli.main()
"""

# What a plain oracle uses only after its answers are in, or never.
NOT_BEFORE_THE_FIRST_REQUEST = {
    # the other commands' modules
    "council.cli.batch",
    "council.cli.catalogs",
    "council.cli.eval",
    "council.cli.judge",
    "council.cli.keys",
    "council.cli.mcp",
    "council.cli.records",
    "council.cli.serve",
    "council.cli.setup",
    # --escalate, --vote's ballots
    "council.app.escalate",
    "council.engine.escalation",
    "council.engine.ballots",
    # the agreement map, read from an arbiter's reply
    "council.engine.agreement",
    # the Markdown of the answers
    "council.render.markdown",
    "council.render.ballots",
    "council.render.agreement",
}


def _connects(fake: FakeOpenAI, *args: str) -> tuple[str, list[set[str]]]:
    """The run's stdout, and the council modules imported at each connection it opened."""
    done = subprocess.run(
        [sys.executable, "-c", CONNECT_SCRIPT, fake.base_url, *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("CONNECTS ")]
    return done.stdout, [set(names) for names in json.loads(line.removeprefix("CONNECTS "))]


@pytest.mark.parametrize("output", [[], ["--json"]], ids=["piped", "json"])
def test_an_oracle_imports_only_its_own_command_before_its_first_request(
    fake: FakeOpenAI, output: list[str]
) -> None:
    stdout, connects = _connects(
        fake, "oracle", "--base-url", fake.base_url, "-p", "judge", *output, "q"
    )
    assert [(r.persona, r.body and r.body["messages"][-1]["content"]) for r in fake.requests] == [
        ("judge", "q")
    ]
    assert "judge" in stdout
    assert connects, "no connection to the server was seen"
    for imported in connects:
        assert "council.cli.ask" in imported
        assert imported & NOT_BEFORE_THE_FIRST_REQUEST == set()


# In a fresh interpreter: the commands `council.cli.app` lists, after `main` imported the
# module of ARGS's command alone (or nothing, with no ARGS).
LISTED_SCRIPT = """
import json, sys
import council.cli
if sys.argv[1:]:
    council.cli._app_for(sys.argv[1:])
from council.cli import app
print(json.dumps([c.name for c in app.registered_commands]))
print(json.dumps([g.name for g in app.registered_groups]))
"""


def _listed(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", LISTED_SCRIPT, *args], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_whole_app_lists_its_commands_in_one_order_whichever_came_first() -> None:
    whole = _listed()
    commands = json.loads(whole.splitlines()[0])
    assert commands[:3] == ["oracle", "deliberate", "resume"] and "stats" in commands
    for args in (["stats"], ["models"], ["oracle", "q"]):
        assert _listed(*args) == whole


def test_every_command_of_the_app_has_its_module_named() -> None:
    from council.cli import COMMAND_MODULES, app

    named = {c.name or c.callback.__name__: c.callback.__module__ for c in app.registered_commands}
    named = {name.removesuffix("_command"): module for name, module in named.items()}
    assert {name: f"council.cli.{module}" for name, module in COMMAND_MODULES.items()} == named
