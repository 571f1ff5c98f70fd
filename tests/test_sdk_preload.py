"""A run imports the SDK on a thread while it reads its settings (issue 21, point 4)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import council_process

# In a fresh interpreter: start the import twice, wait for the one thread it started.
PRELOAD_SCRIPT = """
import sys, threading
from council.endpoint.preload import SDK_MODULES, import_sdk_meanwhile
assert "openai" not in sys.modules
import_sdk_meanwhile()
import_sdk_meanwhile()
threads = [t for t in threading.enumerate() if t.name == "council-import-sdk"]
assert len(threads) == 1 and threads[0].daemon, threads
threads[0].join(timeout=120)
assert not threads[0].is_alive()
missing = [name for name in SDK_MODULES if name not in sys.modules]
assert not missing, missing
import_sdk_meanwhile()
assert not [t for t in threading.enumerate() if t.name == "council-import-sdk"]
print("imported")
"""


def _run_script(script: str) -> str:
    """What `script` printed, run in a fresh interpreter (which must exit 0)."""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_sdk_is_imported_once_on_a_daemon_thread() -> None:
    assert _run_script(PRELOAD_SCRIPT) == "imported"


# In a fresh interpreter: once the thread is done, the SDK's first client (its headers)
# spawns no process (`uname -p`) on the way to the first request.
PLATFORM_SCRIPT = """
import sys, threading
from council.endpoint.preload import import_sdk_meanwhile
import_sdk_meanwhile()
[thread] = [t for t in threading.enumerate() if t.name == "council-import-sdk"]
thread.join(timeout=120)
spawned = []
sys.addaudithook(lambda event, args: event == "subprocess.Popen" and spawned.append(args))
import openai
client = openai.AsyncOpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1")
headers = client.default_headers
assert headers["X-Stainless-OS"] and headers["X-Stainless-Arch"], headers
assert spawned == [], spawned
print("nothing spawned")
"""


def test_the_platform_the_sdk_reports_is_asked_on_the_thread() -> None:
    assert _run_script(PLATFORM_SCRIPT) == "nothing spawned"


def test_a_run_that_fails_before_its_first_call_ends_with_its_one_line_error(
    fake: FakeOpenAI,
) -> None:
    # The SDK is still being imported on its thread when the unknown persona is found.
    process = council_process("oracle", "--base-url", fake.base_url, "-p", "nobody", "--json", "q")
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 2, stderr
    assert stdout == ""
    assert stderr.count("\n") == 1 and "unknown persona 'nobody'" in stderr, stderr
    assert "Traceback" not in stderr and "Fatal" not in stderr
    assert fake.requests == []


def test_a_piped_run_answers_with_the_sdk_imported_meanwhile(fake: FakeOpenAI) -> None:
    process = council_process("oracle", "--base-url", fake.base_url, "-p", "judge", "q")
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert "judge" in stdout
    assert [(r.persona, r.body and r.body["messages"][-1]["content"]) for r in fake.requests] == [
        ("judge", "q")
    ]


# A run through the command line that says, as it exits, whether tenacity was imported.
TENACITY_SCRIPT = """
import atexit, sys
import council.cli
atexit.register(lambda: print("tenacity" in sys.modules, file=sys.stderr))
sys.argv = ["council", "oracle", "--base-url", sys.argv[1], "-p", "judge", "--json", "q"]
council.cli.main()
"""


def _tenacity_run(fake: FakeOpenAI) -> tuple[dict, str]:
    done = subprocess.run(
        [sys.executable, "-c", TENACITY_SCRIPT, fake.base_url],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr.strip()


def test_only_a_call_that_is_retried_imports_the_retry_loop(fake: FakeOpenAI) -> None:
    doc, imported = _tenacity_run(fake)
    assert imported == "False"
    assert doc["answers"][0]["retries"] == 0

    fake.script("judge", Reply(status=500, error_message="Try again."))
    doc, imported = _tenacity_run(fake)
    assert imported == "True"
    [answer] = doc["answers"]
    assert answer["retries"] == 1 and answer["text"], answer
    assert [r.persona for r in fake.requests] == ["judge"] * 3
