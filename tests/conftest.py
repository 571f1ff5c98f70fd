"""Shared fixtures: one fake OpenAI-compatible server per session, and an isolated environment."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.fake_openai import FakeOpenAI

if TYPE_CHECKING:
    from council.endpoint.pool import EndpointPool

# A suite started in the background by a shell without job control (`pytest &` in a
# script, some CI runners) inherits SIGINT ignored, and every council it starts would
# too: the Ctrl-C tests would fail for the shell's reason, not council's. A Python
# handler here is reset to the default in each child process.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

COUNCIL_VARIABLES = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "COUNCIL_BASE_URL",
    "COUNCIL_MODEL",
    "NO_COLOR",
    "COUNCIL_DEBUG",
    "COUNCIL_PERSONA_PATH",
)


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeOpenAI]:
    """The fake server, listening on a random port in a background thread."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeOpenAI) -> FakeOpenAI:
    """The session's fake server with no scripts, records or settings left from other tests.

    What council learned about it lives in each run's own endpoint pool and in the
    test's own history (COUNCIL_HOME): nothing carries from one test to the next.
    """
    fake_server.reset()
    return fake_server


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh COUNCIL_HOME, no endpoint, key or model from the environment, 100 columns."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("COUNCIL_HOME", str(home))
    for name in COUNCIL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "100")
    return home


@pytest.fixture
def one_process(monkeypatch: pytest.MonkeyPatch) -> EndpointPool:
    """The test's commands share one endpoint pool, as runs in one long-lived process do:
    what the server counted of prompts in one run is known to the next. (A command makes
    a pool of its own, as a new process: only the history carries what was learned.)"""
    import council.app.run_context
    from council.endpoint.pool import EndpointPool

    pool = EndpointPool()
    monkeypatch.setattr(council.app.run_context, "EndpointPool", lambda: pool)
    return pool


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh clone: an empty git repository, as the current directory."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    monkeypatch.chdir(root)
    return root
