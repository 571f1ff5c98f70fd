"""How much faster is one oracle call to N personas than asking them one after another?

Starts the fake OpenAI-compatible server in its own process with a fixed per-call
latency L (time to first token plus a fixed number of tokens), generates N personas
in a temporary COUNCIL_HOME, and times council's oracle engine in-process (after
imports and one warm-up run): plan, concurrent calls, aggregated Markdown output.

    python benchmarks/oracle_bench.py            # N = 3, 10, 100; L = 1 s; 5 runs each
    python benchmarks/oracle_bench.py --runs 3 --latency 0.5

Prints, for each N, the median wall time, L, the sequential sum N·L, the speedup
N·L / wall, and the overhead wall − L, with the targets from the issue. For scale it also
prints the overhead of the bare openai SDK making the same N streaming calls with
asyncio.gather (no council), measured in the same runs, and the fake server's own
median time per call, and the floor of the HTTP stack itself: bare httpx2 (what both
the SDK and council send on) making the same N streaming requests, their bodies read and
dropped unparsed, on httpx2's own transport and on council's lean one. Last, with
default flags (no --max-concurrency) and response headers after 0.6 s: how far apart
6 personas' requests reach the server, and the wall, on a first run and the two after
it (limits_bench.py, part 3).

Where the overhead comes from (issue 21, point 3): the CPU council's process spent per
call (a run's CPU time / N: the client, the engine, the plan, the output), which a
shared machine's load disturbs far less than wall times, and the send spread, from the
first request to reach the server to the last (the server's clock): what building and
sending N requests costs before the last of them can start.

    python benchmarks/oracle_bench.py --before /work/base/src   # before/after, same rounds

`--before SRC` runs another checkout's council (its `src/`) in a worker process beside
this one, run for run against the same server, and prints its rows below.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_process import control, resolved_settings, timed_reply, write_personas
from fake_process import start_server as start_fake_server
from limits_bench import SPREAD_PERSONAS, default_flag_runs, print_default_flags

TOKENS = 20  # fixed reply length, in streamed chunks
OVERHEAD_TARGET_MS = {3: 30.0, 100: 150.0}


def start_server(latency: float, workdir: Path) -> tuple[subprocess.Popen[bytes], str, dict]:
    """The fake server, replying TOKENS chunks with the first at L/2 and the last at L."""
    proc, base_url = start_fake_server(workdir)
    return proc, base_url, timed_reply(latency, TOKENS)


def run_once(base_url: str, names: list[str]) -> float:
    """One oracle run as the CLI does it (minus argument parsing); returns wall seconds."""
    return run_timed(base_url, names)[0]


def run_timed(base_url: str, names: list[str]) -> tuple[float, float]:
    """One oracle run as the CLI does it; its wall seconds and this process's CPU seconds."""
    import asyncio

    from council.engine.events import EventBus
    from council.engine.oracle import OracleRun
    from council.engine.plan import build_oracle_plan
    from council.render.markdown import oracle_markdown

    started, cpu = time.perf_counter(), time.process_time()
    loaded = resolved_settings(base_url, max_concurrency=len(names))
    endpoint = loaded.settings.endpoint
    personas = loaded.catalog.resolve(names)
    plan = build_oracle_plan(query="Benchmark question?", personas=personas, endpoint=endpoint)
    run = OracleRun(plan, EventBus())
    result = asyncio.run(run.execute())
    io.StringIO().write(oracle_markdown(result))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    if result.exit_code != 0:
        raise SystemExit(f"benchmark run failed: {[f.message for f in result.failures][:3]}")
    return wall, cpu


