"""Is council's memory bounded when a server streams without end? (issue 23, point 4)

A fake server (its own process, loopback) streams text as fast as council reads it
and never finishes, to RUNAWAY of 8 personas; the others answer normally after a
moment, while the runaway streams are going. `council oracle --json` runs as a real
process with the default --timeout (120 s); its resident memory is sampled from
/proc every 50 ms. Reports peak RSS, wall time, exit code and each persona's outcome.
Target: peak RSS under 150 MB, and the normal personas' answers kept.

Bounded in time and memory: the council process is killed at --max-seconds or when
it passes --max-mb (reported as such), so a council without caps cannot take the
machine with it.

    python benchmarks/memory_bench.py                          # this checkout
    PYTHONPATH=/path/to/other/src python benchmarks/memory_bench.py   # another one

The council measured is the one `python -m council.cli` imports with the current
PYTHONPATH (printed first).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_process import control, start_server, write_personas

PERSONAS = 8
RUNAWAY = 6
TARGET_MB = 150.0


def runaway_text(chunk_chars: int) -> str:
    """200 words of about `chunk_chars` characters: the fake streams a word an event."""
    return " ".join(f"runaway{i:04d}".ljust(chunk_chars - 1, "x") for i in range(200))


def rss_mb(pid: int) -> float | None:
    """The process's resident set size now, in MB (None: it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def measure(
    base_url: str, home: Path, names: list[str], timeout: float | None, limits: tuple[float, float]
) -> dict[str, object]:
    max_seconds, max_mb = limits
    args = [sys.executable, "-m", "council.cli", "oracle", "--base-url", base_url, "--json"]
    args += ["--personas", ",".join(names)]
    if timeout is not None:
        args += ["--timeout", str(timeout)]
    env = {**os.environ, "COUNCIL_HOME": str(home), "OPENAI_API_KEY": "sk-bench"}
    started = time.monotonic()
    # Into files, not pipes: a document of long answers would fill a pipe nobody reads yet.
    out_file, err_file = home / "out.json", home / "err.txt"
    with out_file.open("w") as out_sink, err_file.open("w") as err_sink:
        proc = subprocess.Popen(
            [*args, "Tell me everything."], stdout=out_sink, stderr=err_sink, env=env
        )
        peak, killed = _watch(proc, started, max_seconds, max_mb)
    out, err = out_file.read_text(), err_file.read_text()
    wall = time.monotonic() - started
    outcomes: dict[str, str] = {}
    try:
        doc = json.loads(out)
        for answer in doc.get("answers", []):
            outcomes[answer["persona"]] = f"answered ({answer.get('finish_reason')})"
        for error in doc.get("errors", []):
            outcomes[error["persona"]] = error["error_kind"]
    except ValueError:
        pass
    return {
        "peak_mb": peak,
        "wall": wall,
        "exit": proc.returncode,
        "killed": killed,
        "outcomes": outcomes,
        "stderr": err.strip().splitlines()[-1:] if err.strip() else [],
    }


def _watch(
    proc: subprocess.Popen[bytes], started: float, max_seconds: float, max_mb: float
) -> tuple[float, str]:
    """Sample the process's RSS until it ends (or is killed past a limit): peak MB, why killed."""
    peak, killed = 0.0, ""
    while proc.poll() is None:
        now = rss_mb(proc.pid)
        peak = max(peak, now or 0.0)
        if now is not None and now > max_mb:
            killed = f"killed at {max_mb:,.0f} MB"
        elif time.monotonic() - started > max_seconds:
            killed = f"killed at {max_seconds:g} s"
        if killed:
            proc.kill()
            break
        time.sleep(0.05)
    proc.wait()
    return peak, killed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=None, help="council's --timeout")
    parser.add_argument("--max-seconds", type=float, default=150.0)
    parser.add_argument("--max-mb", type=float, default=1500.0)
    parser.add_argument("--chunk-chars", type=int, default=100, help="characters of text per event")
    options = parser.parse_args()
    where = subprocess.run(
        [sys.executable, "-c", "import council; print(council.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"council: {where}")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        names = write_personas(home, PERSONAS)
        server, base_url = start_server(Path(tmp))
        try:
            control(base_url, "/_fake/reset", {})
            control(base_url, "/_fake/default", {"text": "A calm answer.", "ttft": 1.0})
            for name in names[:RUNAWAY]:
                reply = {"text": runaway_text(options.chunk_chars), "endless": True}
                control(base_url, "/_fake/script", {"persona": name, "replies": [reply]})
            result = measure(
                base_url, home, names, options.timeout, (options.max_seconds, options.max_mb)
            )
        finally:
            server.terminate()
            server.wait(10)
    timeout = "default" if options.timeout is None else f"{options.timeout:g} s"
    print(
        f"{PERSONAS} personas ({RUNAWAY} streaming {options.chunk_chars} characters an event "
        f"without end), --timeout {timeout}: "
        f"peak RSS {result['peak_mb']:,.0f} MB (target < {TARGET_MB:g}), "
        f"wall {result['wall']:.1f} s, exit {result['exit']}"
        + (f", {result['killed']}" if result["killed"] else "")
    )
    outcomes = result["outcomes"]
    assert isinstance(outcomes, dict)
    for name in names:
        kind = "runaway" if name in names[:RUNAWAY] else "normal"
        print(f"  {name} ({kind}): {outcomes.get(name, 'no outcome (no JSON document)')}")
    for line in result["stderr"]:  # type: ignore[union-attr]
        print(f"  stderr: {line[:200]}")


if __name__ == "__main__":
    main()
