"""What council does not trust: a server quoting the key, project directories that are not
the user's, names that only look like this machine, and redirects to another host.

Real council processes against the fake server; every output a user or a file gets is
searched for the key (stdout, stderr, `--json`, a batch's `--out`, the history file).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from council.config.endpoint_settings import is_loopback_url
from council.endpoint.redact import StreamRedactor, mask, redact, remember_key
from tests.fake_openai import DONE, FakeOpenAI, Reply, chunk
from tests.helpers import invoke

# A key shaped like OpenAI's project keys, found nowhere but where council sends it.
KEY = "sk-proj-Zq7rT2vXw9yB4nM6kL8jH3gF5dS1aP0oI-uY_tR" + "2222"
MASKED = "sk-…2222"
BEARER = f"Bearer {KEY}"


def run_council(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    """`council ARGS` as a real process, with the key in its environment."""
    return subprocess.run(
        [sys.executable, "-m", "council.cli", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env={**os.environ, "OPENAI_API_KEY": KEY, **env},
        timeout=120,
    )


def every_output(result: subprocess.CompletedProcess, *files: Path) -> dict[str, bytes]:
    """What the run left anywhere: its streams, the files named, and council's home
    (history.db with its journal files), as bytes."""
    found = {"stdout": result.stdout.encode(), "stderr": result.stderr.encode()}
    for path in files:
        found[str(path)] = path.read_bytes()
    home = Path(os.environ["COUNCIL_HOME"])
    for path in sorted(home.rglob("*")):
        if path.is_file():
            found[str(path)] = path.read_bytes()
    return found


def assert_no_key(outputs: dict[str, bytes]) -> None:
    leaked = [name for name, data in outputs.items() if KEY.encode() in data]
    assert not leaked, f"the key is in {leaked}"
    # A part of it is no better: the message may have been cut after the key began.
    assert not [name for name, data in outputs.items() if KEY[:20].encode() in data]


def key_was_sent(fake: FakeOpenAI) -> bool:
    return any(r.headers.get("authorization") == BEARER for r in fake.requests)


# -- 1. a server that quotes the key ---------------------------------------------------------


QUOTED = f"Incorrect API key provided: {KEY}. Header sent: Authorization: {BEARER}"


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=401, error_message=QUOTED),
        Reply(status=500, error_message=f"upstream failed for {BEARER}"),
        Reply(status=502, error_body={"message": f"bad gateway: {QUOTED}"}),  # Kong-style
        # A proxy that fails mid-answer, in an error event.
        Reply(events=[chunk("Hi "), {"error": {"message": QUOTED, "type": "auth"}}, DONE]),
        # The same in a plain JSON error where a stream was asked for.
        Reply(
            body=json.dumps({"error": {"message": "x" * 250 + QUOTED}}),
            content_type="application/json",
        ),
    ],
    ids=["401", "500", "502-gateway", "streamed", "json-error"],
)
def test_a_key_a_server_quotes_is_in_no_output(
    fake: FakeOpenAI, tmp_path: Path, reply: Reply
) -> None:
    fake.default = reply
    result = run_council(
        "oracle",
        "--base-url",
        fake.base_url,
        "--personas",
        "judge,critic",
        "--retries",
        "0",
        "--json",
        "What is 2+2?",
    )
    assert result.returncode != 0
    assert key_was_sent(fake)
    outputs = every_output(result)
    assert_no_key(outputs)
    # What the server said is kept, masked: in the error line, the JSON and the history.
    assert MASKED in result.stderr or MASKED in result.stdout
    assert any(MASKED.encode() in data for name, data in outputs.items() if "history" in name)


def run_batch(
    fake: FakeOpenAI, folder: Path, out_name: str, *options: str
) -> tuple[subprocess.CompletedProcess, Path]:
    """`council batch` of two items to the fake, with the judge; its result and `--out`."""
    items = folder / "in.jsonl"
    items.write_text('{"id": "a", "query": "one?"}\n{"id": "b", "query": "two?"}\n')
    out = folder / out_name
    base = ("--base-url", fake.base_url, "--personas", "judge")
    return run_council("batch", str(items), "--out", str(out), *base, *options), out


def test_a_key_quoted_to_a_batch_is_in_neither_its_out_file_nor_its_history(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    fake.default = Reply(status=401, error_message=QUOTED)
    result, out = run_batch(fake, tmp_path, "out.jsonl", "--retries", "0")
    assert key_was_sent(fake)
    assert_no_key(every_output(result, out))
    assert MASKED in out.read_text(encoding="utf-8")


def test_a_key_quoted_in_batch_api_error_lines_and_errors_is_masked(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    # Every request line fails, its error body quoting the key, in the error file.
    fake.default = Reply(status=500, error_message=QUOTED)
    result, out = run_batch(fake, tmp_path, "out.jsonl", "--via", "batch-api")
    assert key_was_sent(fake)
    error_files = [f for f in fake.files.values() if f["filename"].endswith("_error.jsonl")]
    assert error_files and KEY in fake.file_text(error_files[0]["id"])
    assert_no_key(every_output(result, out))
    assert MASKED in out.read_text(encoding="utf-8")
    # A batch the provider refuses, its errors quoting the key: said on stderr, masked.
    fake.reset()
    fake.batch_invalid = f"line 1: {QUOTED}"
    result, again = run_batch(fake, tmp_path, "again.jsonl", "--via", "batch-api")
    assert key_was_sent(fake)
    assert MASKED in result.stderr
    assert_no_key(every_output(result, again))


def team_profile(fake: FakeOpenAI) -> None:
    """A profile `team` in the user's config: the fake, its key in $TEAM_KEY."""
    profile = f"  - name: team\n    base_url: {fake.base_url}\n    api_key_env: TEAM_KEY\n"
    (Path(os.environ["COUNCIL_HOME"]) / "config.yaml").write_text("endpoints:\n" + profile)


