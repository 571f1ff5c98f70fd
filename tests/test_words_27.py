"""Words that say what happened: a bad persona's own line, a 401 with no key sent, a plain
web server's 501, and where --debug goes."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from council.errors import EndpointError
from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import invoke

README = Path(__file__).resolve().parents[1] / "README.md"


def one_line(result: object) -> str:
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1, lines
    return lines[0]


def test_presets_validate_points_at_the_line_of_the_bad_persona(project: Path) -> None:
    presets = project / ".council" / "presets"
    presets.mkdir(parents=True)
    block = presets / "block.yaml"
    block.write_text("name: block\npersonas:\n  - judge\n  - skeptic\n  - critc\n")
    flow = presets / "flow.yaml"
    flow.write_text("name: flow\npersonas: [judge, critc]\narbiter_fallback: [judge, arbitr]\n")
    result = invoke("presets", "validate", str(block), str(flow))
    assert result.exit_code == 2
    assert f"{block}:5:5: personas: unknown persona 'critc' (did you mean 'critic'?)" in (
        result.stderr
    )
    # A flow list is on one line: the list's place says it.
    assert f"{flow}:2:11: personas: unknown persona 'critc'" in result.stderr
    assert f"{flow}:3:19: arbiter_fallback: unknown persona 'arbitr'" in result.stderr


def test_a_401_to_a_request_sent_no_key_says_none_was_sent(fake: FakeOpenAI) -> None:
    fake.default = Reply(status=401, error_message="Unauthorized")
    result = invoke("oracle", "--base-url", fake.base_url, "-p", "judge", "q")
    assert result.exit_code == 2
    assert fake.requests[0].headers["authorization"] == "Bearer no-key-needed"
    line = one_line(result)
    assert "asked for an API key (401) and none was sent: Unauthorized" in line
    assert "refused the API key" not in line and "check that $" not in line
    assert "export OPENAI_API_KEY=<your key> (it is not set)" in line


@pytest.fixture
def plain_web_server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """Python's own http.server on a random port: it serves files and answers POST 501."""
    posts: list[str] = []

    class Files(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            if self.command == "POST":
                posts.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", posts
    finally:
        server.shutdown()
        server.server_close()


def test_a_plain_web_servers_501_is_not_retried_nor_called_temporary(
    plain_web_server: tuple[str, list[str]],
) -> None:
    url, posts = plain_web_server
    result = invoke("oracle", "--base-url", url, "-p", "judge", "q")
    assert result.exit_code == 1
    line = one_line(result)
    assert "answered 501 (not implemented)" in line and "OpenAI-compatible API" in line
    assert "later" not in line and "retr" not in line
    # Not retried (no try can change a 501): at most once more without optional fields.
    assert set(posts) == {"/chat/completions"} and len(posts) <= 2


def test_the_readme_says_where_debug_goes_as_the_cli_takes_it(fake: FakeOpenAI) -> None:
    readme = README.read_text(encoding="utf-8")
    assert 'council --debug oracle "…"' in readme
    misplaced = invoke("oracle", "--debug", "q")
    assert misplaced.exit_code == 2 and "--debug" in misplaced.stderr
    fake.default = Reply(status=400, error_message="bad")
    with pytest.raises(EndpointError, match="answered 400: bad"):  # the traceback's error
        invoke("--debug", "oracle", "--base-url", fake.base_url, "-p", "judge", "q")
