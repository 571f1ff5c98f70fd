"""How long does a one-question council take to get going, and to go away, beside the floor?

Starts the fake OpenAI-compatible server in its own process, with one reply that
streams its first token at L/2 and its last at L (L = 1 s), and runs side by side,
`--runs` times each (medians reported), as real processes from a clean start:

1. the floor: a bare script that imports httpx and streams the same request;
2. `python -c "import openai"`: what the SDK's import alone costs, as the moment the
   import is done (the process prints its clock) and as the process's wall time (which
   adds the interpreter's exit: some 0.1 s once openai is loaded);
3. `council oracle -p judge --base-url URL "q"` with stdout a pipe;
4. the same with `--json`;
5. the same as a first run against the endpoint (an empty history each time), which
   also asks the server `GET /props` once before its first call.

For each it prints when the first request reached the server after the process was
spawned (the server's request log, on the system's monotonic clock, which every
process shares) and when the process had exited after the server sent the last byte
of the answer, and the CPU seconds each process used from start to exit (its rusage:
what a shared machine's load disturbs least, so the column to compare before and after
on a busy machine). Targets (issue 15, point 9; issue 21, point 4): council's first
request no later than the openai import plus 0.1 s (judged against the import being
done, and shown against the process wall time too), and its exit no later than 0.08 s
after the answer, on the best of the runs: the machine is shared, and other work only
ever adds to a time (medians are printed beside them).

    python benchmarks/startup_bench.py               # 7 runs each
    python benchmarks/startup_bench.py --runs 9
    python benchmarks/startup_bench.py --before ../old-checkout/src   # before/after
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_process import control, start_server, timed_reply

LATENCY = 1.0  # the reply's last byte, seconds after the request
TOKENS = 20
FIRST_REQUEST_MARGIN = 0.1  # over the openai import (issue 15, point 9)
EXIT_TARGET = 0.08  # seconds after the last byte of the answer

# The floor: what any client must pay to ask this question over HTTP and print the answer.
BARE_HTTPX = """
import json, sys
import httpx2 as httpx
body = {"model": "m", "messages": [{"role": "user", "content": "q"}], "stream": True}
headers = {"X-Council-Persona": "judge", "Authorization": "Bearer unused"}
parts = []
with httpx.Client() as client:
    with client.stream("POST", sys.argv[1] + "/chat/completions", json=body,
                       headers=headers) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                for choice in json.loads(line[6:]).get("choices") or []:
                    parts.append((choice.get("delta") or {}).get("content") or "")
sys.stdout.write("".join(parts) + "\\n")
"""


# The import, and the moment it was done on the clock every process shares.
IMPORT_OPENAI = "import time\nimport openai\nprint(time.monotonic())"

# The SDK's own floor for point 4: import it, then ask the same question through
# `AsyncOpenAI` as its README does; the last line printed is when its import was done,
# so that its first request can be set against its own import.
BARE_SDK = """
import time
import openai
imported = time.monotonic()
import asyncio, sys
async def ask():
    client = openai.AsyncOpenAI(api_key="unused", base_url=sys.argv[1], max_retries=0)
    stream = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "q"}], stream=True,
        extra_headers={"X-Council-Persona": "judge"},
    )
    parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    sys.stdout.write("".join(parts) + "\\n")