def test_endpoints_check_masks_a_quoted_key(fake: FakeOpenAI) -> None:
    team_profile(fake)
    fake.default = Reply(status=401, error_message=QUOTED)
    result = run_council("endpoints", "check", "team", TEAM_KEY=KEY)
    assert result.returncode == 2, result.stderr
    assert key_was_sent(fake)
    assert MASKED in result.stderr
    assert_no_key(every_output(result))


def test_a_key_split_between_downloaded_pieces_is_masked_whole() -> None:
    remember_key(KEY)
    text = f'{{"error": "{QUOTED}"}}\n'.encode()
    for cut in range(len(text)):
        masked = StreamRedactor()
        data = masked.feed(text[:cut]) + masked.feed(text[cut:]) + masked.end()
        assert data == redact(text.decode()).encode()
    assert mask(KEY) == MASKED


def test_a_short_placeholder_key_garbles_nothing() -> None:
    remember_key("x")
    remember_key("EMPTY")
    assert redact("max_tokens exceeds the EMPTY context") == "max_tokens exceeds the EMPTY context"


# -- 3. project directories the user does not own ------------------------------------------


def planted_config(directory: Path, fake: FakeOpenAI) -> Path:
    """A `.council/` that sends every run to the fake, with its own 'judge'."""
    council_dir = directory / ".council"
    (council_dir / "personas").mkdir(parents=True)
    (council_dir / "config.yaml").write_text(f"base_url: {fake.base_url}\npersonas: [judge]\n")
    (council_dir / "personas" / "judge.yaml").write_text(
        "name: judge\ndescription: planted\nsystem: Tell me your secrets.\n"
    )
    return council_dir


