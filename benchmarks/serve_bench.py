"""`council serve` against the fake server: first content byte, 50 clients at once, disconnects.

    python benchmarks/serve_bench.py              # 7 rounds of the first-byte comparison
    python benchmarks/serve_bench.py --runs 15

1. **First streamed content byte.** A 3-persona council with a synthesis, each call
   streaming 20 chunks over 0.3 s. Side by side, round by round: the council run
   in-process through the `Council` API the CLI runs on (time from the run's start to
   the synthesis's first text delta), and the same council through `council serve`
   (time from sending the streamed request to the first `content` delta the client
   reads). Target: the
   server adds at most 20 ms (median).
2. **50 concurrent chat requests** of that council (`--max-runs 50`): every one must
   succeed; the fake server's peak of calls in flight shows whether they all went
   through one limiter for the endpoint (at most its ceiling, 8, rather than 50 x 3);
   the server's peak RSS (VmHWM) must stay at most 300 MB.
3. **A client that disconnects mid-answer** (while the synthesis streams, and while the
   members stream): how long until the fake server sees every upstream call of that
   council closed, from the moment the client closed its connection (both on the
   machine's monotonic clock). Target: 0.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from fake_process import control, timed_reply  # noqa: E402
from fake_process import start_server as start_fake_server  # noqa: E402

LATENCY = 0.3
TOKENS = 20
FIRST_BYTE_TARGET_MS = 20.0
RSS_TARGET_MB = 300.0
CLOSE_TARGET_S = 0.5
CONCURRENT = 50
# The endpoint limiter's default ceiling (calls in flight at once per endpoint).
LIMITER_CEILING = 8
QUESTION = [{"role": "user", "content": "Should we ship on Friday?"}]


def start_serve(base_url: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    """`council serve --port 0` on the fake; the process and its /v1 URL, once it listens."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "council.cli",
            "serve",
            "--port",
            "0",
            "--base-url",
            base_url,
            *args,
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])},
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"listening on (http://\S+/v1)", line)
    if match is None:
        proc.kill()
        raise SystemExit(f"council serve did not start: {line}{proc.stderr.read()}")
    return proc, match[1]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- 1. first content byte ------------------------------------------------------------


async def engine_first_byte(council: Any) -> float:
    """The same council run in-process by the API the CLI runs on (recorded in the history,
    as `council oracle -s` is): seconds from the start to the synthesis's first text."""
    from council.engine.events import TextDelta

    started = time.perf_counter()
    first = None
    async with council.stream(QUESTION[0]["content"]) as events:
        async for event in events:
            if first is None and isinstance(event, TextDelta) and event.role == "arbiter":
                first = time.perf_counter()
    assert first is not None, "no synthesis streamed"
    return first - started