asyncio.run(ask())
print(imported)
"""

BARE_SDK_ROW = "bare openai SDK (floor)"

# In a subject's environment: run it with a new, empty COUNCIL_HOME each time.
FRESH_HOME = "STARTUP_BENCH_FRESH_HOME"


def council(*args: str) -> list[str]:
    return [sys.executable, "-m", "council.cli", *args]


def timed_process(command: list[str], base_url: str, env: dict[str, str]) -> dict[str, float]:
    """Run `command` once; seconds to its first request and from the last answer to its exit."""
    if env.get(FRESH_HOME):  # a history of its own: nothing learned about the endpoint yet
        env = {**env, "COUNCIL_HOME": tempfile.mkdtemp(dir=env["COUNCIL_HOME"] + "-fresh")}
    control(base_url, "/_fake/reset", {})
    control(base_url, "/_fake/default", timed_reply(LATENCY, TOKENS))
    started = time.monotonic()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors
        )
        assert process.stdout is not None
        stdout = process.stdout.read()
        # Reaped here, not by Popen, so that its CPU time (rusage) can be read.
        _, status, usage = os.wait4(process.pid, 0)
        exited = time.monotonic()
        process.returncode = code = os.waitstatus_to_exitcode(status)
        process.stdout.close()
        errors.seek(0)
        stderr = errors.read()
    if code != 0:
        raise SystemExit(f"{command[:4]} failed ({code}): {stderr.decode()[-500:]}")
    records = control(base_url, "/_fake/stats")["records"]
    records = [r for r in records if "/chat/completions" in r["path"]]
    # CPU seconds, start to exit: what a shared machine's load disturbs least.
    times = {"wall": exited - started, "cpu": usage.ru_utime + usage.ru_stime}
    if command[-1] == IMPORT_OPENAI or command[2:3] == [BARE_SDK]:
        times["import"] = float(stdout.splitlines()[-1]) - started
    if records:
        times["first"] = min(r["received_at"] for r in records) - started
        times["exit"] = exited - max(r["finished_at"] for r in records)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each (median reported)")
    parser.add_argument(
        "--before",
        metavar="SRC",
        help="also run the council whose sources are in SRC (another checkout's src/), "
        "in the same rounds: a before/after under the same machine load",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "COUNCIL_HOME": str(workdir / "home")}
        (workdir / "home-fresh").mkdir()
        # As a user runs it: an installed package has its bytecode cached (the warm-up
        # run writes it), and stdout is buffered.
        for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"):
            env.pop(name, None)
        proc, base_url = start_server(workdir)
        subjects = {
            "bare httpx (floor)": [sys.executable, "-c", BARE_HTTPX, base_url],
            "import openai": [sys.executable, "-c", IMPORT_OPENAI],
            BARE_SDK_ROW: [sys.executable, "-c", BARE_SDK, base_url],
            "council oracle | cat": council("oracle", "-p", "judge", "--base-url", base_url, "q"),
            "council oracle --json": council(
                "oracle", "-p", "judge", "--base-url", base_url, "--json", "q"
            ),
        }
        envs = dict.fromkeys(subjects, env)
        # The first run against an endpoint also asks it `GET /props` once (its slots); the
        # runs above share one history, so they have the answer kept from the warm-up run.
        subjects["council oracle --json, first run"] = subjects["council oracle --json"]
        envs["council oracle --json, first run"] = {**env, FRESH_HOME: "1"}
        if args.before:
            before = {**env, "PYTHONPATH": str(Path(args.before).resolve())}
            for name in (
                "council oracle | cat",
                "council oracle --json",
                "council oracle --json, first run",
            ):
                subjects[f"{name} (before)"] = subjects[name]
                envs[f"{name} (before)"] = {**envs[name], "PYTHONPATH": before["PYTHONPATH"]}
        try:
            for name, command in subjects.items():  # warm the page cache and the .pyc files
                timed_process(command, base_url, envs[name])
            samples: dict[str, list[dict[str, float]]] = {name: [] for name in subjects}
            for _ in range(args.runs):  # interleaved, so that all see the same machine load
                for name, command in subjects.items():
                    samples[name].append(timed_process(command, base_url, envs[name]))
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    def stat(name: str, key: str, how: Callable[[list[float]], float]) -> float | None:
        values = [s[key] for s in samples[name] if key in s]
        return how(values) if values else None

    import_best = stat("import openai", "import", min)
    import_wall_best = stat("import openai", "wall", min)
    assert import_best is not None and import_wall_best is not None
    print(
        f"start-up benchmark: one call, last byte at {LATENCY:g} s, {args.runs} runs each "
        f"(median, and best of {args.runs}: the machine is shared, and its load only adds), "
        f"{os.cpu_count()} cores"
    )
    print(
        f"{'':42} {'first request s':>16} {'exit after answer s':>20} {'wall s':>13}"
        f" {'import done s':>14} {'CPU s':>13}"
    )
    both = "median   best"
    print(f"{'':42} {both:>16} {both:>20} {both:>13} {both:>14} {both:>13}")
    for name in subjects:
        cells = [
            f"{_cell(stat(name, key, statistics.median))} {_cell(stat(name, key, min))}"
            for key in ("first", "exit", "wall", "import", "cpu")
        ]
        print(
            f"{name:42} {cells[0]:>16} {cells[1]:>20} {cells[2]:>13} {cells[3]:>14} {cells[4]:>13}"
        )
    print()
    # What the SDK itself needs from its import to its first request (client, event loop,
    # the HTTP transport's import, the connection): no client of it can do better.
    sdk_first, sdk_import = (stat(BARE_SDK_ROW, key, min) for key in ("first", "import"))
    sdk_gaps = [s["first"] - s["import"] for s in samples[BARE_SDK_ROW] if "first" in s]
    if sdk_first is not None and sdk_import is not None and sdk_gaps:
        print(
            f"{BARE_SDK_ROW}: first request − its own import done = "
            f"{statistics.median(sdk_gaps):+.3f} s median, {min(sdk_gaps):+.3f} s best; "
            f"best first request − best openai import done = {sdk_first - import_best:+.3f} s"
        )
    for name in subjects:
        first_best, exit_best = stat(name, "first", min), stat(name, "exit", min)
        if not name.startswith("council") or first_best is None or exit_best is None:
            continue
        over = first_best - import_best
        verdict = "ok" if over <= FIRST_REQUEST_MARGIN else "MISSED"
        print(
            f"{name}: first request − openai import done = {over:+.3f} s "
            f"(target ≤ +{FIRST_REQUEST_MARGIN:g}: {verdict}); − `python -c 'import openai'` "
            f"wall = {first_best - import_wall_best:+.3f} s; exit after the answer "
            f"{exit_best:.3f} s (target ≤ {EXIT_TARGET:g}: "
            f"{'ok' if exit_best <= EXIT_TARGET else 'MISSED'})"
            + ("" if sdk_first is None else f"; − the bare SDK's = {first_best - sdk_first:+.3f} s")
        )


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