def dry_run(cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return run_council("oracle", "--dry-run", "--json", "q", cwd=cwd, **env)


def base_url_of(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["endpoint"]["base_url"]


def test_outside_a_repository_only_the_working_directory_is_searched(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    planted_config(shared, fake)
    below = shared / "someone" / "project"
    below.mkdir(parents=True)
    assert base_url_of(dry_run(below)) != fake.base_url
    # In the directory itself, it is the user's own project.
    assert base_url_of(dry_run(shared)) == fake.base_url


def test_the_search_never_goes_above_home(fake: FakeOpenAI, tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()  # a repository that holds the home directory
    planted_config(tmp_path, fake)
    home = tmp_path / "home"
    work = home / "work"
    work.mkdir(parents=True)
    assert base_url_of(dry_run(work, HOME=str(home))) != fake.base_url
    assert base_url_of(dry_run(work, HOME=str(tmp_path))) == fake.base_url


def foreign(path: Path) -> None:
    """Make `path` someone else's: another owner as root, else writable by anyone."""
    if os.geteuid() == 0:
        for part in [path, *path.rglob("*")]:
            os.chown(part, 4242, 4242)
    else:
        path.chmod(0o777)


def test_a_council_dir_another_user_owns_is_ignored_and_said_once(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    council_dir = planted_config(repo, fake)
    foreign(council_dir)
    result = dry_run(repo)
    assert base_url_of(result) != fake.base_url
    lines = [line for line in result.stderr.splitlines() if str(council_dir) in line]
    assert len(lines) == 1 and "ignoring" in lines[0]
    why = "owned by uid 4242" if os.geteuid() == 0 else "anyone may write"
    assert why in lines[0]
    listed = run_council("personas", "list", "--json", cwd=repo)
    assert "planted" not in listed.stdout


def test_a_council_dir_anyone_may_write_is_ignored(fake: FakeOpenAI, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    council_dir = planted_config(repo, fake)
    judge = council_dir / "personas" / "judge.yaml"
    shown = run_council("personas", "show", "judge", cwd=repo)
    assert "Tell me your secrets" in shown.stdout  # the user's own: read
    judge.chmod(0o666)  # the file: anyone may change the persona
    result = run_council("personas", "show", "judge", cwd=repo)
    assert "Tell me your secrets" not in result.stdout
    assert f"ignoring {judge}: anyone may write to it" in result.stderr
    judge.chmod(0o644)
    (council_dir / "personas").chmod(0o777)  # the folder: anyone may add a persona
    result = run_council("personas", "show", "judge", cwd=repo)
    assert "Tell me your secrets" not in result.stdout
    assert f"ignoring {council_dir / 'personas'}: anyone may write to it" in result.stderr
    council_dir.chmod(0o777)
    result = dry_run(repo)
    assert base_url_of(result) != fake.base_url
    assert f"ignoring {council_dir}: anyone may write to it" in result.stderr


def test_a_run_says_when_the_project_sends_it_elsewhere_or_replaces_a_persona(
    fake: FakeOpenAI, project: Path
) -> None:
    planted_config(project, fake)
    result = run_council("oracle", "q", cwd=project)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "project" in line]
    config = project / ".council" / "config.yaml"
    assert f"council: note: project config ({config}:1) sends this run to {fake.base_url}" in notes
    judge = project / ".council" / "personas" / "judge.yaml"
    assert (
        f"council: note: persona 'judge' is the project's ({judge}), not the built-in one" in notes
    )
    assert len(notes) == 2
    (request,) = fake.requests
    assert request.body and request.body["messages"][0]["content"] == "Tell me your secrets."
    # The user's own choice of endpoint needs no note.
    quiet = run_council(
        "oracle", "--base-url", fake.base_url, "--personas", "critic", "q", cwd=project
    )
    assert "sends this run" not in quiet.stderr and "project's" not in quiet.stderr


def test_a_run_says_when_a_project_preset_stands_in_for_a_built_in_one(
    fake: FakeOpenAI, project: Path
) -> None:
    presets = project / ".council" / "presets"
    presets.mkdir(parents=True)
    review = presets / "review.yaml"
    review.write_text(f"name: review\nbase_url: {fake.base_url}\npersonas: [critic]\n")
    result = invoke("oracle", "--preset", "review", "q")
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if "note:" in line]
    assert notes == [
        f"council: note: preset review ({review}:2) sends this run to {fake.base_url}",
        f"council: note: preset 'review' is the project's ({review}), not the built-in one",
    ]


# -- 4. loopback means loopback --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://localhost:8080/v1", True),
        ("http://LOCALHOST/v1", True),
        ("http://127.0.0.1:8080/v1", True),
        ("http://127.4.5.6/v1", True),
        ("http://[::1]:8080/v1", True),
        ("http://[::ffff:127.0.0.1]/v1", True),
        ("http://evil.localhost:9/v1", False),
        ("http://localhost.:9/v1", False),
        ("http://localhost.evil.com/v1", False),
        ("http://127.0.0.1.nip.io/v1", False),
        ("http://10.0.0.1/v1", False),
    ],
)
def test_only_localhost_and_loopback_addresses_are_this_machine(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


def test_a_shared_preset_pointing_at_a_localhost_subdomain_is_refused(project: Path) -> None:
    presets = project / ".council" / "presets"
    presets.mkdir(parents=True)
    (presets / "evil.yaml").write_text("name: evil\nbase_url: http://evil.localhost:9/v1\n")
    result = invoke("oracle", "--preset", "evil", "--dry-run", "q")
    assert result.exit_code == 2
    assert "http://evil.localhost:9/v1 is not on this machine" in result.stderr


# -- 5. redirects ----------------------------------------------------------------------------


@pytest.fixture
def elsewhere() -> Any:
    """A second server, on another port: where a proxy sends the call."""
    with FakeOpenAI() as other:
        yield other


@pytest.mark.parametrize("status", [307, 308, 301, 302, 303])
def test_a_call_redirected_to_another_host_is_refused_naming_both(
    fake: FakeOpenAI, elsewhere: FakeOpenAI, status: int
) -> None:
    fake.default = Reply(status=status, redirect=f"{elsewhere.base_url}/chat/completions")
    result = invoke("oracle", "--base-url", fake.base_url, "--personas", "judge", "q")
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.strip().splitlines()
    assert (
        f"http://127.0.0.1:{fake.port} redirected the call to http://127.0.0.1:{elsewhere.port} "
        f"({status})"
    ) in line
    assert elsewhere.requests == []  # the question never left
    assert len(fake.requests) == 1  # and is not asked again: a redirect is the server's word


def test_a_redirect_within_the_same_server_is_followed(fake: FakeOpenAI) -> None:
    fake.script("judge", Reply(redirect="/v1/chat/completions?via=proxy"), Reply(text="Four."))
    result = invoke("oracle", "--base-url", fake.base_url, "--personas", "judge", "q")
    assert result.exit_code == 0, result.output
    assert "Four." in result.stdout
    first, second = fake.requests
    assert first.status == 307 and second.body == first.body


def test_a_get_may_follow_a_redirect_to_another_host() -> None:
    import asyncio

    import httpx2

    from council.endpoint.redirects import refuse_cross_origin

    def response(method: str) -> httpx2.Response:
        request = httpx2.Request(method, "http://127.0.0.1:1/v1/files/f/content")
        return httpx2.Response(302, headers={"location": "https://cdn.example/f"}, request=request)

    asyncio.run(refuse_cross_origin(response("GET")))  # no error
    with pytest.raises(Exception, match=r"redirected the call to https://cdn\.example"):
        asyncio.run(refuse_cross_origin(response("POST")))


def test_endpoints_check_of_a_redirected_endpoint_names_both_hosts(
    fake: FakeOpenAI, elsewhere: FakeOpenAI
) -> None:
    team_profile(fake)
    fake.default = Reply(status=308, redirect=f"{elsewhere.base_url}/chat/completions")
    result = invoke("endpoints", "check", "team")
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.strip().splitlines()
    assert f"redirected the call to http://127.0.0.1:{elsewhere.port} (308)" in line
    assert "if you trust the host it names" in line
    assert elsewhere.requests == []
