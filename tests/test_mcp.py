"""`council mcp`: a real server process driven by the official MCP SDK's client over stdio.

Every test starts `python -m council.cli mcp` as an MCP client does (stdin and stdout
are the protocol), pointed at the fake OpenAI-compatible server, and asserts on what
the client received and on what the fake server recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

from tests.fake_openai import Reply
from tests.helpers import history_rows

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
# Long enough for a loaded machine, short enough that a hang fails the test.
TIMEOUT = 60.0
KEY = "sk-mcp-test-0123456789abcdef"
TOOLS = {"ask", "deliberate", "presets", "recent_runs", "show_run"}


def _env(**extra: str) -> dict[str, str]:
    """The test's environment (its COUNCIL_HOME, the source on PYTHONPATH) and a key."""
    paths = [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        "OPENAI_API_KEY": KEY,
        **extra,
    }


@contextlib.asynccontextmanager
async def council_mcp(
    *args: str, command: list[str] | None = None, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[ClientSession, Any]]:
    """An initialized client session with `council mcp ARGS`, and the server's stderr file."""
    argv = command or [sys.executable, "-m", "council.cli", "mcp", *args]
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=env or _env())
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await asyncio.wait_for(session.initialize(), TIMEOUT)
            yield session, errlog


def run(main: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(main(), TIMEOUT * 2))


