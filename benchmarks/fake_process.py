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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def start_server(
    workdir: Path, port: int = 0, args: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `python -m tests.fake_openai` on `port` (0: a free one); the process and base URL."""
    ready = workdir / "ready"
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fake_openai",
            "--port",
            str(port),
            "--quiet",
            "--ready-file",
            str(ready),
            *args,
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


def resolved_settings(base_url: str, max_concurrency: int | None = None) -> Any:
    """Settings as `--base-url URL [--max-concurrency N]` resolve in the CLI (a LoadedSettings:
    `.settings.endpoint`, and `.catalog`, the personas found on the way)."""
    from council.config.settings import load_settings

    flags: dict[str, Any] = {"base_url": base_url}
    if max_concurrency is not None:
        flags["max_concurrency"] = max_concurrency
    names = {"base_url": "--base-url", "max_concurrency": "--max-concurrency"}
    return load_settings(flags, {k: names[k] for k in flags}, None, require_key=False)


def write_personas(
    home: Path, count: int, *, prefix: str = "bench-", answer: str = "Answer briefly."
) -> list[str]:
    """`count` persona files under `home/personas/`, named `{prefix}000`, ...; their names."""
    personas = home / "personas"
    personas.mkdir(parents=True, exist_ok=True)
    names = [f"{prefix}{i:03d}" for i in range(count)]
    for name in names:
        (personas / f"{name}.yaml").write_text(
            f"name: {name}\ndescription: Benchmark persona {name}.\n"
            f"system: You are {name}. {answer}\n"
        )
    return names
