"""`council batch` through an endpoint outage: the server killed mid-batch, back 10 s later.

A fake server (its own process) answers every call; `council batch` runs as a real
process over N items (default 3,000, one persona). Once a third of the items are
written, the server is killed (SIGKILL: its connections reset, its port closed) and,
OUTAGE seconds later, a new one is started on the same port. Reported per council:
items failed, items ok, the exit code and the wall time. Target (issue 23, point 6):
no failed item.

With `--before SRC` the council whose sources are in SRC (another checkout's src/)
runs the same scenario first, for a before/after under the same machine:

    python benchmarks/outage_bench.py --before /path/to/old/src
    python benchmarks/outage_bench.py --items 500 --outage 5
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_process import ROOT, start_server


def write_items(path: Path, count: int) -> Path:
    lines = (json.dumps({"id": f"t{n}", "query": f"question {n}"}) for n in range(count))
    path.write_text("".join(line + "\n" for line in lines))
    return path


def lines_in(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def run(src: Path, workdir: Path, items: int, outage: float) -> dict[str, object]:
    """One council (sources in `src`) through one outage; its figures."""
    workdir.mkdir()
    source = write_items(workdir / "items.jsonl", items)
    out = workdir / "out.jsonl"
    server, base_url = start_server(workdir, args=("--tokens", "5"))
    port = int(base_url.rsplit(":", 1)[1].split("/")[0])
    env = {**os.environ, "COUNCIL_HOME": str(workdir / "home"), "PYTHONPATH": str(src)}
    command = [sys.executable, "-m", "council.cli", "batch", str(source), "--base-url", base_url]
    command += ["--out", str(out), "-p", "judge", "--max-concurrency", "8"]
    started = time.monotonic()
    council = subprocess.Popen(command, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        while lines_in(out) < items // 3:  # the outage comes a third of the way in
            if council.poll() is not None:
                raise SystemExit(f"council ended before the outage: {council.stderr.read()}")
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)
        server.wait()
        killed_at = lines_in(out)
        time.sleep(outage)  # the outage itself: the scenario's length, not a wait for state
        server, _ = start_server(workdir, port=port, args=("--tokens", "5"))
        _, stderr = council.communicate(timeout=1800)
    finally:
        council.kill()
        server.kill()
        server.wait()
    wall = time.monotonic() - started
    statuses = [json.loads(line)["status"] for line in out.read_text().splitlines()]
    return {
        "items": items,
        "written at the kill": killed_at,
        "ok": statuses.count("ok"),
        "failed": statuses.count("failed"),
        "exit_code": council.returncode,
        "wall": round(wall, 1),
        "summary": stderr.strip().splitlines()[-1] if stderr.strip() else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--outage", type=float, default=10.0, help="seconds the server is down")
    parser.add_argument("--before", metavar="SRC", help="also run the council in SRC, first")
    args = parser.parse_args()
    subjects = {"after": ROOT / "src"}
    if args.before:
        subjects = {"before": Path(args.before).resolve(), **subjects}
    with tempfile.TemporaryDirectory() as tmp:
        for name, src in subjects.items():
            row = run(src, Path(tmp) / name, args.items, args.outage)
            print(json.dumps({"council": name, **row}), flush=True)


if __name__ == "__main__":
    main()