class Progress:
    """The progress notifications of one tool call, as the client received them."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, float | None, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.seen.append((progress, total, message))

    @property
    def messages(self) -> list[str]:
        return [m for _, _, m in self.seen if m is not None]


def _text(result: Any) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def test_lists_its_tools_with_input_and_output_schemas(fake):
    async def main() -> Any:
        async with council_mcp("--base-url", fake.base_url) as (session, _):
            return await asyncio.wait_for(session.list_tools(), TIMEOUT)

    tools = {tool.name: tool for tool in run(main).tools}
    assert set(tools) == TOOLS
    ask = tools["ask"]
    assert ask.input_schema["required"] == ["question"]
    assert {"personas", "preset", "synthesize", "vote", "choices"} <= set(
        ask.input_schema["properties"]
    )
    assert {"rounds", "speculative"} <= set(tools["deliberate"].input_schema["properties"])
    for field in ("answer", "members", "confidence", "dissent", "missing", "cost_usd", "run_id"):
        assert field in ask.output_schema["properties"], field
    assert fake.requests == []  # listing tools asks no model


def test_ask_answers_with_progress_and_structured_content(fake):
    progress = Progress()

    async def main() -> Any:
        async with council_mcp("--base-url", fake.base_url) as (session, errlog):
            result = await session.call_tool(
                "ask",
                {"question": "Ship it on Friday?", "personas": ["judge", "critic"]},
                progress_callback=progress,
            )
            errlog.seek(0)
            return result, errlog.read()

    result, stderr = run(main)
    assert not result.is_error, _text(result)
    data = result.structured_content
    # One round judged by the arbiter: its synthesis, confidence and dissent.
    assert data["answer"] == "arbiter says: w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12"
    assert data["answered_by"] == "arbiter"
    assert data["confidence"] == 0.9 and data["dissent"] == [] and data["missing"] == []
    assert data["status"] == "ok" and data["rounds"] == 1
    assert [m["persona"] for m in data["members"]] == ["judge", "critic"]
    assert data["members"][1]["answer"].startswith("critic says:")
    assert "cost_usd" in data
    # The text the model reads leads with the answer and carries every member's.
    text = _text(result)
    assert text.startswith(data["answer"])
    assert "--- critic ---\ncritic says:" in text and "confidence 0.90" in text
    # What the fake server saw: each member once, then the arbiter, with the question.
    personas = sorted(r.persona for r in fake.requests)
    assert personas == ["arbiter", "critic", "judge"]
    assert all(r.status == 200 for r in fake.requests)
    # A progress notification as each member answered and as the arbiter judged.
    messages = progress.messages
    assert any(m.startswith("judge answered") for m in messages)
    assert any(m.startswith("critic answered") for m in messages)
    assert messages[-1] == "round 1 judged: not converged, confidence 0.90"
    assert [p for p, _, _ in progress.seen] == sorted({p for p, _, _ in progress.seen})
    # Recorded in the history as an MCP run, under the id the result gives.
    rows = history_rows("SELECT id, command, status, query FROM runs")
    assert [(r["command"], r["status"], r["query"]) for r in rows] == [
        ("mcp", "ok", "Ship it on Friday?")
    ]
    assert data["run_id"] == rows[0]["id"]
    assert "Traceback" not in stderr


def test_deliberate_reports_each_round(fake):
    progress = Progress()

    async def main() -> Any:
        async with council_mcp("--base-url", fake.base_url) as (session, _):
            return await session.call_tool(
                "deliberate",
                {"question": "Rewrite it in Rust?", "personas": "judge, critic", "rounds": 3},
                progress_callback=progress,
            )

    result = run(main)
    assert not result.is_error, _text(result)
    data = result.structured_content
    # The fake's arbiter converges from round 2: the council stops there.
    assert data["rounds"] == 2 and data["converged"] is True
    assert data["stop_reason"] == "converged"
    assert "round 2 started" in progress.messages
    assert any(m.startswith("critic answered") and "round 2" in m for m in progress.messages)
    rounds = sorted(r.round for r in fake.requests if r.persona == "critic")
    assert rounds == ["1", "2"]


def test_a_member_that_fails_is_missing_from_the_answer(fake):
    fake.script("critic", Reply(status=400, error_message="bad things in the request"))
    progress = Progress()

    async def main() -> Any:
        async with council_mcp("--base-url", fake.base_url) as (session, _):
            return await session.call_tool(
                "ask",
                {"question": "Merge it?", "personas": ["judge", "critic"]},
                progress_callback=progress,
            )

    result = run(main)
    assert not result.is_error, _text(result)  # an answer, resting on fewer members
    data = result.structured_content
    assert data["status"] == "partial"
    assert [m["persona"] for m in data["missing"]] == ["critic"]
    critic = next(m for m in data["members"] if m["persona"] == "critic")
    assert critic["answer"] is None and "bad things in the request" in critic["error"]
    assert "Missing: critic (" in _text(result)
    assert "critic failed (bad_request)" in progress.messages


def test_vote_with_choices(fake):
    fake.script("judge", Reply(text='{"choice": "no", "reason": "risky"}'))
    fake.script("critic", Reply(text='{"choice": "no", "reason": "untested"}'))
    fake.script("skeptic", Reply(text='{"choice": "yes", "reason": "fine"}'))

    # Every ballot counted: with early stop, two "no" ballots that arrive first would
    # decide the vote and stop the third, and the tally would depend on the load.
    env = {**_env(), "COUNCIL_VOTE_EARLY_STOP": "0"}

    async def main() -> Any:
        async with council_mcp("--base-url", fake.base_url, env=env) as (session, _):
            return await session.call_tool(
                "ask",
                {"question": "Deploy?", "vote": True, "choices": ["yes", "no"]},
            )

    result = run(main)
    assert not result.is_error, _text(result)
    data = result.structured_content
    assert data["answer"] == "no"
    assert data["vote"]["tally"] == {"yes": 1, "no": 2}
    assert "arbiter" not in {r.persona for r in fake.requests}  # a vote has no synthesis


def test_errors_are_tool_errors_of_one_line_with_keys_masked(fake):
    fake.default = Reply(status=401, error_message=f"Incorrect API key provided: {KEY}")

    async def main() -> Any:
        async with council_mcp("--base-url", fake.base_url) as (session, errlog):
            unknown = await session.call_tool("ask", {"question": "Hi?", "personas": ["nobody"]})
            refused = await session.call_tool("ask", {"question": "Hi?", "personas": ["judge"]})
            bad = await session.call_tool("deliberate", {"question": "Hi?", "rounds": 99})
            errlog.seek(0)
            return unknown, refused, bad, errlog.read()

    unknown, refused, bad, stderr = run(main)
    assert unknown.is_error and len(_text(unknown).splitlines()) == 1
    assert "unknown persona 'nobody'" in _text(unknown)
    assert refused.is_error and len(_text(refused).splitlines()) == 1
    assert "refused the API key (401)" in _text(refused)
    assert KEY not in _text(refused) and KEY not in stderr
    assert "sk-…cdef" in _text(refused)  # the key as council masks it
    assert bad.is_error and "rounds" in _text(bad)
    assert "Traceback" not in stderr
    # The refused run is in the history all the same, as failed.
    assert [r["status"] for r in history_rows("SELECT status FROM runs")] == ["failed"]


def test_presets_lists_the_councils_and_personas_there_are(fake):
    async def main() -> Any:
        async with council_mcp("--base-url", fake.base_url) as (session, _):
            return await session.call_tool("presets", {})

    result = run(main)
    assert not result.is_error, _text(result)
    data = result.structured_content
    review = next(p for p in data["presets"] if p["name"] == "review")
    assert review["personas"] == ["critic", "security", "minimalist", "pragmatist"]
    assert review["rounds"] == 2 and review["speculative"] is True
    assert {"judge", "critic", "skeptic", "arbiter"} <= {p["name"] for p in data["personas"]}
    assert data["default_personas"] == ["judge", "critic", "skeptic"]
    assert "- review: " in _text(result)
    assert fake.requests == []


def test_recent_runs_and_show_run_read_the_history(fake):
    async def main() -> Any:
        async with council_mcp("--base-url", fake.base_url) as (session, _):
            asked = await session.call_tool("ask", {"question": "Tabs or spaces?"})
            recent = await session.call_tool("recent_runs", {"limit": 5})
            run_id = asked.structured_content["run_id"]
            shown = await session.call_tool("show_run", {"run_id": run_id[:8]})
            missing = await session.call_tool("show_run", {"run_id": "ffffffffff"})
            return asked, recent, shown, missing

    asked, recent, shown, missing = run(main)
    run_id = asked.structured_content["run_id"]
    runs = recent.structured_content["runs"]
    assert [(r["id"], r["command"], r["query"]) for r in runs] == [
        (run_id, "mcp", "Tabs or spaces?")
    ]
    assert run_id in _text(recent)
    record = shown.structured_content
    assert record["run"]["id"] == run_id
    assert record["document"]["answer"]["text"] == asked.structured_content["answer"]
    assert "Tabs or spaces?" in _text(shown)
    assert missing.is_error and "no run 'ffffffffff'" in _text(missing)


def test_stdout_carries_nothing_but_the_protocol(fake, project):
    """Raw stdio: every line the server writes is a JSON-RPC message, even around a
    council, an error and the notes council writes for people (on stderr)."""
    # A project persona standing in for the built-in judge: council says so, on stderr.
    personas = project / ".council" / "personas"
    personas.mkdir(parents=True)
    (personas / "judge.yaml").write_text(
        "name: judge\ndescription: the project's judge\nsystem: Rule briefly.\n"
    )
    messages = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {
                "name": "ask",
                "arguments": {"question": "Ok?", "personas": ["judge"]},
                "_meta": {"progressToken": "p1"},
            },
        },
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "ask", "arguments": {"question": "Ok?", "preset": "nope"}},
        },
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "council.cli", "mcp", "--base-url", fake.base_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
        cwd=project,
    )
    lines: list[bytes] = []
    answered: set[int] = set()
    both = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            with contextlib.suppress(ValueError, AttributeError):
                answered.add(json.loads(line).get("id"))
            if {2, 3} <= answered:
                both.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert process.stdin is not None
        for message in messages:
            process.stdin.write(json.dumps(message).encode() + b"\n")
            process.stdin.flush()
        assert both.wait(TIMEOUT), lines
        process.stdin.close()  # the client goes: the server ends
        assert process.wait(TIMEOUT) == 0
        reader.join(TIMEOUT)
    finally:
        process.kill()
        assert process.stderr is not None
        stderr = process.stderr.read().decode()
    decoded = [json.loads(line) for line in lines]  # each line is JSON, or this fails
    assert all(m.get("jsonrpc") == "2.0" for m in decoded)
    by_id = {m["id"]: m for m in decoded if "id" in m}
    assert "result" in by_id[2], by_id
    assert by_id[2]["result"]["structuredContent"]["answer"]
    assert by_id[3]["result"]["isError"] is True
    progress = [m for m in decoded if m.get("method") == "notifications/progress"]
    assert progress and all(m["params"]["progressToken"] == "p1" for m in progress)
    assert "Traceback" not in stderr
    assert "council: note: persona 'judge' is the project's" in stderr


def test_help_imports_no_server_package():
    code = (
        "import sys\n"
        "from council.cli import app\n"
        "for args in (['--help'], ['mcp', '--help']):\n"
        "    try:\n"
        "        app(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "loaded = [m for m in ('mcp', 'starlette', 'uvicorn', 'openai') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "print('clean')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, env=_env()
    )
    assert done.returncode == 0, done.stderr
    assert "council mcp" in done.stdout and done.stdout.strip().endswith("clean")


def test_without_the_serve_extra_it_says_how_to_install_it():
    # None in sys.modules makes `import mcp` fail as it does where it is not installed.
    code = (
        "import sys\n"
        "sys.modules['mcp'] = None\n"
        "from council.cli import main\n"
        "sys.argv = ['council', 'mcp']\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=_env(),
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "council: error: council mcp needs the mcp package, not installed; "
        'install it with: pip install "council-llm[serve]"'
    ]


# -- the README's configurations, run as written ------------------------------------------


def _readme_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("### MCP: Claude Desktop, Claude Code, Cursor")
    end = text.find("\n## ", start)
    return text[start : end if end != -1 else None]


def _json_blocks(section: str) -> list[dict[str, Any]]:
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)```", section, re.DOTALL)]


def _as_test_command(command: str, args: list[str]) -> list[str]:
    """The README's `council ...` as this checkout runs it (`python -m council.cli ...`)."""
    assert command == "council"
    return [sys.executable, "-m", "council.cli", *args]