class BeforeWorker:
    """Another checkout's council, timed in its own process: one run per line asked."""

    def __init__(self, src: str, base_url: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())}
        command = [sys.executable, __file__, "--worker", base_url]
        self.proc = subprocess.Popen(
            command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def run(self, n: int) -> tuple[float, float]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        wall, cpu = self.proc.stdout.readline().split()
        return float(wall), float(cpu)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def worker(base_url: str) -> None:
    """--worker: reads N per line, runs an oracle of N personas, prints `wall cpu`."""
    names = [f"bench-{i:03d}" for i in range(1000)]
    for line in sys.stdin:
        wall, cpu = run_timed(base_url, names[: int(line)])
        print(f"{wall} {cpu}", flush=True)


def send_spread(base_url: str) -> float:
    """Seconds from the first request of the last run to reach the server to its last."""
    received = [r["received_at"] for r in control(base_url, "/_fake/stats")["records"]]
    return max(received) - min(received) if received else 0.0


def run_bare_sdk(base_url: str, n: int) -> float:
    """The floor: the same N streaming calls with the plain openai SDK and asyncio.gather."""
    import asyncio

    import openai

    async def ask_all() -> None:
        client = openai.AsyncOpenAI(api_key="unused", base_url=base_url, max_retries=0)

        async def ask(i: int) -> None:
            stream = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": f"q{i}"}], stream=True
            )
            async for _ in stream:
                pass

        await asyncio.gather(*(ask(i) for i in range(n)))
        await client.close()

    started = time.perf_counter()
    asyncio.run(ask_all())
    return time.perf_counter() - started