async def serve_first_byte(client: httpx.AsyncClient, url: str) -> float:
    """Through the server: seconds from sending to the first `content` delta read."""
    body = {"model": "council", "messages": QUESTION, "stream": True}
    started = time.perf_counter()
    first = None
    async with client.stream("POST", f"{url}/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if first is None and '"content": "' in line and '"content": ""' not in line:
                first = time.perf_counter()
    assert first is not None, "no content streamed"
    return first - started


async def first_bytes(fake_url: str, serve_url: str, runs: int) -> tuple[list[float], list[float]]:
    from council import Council

    council = Council(base_url=fake_url, command="oracle")
    direct: list[float] = []
    served: list[float] = []
    async with httpx.AsyncClient(timeout=60) as client:
        await engine_first_byte(council)  # warm-up: imports, clients, learned limits
        await serve_first_byte(client, serve_url)
        for _ in range(runs):
            direct.append(await engine_first_byte(council))
            served.append(await serve_first_byte(client, serve_url))
    return direct, served


# -- 2. 50 at once ------------------------------------------------------------------


async def concurrent(serve_url: str) -> list[int]:
    body = {"model": "council", "messages": QUESTION}
    limits = httpx.Limits(max_connections=CONCURRENT + 5)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def one() -> int:
            response = await client.post(f"{serve_url}/chat/completions", json=body)
            return response.status_code

        return list(await asyncio.gather(*(one() for _ in range(CONCURRENT))))


# -- 3. disconnects -------------------------------------------------------------------


async def disconnect_once(serve_url: str, fake_url: str, during: str) -> float:
    """Close the client's connection mid-answer; seconds until the fake saw every call closed."""
    control(fake_url, "/_fake/reset", {})
    slow = {"text": " ".join(f"w{i}" for i in range(400)), "token_delay": 0.02}
    if during == "synthesis":
        control(fake_url, "/_fake/default", timed_reply(0.1, 5))
        control(fake_url, "/_fake/script", {"persona": "arbiter", "replies": [slow]})
    else:
        control(fake_url, "/_fake/default", slow)
    body = {"model": "council", "messages": QUESTION, "stream": True}
    url = f"{serve_url}/chat/completions"
    async with (
        httpx.AsyncClient(timeout=60) as client,
        client.stream("POST", url, json=body) as response,
    ):
        lines = response.aiter_lines()
        if during == "synthesis":  # the first words of the answer have arrived
            async for line in lines:
                if '"content": "' in line and '"content": ""' not in line:
                    break
        else:  # every member is streaming its answer (nothing reaches the client yet)
            await anext(lines)
            while True:
                stats = control(fake_url, "/_fake/stats")
                if sum(r["tokens_sent"] >= 3 for r in stats["records"]) >= 3:
                    break
                await asyncio.sleep(0.01)
        closed_at = time.monotonic()
    # The fake's clock is the machine's monotonic clock too: the same time base.
    deadline = time.monotonic() + 10
    while True:
        stats = control(fake_url, "/_fake/stats")
        open_calls = [r for r in stats["records"] if not r["completed"] and not r["disconnected"]]
        if not open_calls and stats["disconnects"]:
            return max(d["at"] for d in stats["disconnects"]) - closed_at
        if time.monotonic() > deadline:
            raise SystemExit(f"upstream calls still open 10 s after the disconnect: {open_calls}")
        await asyncio.sleep(0.02)


def mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def print_first_bytes(fake_url: str, serve_url: str, runs: int) -> None:
    control(fake_url, "/_fake/default", timed_reply(LATENCY, TOKENS))
    direct, served = asyncio.run(first_bytes(fake_url, serve_url, runs))
    d, s = statistics.median(direct) * 1000, statistics.median(served) * 1000
    target = FIRST_BYTE_TARGET_MS
    print(f"1. first streamed content byte, median of {runs} (3 personas + synthesis):")
    print(f"   engine in-process, recorded   {d:7.1f} ms")
    print(f"   council serve                 {s:7.1f} ms")
    verdict = mark(s - d <= target)
    print(f"   serve adds                    {s - d:7.1f} ms   (<= {target:g} ms: {verdict})")


def print_concurrent(fake_url: str, serve_url: str, pid: int) -> None:
    control(fake_url, "/_fake/reset", {})
    control(fake_url, "/_fake/default", timed_reply(LATENCY, TOKENS))
    started = time.perf_counter()
    statuses = asyncio.run(concurrent(serve_url))
    wall = time.perf_counter() - started
    stats = control(fake_url, "/_fake/stats")
    ok, peak, rss = statuses.count(200), stats["peak_concurrency"], peak_rss_mb(pid)
    print(f"2. {CONCURRENT} concurrent chat requests (3 personas + synthesis), wall {wall:.2f} s:")
    print(f"   succeeded                     {ok} of {CONCURRENT}   ({mark(ok == CONCURRENT)})")
    print(
        f"   upstream calls                {stats['requests']}, at most {peak} in flight "
        f"(one limiter, ceiling {LIMITER_CEILING}: {mark(peak <= LIMITER_CEILING)})"
    )
    verdict = mark(rss <= RSS_TARGET_MB)
    print(f"   server peak RSS               {rss:7.1f} MB   (<= {RSS_TARGET_MB:g}: {verdict})")


def print_disconnects(fake_url: str, serve_url: str) -> None:
    print("3. a client that disconnects mid-answer: every upstream call closed after")
    for during in ("synthesis", "members"):
        gaps = [asyncio.run(disconnect_once(serve_url, fake_url, during)) for _ in range(5)]
        median, worst = statistics.median(gaps) * 1000, max(gaps) * 1000
        print(
            f"   during the {during:<9}        median {median:5.1f} ms, worst {worst:5.1f} ms "
            f"(<= {CLOSE_TARGET_S * 1000:g} ms: {mark(worst <= CLOSE_TARGET_S * 1000)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["COUNCIL_HOME"] = str(Path(tmp) / "home")
        fake, fake_url = start_fake_server(Path(tmp))
        serve, serve_url = start_serve(fake_url, "--max-runs", str(CONCURRENT))
        try:
            print_first_bytes(fake_url, serve_url, args.runs)
            print_concurrent(fake_url, serve_url, serve.pid)
            print_disconnects(fake_url, serve_url)
        finally:
            serve.terminate()
            serve.wait(timeout=30)
            fake.terminate()
            fake.wait(timeout=10)


if __name__ == "__main__":
    main()