def test_readme_mcp_configurations_parse_and_run(fake):
    section = _readme_section()
    blocks = _json_blocks(section)
    assert len(blocks) == 2  # Claude Desktop's and Cursor's
    servers = [block["mcpServers"]["council"] for block in blocks]
    adds = re.findall(r"^claude mcp add (.*)$", section, re.MULTILINE)
    assert adds, "the Claude Code line"
    commands = [_as_test_command(s["command"], s.get("args", [])) for s in servers]
    for add in adds:
        words = add.split()
        tail = words[words.index("--") + 1 :]
        commands.append(_as_test_command(tail[0], tail[1:]))
    for server in servers:
        # Keys go in the client's env; the test's own key and fake server stand in.
        assert set(server.get("env", {})) <= {"OPENAI_API_KEY", "OPENROUTER_API_KEY"}

    async def main() -> list[Any]:
        found = []
        for command in commands:
            env = _env(COUNCIL_BASE_URL=fake.base_url)
            async with council_mcp(command=command, env=env) as (session, _):
                tools = await asyncio.wait_for(session.list_tools(), TIMEOUT)
                result = await session.call_tool("ask", {"question": "Works?"})
                found.append(({t.name for t in tools.tools}, result))
        return found

    for names, result in run(main):
        assert names == TOOLS
        assert not result.is_error, _text(result)


