"""The fake OpenAI-compatible server in its own process, for benchmarks.

A separate process, so that the server's work does not share the event loop (or
the GIL) with the council engine being timed. Scripted over its control API.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start `python -m tests.fake_openai` on a free port; return the process and base URL."""
    ready = workdir / "ready"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fake_openai",
            "--port",
            "0",
            "--quiet",
            "--ready-file",
            str(ready),
        ],
        cwd=ROOT,
    )
    deadline = time.monotonic() + 20
    while not (ready.exists() and ready.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the fake server did not start")
        time.sleep(0.05)
    return proc, ready.read_text().strip()


def timed_reply(latency: float, tokens: int, text: str | None = None) -> dict[str, object]:
    """Reply fields for a call that streams `tokens` chunks, first at L/2, last at L."""
    ttft = latency / 2
    words = text.split(" ") if text is not None else [f"word{i}" for i in range(tokens)]
    return {
        "text": " ".join(words),
        "ttft": ttft,
        "token_delay": (latency - ttft) / max(1, len(words) - 1),
    }


def control(base_url: str, path: str, payload: object | None = None) -> dict:
    """Call the fake server's control API (same host, outside /v1)."""
    url = base_url.removesuffix("/v1") + path
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")