def run_bare_httpx(base_url: str, n: int, *, lean: bool = False) -> tuple[float, float]:
    """The HTTP stack's own floor: the same N streaming requests on httpx2 (the client the
    SDK and council send on), with council's pool limits, each body read and dropped,
    nothing parsed; its wall seconds and CPU seconds. No client built on httpx2's own
    transport can be cheaper than this per call. `lean`: the same client with council's
    lean transport (endpoint/lean_transport.py) mounted, as council mounts it."""
    import asyncio
    import ssl

    import httpx2

    from council.endpoint.lean_transport import lean_mounts

    async def ask_all() -> None:
        limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=16)
        # No CA store loaded for a plain-http URL, as council does (client.py, _http_client).
        bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        mounts = lean_mounts(base_url, limits) if lean else None
        async with httpx2.AsyncClient(
            limits=limits, timeout=60, verify=bare, mounts=mounts
        ) as client:

            async def ask(i: int) -> None:
                body = {"model": "m", "messages": [{"role": "user", "content": f"q{i}"}]}
                body["stream"] = True
                url = f"{base_url}/chat/completions"
                async with client.stream("POST", url, json=body) as response:
                    async for _ in response.aiter_bytes():
                        pass

            await asyncio.gather(*(ask(i) for i in range(n)))

    started, cpu = time.perf_counter(), time.process_time()
    asyncio.run(ask_all())
    return time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=1.0, help="per-call latency L, seconds")
    parser.add_argument("--runs", type=int, default=5, help="runs per N (median reported)")
    parser.add_argument("--sizes", default="3,10,100", help="comma-separated N")
    parser.add_argument("--before", metavar="SRC", help="also run the council in SRC (a src/)")
    parser.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    sizes = [int(n) for n in args.sizes.split(",")]
    latency = args.latency

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ["COUNCIL_HOME"] = str(workdir / "home")
        proc, base_url, reply = start_server(latency, workdir)
        try:
            names = write_personas(workdir / "home", max(*sizes, SPREAD_PERSONAS))
            control(base_url, "/_fake/default", reply)
            run_once(base_url, names[:3])  # warm-up: imports, first connections
            before = BeforeWorker(args.before, base_url) if args.before else None
            if before is not None:
                before.run(3)
            rows, before_rows = [], []
            floors: list[tuple[int, float, list[float]]] = []
            for n in sizes:
                control(base_url, "/_fake/reset", {})
                control(base_url, "/_fake/default", reply)
                walls, cpus, spreads, bare = [], [], [], []
                b_walls, b_cpus, b_spreads = [], [], []
                served: list[float] = []
                floor_walls, floor_cpus, lean_walls, lean_cpus = [], [], [], []
                for _ in range(args.runs):  # paired, so both see the same machine load
                    control(base_url, "/_fake/reset", {})
                    control(base_url, "/_fake/default", reply)
                    wall, cpu = run_timed(base_url, names[:n])
                    records = control(base_url, "/_fake/stats")["records"]
                    # The server's own time per call, request received to last byte sent.
                    served += [r["finished_at"] - r["received_at"] for r in records]
                    walls.append(wall)
                    cpus.append(cpu / n)
                    spreads.append(send_spread(base_url))
                    if before is not None:
                        control(base_url, "/_fake/reset", {})
                        control(base_url, "/_fake/default", reply)
                        wall, cpu = before.run(n)
                        b_walls.append(wall)
                        b_cpus.append(cpu / n)
                        b_spreads.append(send_spread(base_url))
                    bare.append(run_bare_sdk(base_url, n))
                    control(base_url, "/_fake/reset", {})
                    control(base_url, "/_fake/default", reply)
                    wall, cpu = run_bare_httpx(base_url, n)
                    floor_walls.append(wall)
                    floor_cpus.append(cpu / n)
                    control(base_url, "/_fake/reset", {})
                    control(base_url, "/_fake/default", reply)
                    wall, cpu = run_bare_httpx(base_url, n, lean=True)
                    lean_walls.append(wall)
                    lean_cpus.append(cpu / n)
                median = statistics.median
                bare_ms = median(bare)
                rows.append((n, median(walls), median(served), bare_ms, cpus, median(spreads)))
                floors.append((n, median(floor_walls), floor_cpus, median(lean_walls), lean_cpus))
                if before is not None:
                    before_rows.append(
                        (n, median(b_walls), median(served), bare_ms, b_cpus, median(b_spreads))
                    )
            if before is not None:
                before.close()
            default_runs = default_flag_runs(base_url, names)  # without --max-concurrency
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    print(
        f"oracle benchmark: L = {latency:g} s per call, {TOKENS} tokens a reply, "
        f"--max-concurrency N, median of {args.runs} runs, {os.cpu_count()} cores"
    )
    header = f"{'N':>5} {'wall s':>8} {'L s':>6} {'N·L s':>8} {'speedup':>8} {'≥0.95N':>7}"
    header += f" {'overhead ms':>12} {'target':>8}  {'bare SDK ms':>11}  server time/call"
    header += "  CPU ms/call (median, best)  send spread ms"
    print(header)
    for title, table in (("", rows), ("before (--before)", before_rows)):
        if title and table:
            print(title)
        for n, wall, served, bare, cpus, spread in table:
            speedup = n * latency / wall
            overhead = (wall - latency) * 1000
            target = OVERHEAD_TARGET_MS.get(n)
            target_text = f"≤{target:.0f}" if target else "–"
            verdict = "" if target is None else (" ok" if overhead <= target else " MISSED")
            speed_ok = "ok" if speedup >= 0.95 * n else "MISSED"
            print(
                f"{n:>5} {wall:>8.3f} {latency:>6.2f} {n * latency:>8.1f} {speedup:>7.2f}x "
                f"{speed_ok:>7} {overhead:>12.1f} {target_text:>8}{verdict:<7} "
                f"{(bare - latency) * 1000:>11.1f}  {served:.3f} s          "
                f"{statistics.median(cpus) * 1000:>6.2f} {min(cpus) * 1000:>6.2f}"
                f"  {spread * 1000:>14.1f}"
            )
    print(
        "the HTTP stack's floor: bare httpx2, the same N streaming requests, bodies read "
        "and dropped (same runs); then the same on council's lean transport"
    )
    print(f"{'N':>5} {'wall s':>8} {'overhead ms':>12}  CPU ms/call (median, best)  transport")
    for n, wall, cpus, l_wall, l_cpus in floors:
        for name, w, c in (("httpx2", wall, cpus), ("lean", l_wall, l_cpus)):
            print(
                f"{n:>5} {w:>8.3f} {(w - latency) * 1000:>12.1f}  "
                f"{statistics.median(c) * 1000:>6.2f} {min(c) * 1000:>6.2f}"
                f"{'':>16}{name}"
            )
    print()
    print_default_flags(default_runs, None)


if __name__ == "__main__":
    main()