def test_a_cancelled_call_cancels_its_model_calls(fake):
    """The client gives up on a call (its timeout): council's calls to the model end too."""
    fake.script("critic", Reply(hang=True))

    async def main() -> None:
        async with council_mcp("--base-url", fake.base_url) as (session, _):
            call = asyncio.create_task(
                session.call_tool("ask", {"question": "Slow?", "personas": ["judge", "critic"]})
            )
            await asyncio.to_thread(
                fake.wait_for, lambda f: any(r.persona == "critic" for r in f.requests), TIMEOUT
            )
            call.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await call
            await asyncio.to_thread(
                fake.wait_for, lambda f: any(r.persona == "critic" for r in f.disconnects), TIMEOUT
            )

    run(main)
    assert any(r.persona == "critic" for r in fake.disconnects)
    # Recorded as interrupted, with the answer that had finished.
    rows = history_rows("SELECT id, status FROM runs")
    assert [r["status"] for r in rows] == ["interrupted"]
    calls = history_rows("SELECT persona, status FROM calls ORDER BY persona")
    assert [(c["persona"], c["status"]) for c in calls] == [
        ("critic", "cancelled"),
        ("judge", "answered"),
    ]


@pytest.mark.parametrize("how", ["stdin closed", "SIGTERM"])
def test_a_client_that_goes_away_ends_the_council(fake, how):
    """The client closes stdin mid-council, or terminates the server (it quit): the model
    calls are closed, what finished is recorded as interrupted, and the server exits."""
    fake.script("critic", Reply(hang=True))
    process = subprocess.Popen(
        [sys.executable, "-m", "council.cli", "mcp", "--base-url", fake.base_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    hello = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    }
    call = {"name": "ask", "arguments": {"question": "Slow?", "personas": ["judge", "critic"]}}
    try:
        assert process.stdin is not None
        for message in (
            {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call},
        ):
            process.stdin.write(json.dumps(message).encode() + b"\n")
        process.stdin.flush()
        fake.wait_for(lambda f: any(r.persona == "critic" for r in f.requests), TIMEOUT)
        if how == "SIGTERM":
            process.send_signal(signal.SIGTERM)
        else:
            process.stdin.close()
        assert process.wait(TIMEOUT) == 0
        assert process.stderr is not None
        stderr = process.stderr.read().decode()
    finally:
        process.kill()
    fake.wait_for(lambda f: any(r.persona == "critic" for r in f.disconnects), TIMEOUT)
    assert "Traceback" not in stderr
    assert [r["status"] for r in history_rows("SELECT status FROM runs")] == ["interrupted"]


@pytest.mark.parametrize("flag", ["--preset", "--no-history"])
def test_flags_set_every_council(fake, flag):
    args = ["--preset", "review"] if flag == "--preset" else ["--no-history"]

    async def main() -> Any:
        async with council_mcp("--base-url", fake.base_url, *args) as (session, _):
            return await session.call_tool("ask", {"question": "Good design?"})

    result = run(main)
    assert not result.is_error, _text(result)
    members = [m["persona"] for m in result.structured_content["members"]]
    rows = history_rows("SELECT command FROM runs") if flag == "--preset" else []
    if flag == "--preset":
        assert members == ["critic", "security", "minimalist", "pragmatist"]
        assert [r["command"] for r in rows] == ["mcp"]
    else:
        assert members == ["judge", "critic", "skeptic"]
        assert result.structured_content["run_id"] is None
        assert not (Path(os.environ["COUNCIL_HOME"]) / "history.db").exists() or not history_rows(
            "SELECT id FROM runs"
        )


def test_the_same_tools_over_streamable_http(fake, monkeypatch):
    """Mounted as `council serve` mounts it (its routes and lifespan in a starlette app,
    under uvicorn), the SDK's streamable HTTP client gets the same tools and progress."""
    import socket

    import uvicorn
    from mcp.client.streamable_http import streamable_http_client
    from starlette.applications import Starlette

    from council.serve.mcp_http import mcp_http
    from council.serve.mcp_run import McpSettings

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    http = mcp_http(McpSettings(base_url=fake.base_url))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with http.lifespan():
            yield

    app = Starlette(routes=http.routes, lifespan=lifespan)
    # Bound before the server starts: the client's first request waits in the backlog.
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    progress = Progress()

    async def main() -> Any:
        url = f"http://127.0.0.1:{port}/mcp"
        async with (
            streamable_http_client(url) as (read, write),
            ClientSession(read, write) as session,
        ):
            await asyncio.wait_for(session.initialize(), TIMEOUT)
            tools = await session.list_tools()
            result = await session.call_tool(
                "ask", {"question": "Over HTTP?", "personas": ["judge"]}, progress_callback=progress
            )
            return {t.name for t in tools.tools}, result

    try:
        names, result = run(main)
    finally:
        server.should_exit = True
        thread.join(TIMEOUT)
        listening.close()
    assert names == TOOLS
    assert not result.is_error, _text(result)
    assert result.structured_content["members"][0]["persona"] == "judge"
    assert any(m.startswith("judge answered") for m in progress.messages)
    assert sorted(r.persona for r in fake.requests) == ["arbiter", "judge"]
    assert [r["command"] for r in history_rows("SELECT command FROM runs")] == ["mcp"]


def test_ask_escalates_and_says_what_it_saved(fake):
    fake.script("judge", Reply(text="It is prime.\nAnswer: yes\nConfidence: 95%"))

    async def main() -> Any:
        async with council_mcp("--base-url", fake.base_url) as (session, _):
            arguments = {"question": "Is 7 prime?", "personas": ["judge", "critic", "skeptic"]}
            return await session.call_tool("ask", {**arguments, "escalate": True})

    result = run(main)
    assert not result.is_error, _text(result)
    data = result.structured_content
    # The first panel (judge) was sure: nobody else was asked, not even the arbiter.
    assert [r.persona for r in fake.requests] == ["judge"]
    assert data["escalation"]["escalated"] is False
    assert data["escalation"]["calls_saved"] == 3
    assert data["stop_reason"] == "panel_agreed" and data["answered_by"] == "judge"
    assert "Escalation: the first panel was sure; 3 calls saved." in _text(result)


def test_ask_carries_the_agreement_map(fake):
    verdict = {
        "converged": False,
        "confidence": 0.6,
        "synthesis": "Ship on Monday.",
        "dissent": ["critic would wait"],
        "consensus": ["tests pass"],
        "contradictions": [
            {
                "point": "when to ship",
                "sides": [
                    {"members": ["judge"], "position": "Friday"},
                    {"members": ["critic"], "position": "Monday"},
                ],
                "assumption": "weekend support",
            }
        ],
        "unique_insights": [{"point": "the changelog is missing", "member": "critic"}],
        "blind_spots": ["rollback plan"],
    }
    fake.script("arbiter", Reply(text=json.dumps(verdict)))

    async def main() -> Any:
        async with council_mcp("--base-url", fake.base_url) as (session, _):
            arguments = {"question": "Ship it on Friday?", "personas": ["judge", "critic"]}
            return await session.call_tool("ask", arguments)

    result = run(main)
    assert not result.is_error, _text(result)
    agreement = result.structured_content["agreement"]
    assert agreement["consensus"] == ["tests pass"]
    assert agreement["contradictions"][0]["assumption"] == "weekend support"
    assert agreement["blind_spots"] == ["rollback plan"]
    assert result.structured_content["escalation"] is None
    text = _text(result)
    assert "Consensus:\n- tests pass" in text
    assert "- when to ship: judge: Friday; critic: Monday (they differ on: weekend support)" in text
    assert "Unique insights:\n- the changelog is missing (critic)" in text
    assert "Blind spots:\n- rollback plan" in text
