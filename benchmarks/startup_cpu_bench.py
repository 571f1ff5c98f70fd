"""Council's own CPU between `import openai` and its first request, beside the bare SDK's.

On a shared machine the wall times of `startup_bench.py` move by more than a change of a
few tens of milliseconds; this measures what the load disturbs least. Each subject runs
as a real process that first does what `python -c "import openai"` does (and what the
preload thread does: the transport's modules, the platform the SDK's headers ask for),
then, from there, on its own CPU clock (`time.process_time`) until its first connection
to the fake server opens (an audit hook on `socket.connect`, which ends the process):

1. the bare SDK: `AsyncOpenAI(...).chat.completions.create(..., stream=True)`, the least
   any client of the SDK pays from its import to its first request;
2. `council oracle -p judge --base-url URL [--json] "q"` (stdout a pipe), with a history
   that already holds what the endpoint told the warm-up run (its slots);
3. with `--before SRC`, the same council from another checkout's sources, interleaved.

It also counts the Python function calls over the same span (cProfile, one run each),
which the load does not change at all, and the modules and classes imported by then.

    python benchmarks/startup_cpu_bench.py --runs 15
    python benchmarks/startup_cpu_bench.py --runs 15 --before ../old-checkout/src
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_process import control, start_server

# What every subject does first, unmeasured: `import openai`, and what the preload thread
# imports and asks beside it (src/council/endpoint/preload.py).
PRELUDE = """
import json, os, sys, time
import platform
platform.platform()
try:
    platform.freedesktop_os_release()
except OSError:
    pass
import openai, httpcore2, h11, anyio
URL, PROFILE = sys.argv[1], sys.argv[2] == "profile"
PORT = int(URL.rsplit(":", 1)[1].split("/")[0])
BEFORE = set(sys.modules)
if PROFILE:
    import cProfile
    PROFILER = cProfile.Profile()
STARTED = time.process_time()
if PROFILE:
    PROFILER.enable()

def _first_connect(event, args):
    if event == "socket.connect" and isinstance(args[1], tuple) and args[1][1] == PORT:
        cpu = time.process_time() - STARTED
        calls = None
        if PROFILE:
            import pstats
            PROFILER.disable()
            calls = pstats.Stats(PROFILER).total_calls
        modules = [name for name in list(sys.modules) if name not in BEFORE]
        print(json.dumps({"cpu": cpu, "calls": calls, "modules": len(modules)}), flush=True)
        os._exit(0)

sys.addaudithook(_first_connect)
"""

BARE_SDK = """
import asyncio
async def ask():
    client = openai.AsyncOpenAI(api_key="unused", base_url=URL, max_retries=0)
    await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "q"}], stream=True,
        extra_headers={"X-Council-Persona": "judge"},
    )
asyncio.run(ask())
"""

COUNCIL = """
import runpy
sys.argv = ["council", *sys.argv[3:]]
runpy.run_module("council.cli", run_name="__main__")
"""


def measure(script: str, args: list[str], env: dict[str, str], profile: bool) -> dict:
    """One process of `script`: its CPU seconds (and calls, if `profile`) to the first connect."""
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + script, args[0], "profile" if profile else "-", *args[1:]],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{args[1:4]} failed ({done.returncode}): {done.stderr[-500:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each (interleaved)")
    parser.add_argument(
        "--before", metavar="SRC", help="also run the council whose sources are in SRC"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "COUNCIL_HOME": str(workdir / "home")}
        # As a user runs it: the bytecode cached (the warm-up runs write it).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        proc, base_url = start_server(workdir)
        control(base_url, "/_fake/default", {"text": "an answer"})
        oracle = ["oracle", "-p", "judge", "--base-url", base_url]
        subjects: dict[str, tuple[str, list[str], dict[str, str]]] = {
            "bare openai SDK (floor)": (BARE_SDK, [base_url], env)
        }
        trees = {"": env}
        if args.before:
            trees[" (before)"] = {**env, "PYTHONPATH": str(Path(args.before).resolve())}
        for suffix, tree_env in trees.items():
            for shown, output in (("| cat", []), ("--json", ["--json"])):
                command = [base_url, *oracle, *output, "q"]
                subjects[f"council oracle {shown}{suffix}"] = (COUNCIL, command, tree_env)
        try:
            for tree_env in trees.values():  # the history learns the endpoint's slots
                subprocess.run(
                    [sys.executable, "-m", "council.cli", *oracle, "q"],
                    env=tree_env,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    check=True,
                    timeout=120,
                )
            counted = {name: measure(*subject, profile=True) for name, subject in subjects.items()}
            samples: dict[str, list[float]] = {name: [] for name in subjects}
            for _ in range(args.runs):  # interleaved: every subject sees the same load
                for name, subject in subjects.items():
                    samples[name].append(measure(*subject, profile=False)["cpu"])
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    print(
        f"CPU from the end of `import openai` to the first request: {args.runs} interleaved "
        f"runs each, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at the end"
    )
    print(
        f"{'':34} {'CPU ms median':>13} {'lower quartile':>14} {'best':>7}"
        f" {'calls':>9} {'modules':>8}"
    )
    for name, values in samples.items():
        quartile = statistics.quantiles(values, n=4)[0] if len(values) > 1 else values[0]
        print(
            f"{name:34} {statistics.median(values) * 1000:13.1f} {quartile * 1000:14.1f}"
            f" {min(values) * 1000:7.1f} {counted[name]['calls']:9,} {counted[name]['modules']:8}"
        )


if __name__ == "__main__":
    main()
