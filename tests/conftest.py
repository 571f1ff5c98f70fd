"""Shared fixtures: one fake OpenAI-compatible server per session, and an isolated environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI

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

    What council learned about it (a context window, say) is forgotten too: every
    test talks to the same base URL.
    """
    from council.endpoint.learned import forget_all
    from council.engine.fit import forget_corrections

    forget_all()
    forget_corrections()
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


@pytest.fixture(autouse=True)
def fresh_endpoint_limits() -> Iterator[None]:
    """No endpoint limiter or learned limit carried from one test to the next."""
    from council.endpoint.learned import forget_all
    from council.endpoint.limiter import forget_limiters

    forget_limiters()
    forget_all()
    yield
    forget_limiters()
    forget_all()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh clone: an empty git repository, as the current directory."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    monkeypatch.chdir(root)
    return root
