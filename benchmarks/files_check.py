"""Issue 22's file points, counted the same way on any checkout: what two processes, a file
council did not write and input that is no text do, in requests and bytes (no timings).

    python benchmarks/files_check.py --src src              # this checkout
    python benchmarks/files_check.py --src ../base/src      # an older one, side by side

Each council command runs as a real process with `PYTHONPATH=SRC`, against the fake
server (`tests/fake_openai.py`) in this process. Prints one line per point.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fake_openai import FakeOpenAI, Reply  # noqa: E402


class Council:
    def __init__(self, src: Path, home: Path, fake: FakeOpenAI) -> None:
        self.env = {**os.environ, "PYTHONPATH": str(src), "COUNCIL_HOME": str(home)}
        for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "COUNCIL_BASE_URL", "COUNCIL_MODEL"):
            self.env.pop(name, None)
        self.fake = fake

    def start(self, *args: str, **kwargs: object) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "council.cli", *args, "--base-url", self.fake.base_url]
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env,
            **kwargs,
        )  # fmt: skip

    def run(self, *args: str) -> tuple[int, str]:
        process = self.start(*args)
        _, err = process.communicate(timeout=300)
        return process.returncode, err


def items(path: Path, count: int) -> Path:
    path.write_text(
        "".join(json.dumps({"id": f"t{n}", "query": f"question t{n}"}) + "\n" for n in range(count))
    )
    return path


def until(condition: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.02)


def point2(council: Council, work: Path) -> str:
    os.umask(0o022)
    out = work / "p2.jsonl"
    council.run("batch", str(items(work / "p2-in.jsonl", 1)), "--out", str(out), "-p", "judge")
    home = Path(council.env["COUNCIL_HOME"])
    return (
        f"point 2: --out mode {oct(stat.S_IMODE(out.stat().st_mode))}, "
        f"new COUNCIL_HOME dir mode {oct(stat.S_IMODE(home.stat().st_mode))}"
    )


def point6(council: Council, fake: FakeOpenAI, work: Path) -> str:
    fake.reset()
    source, out = items(work / "p6-in.jsonl", 20), work / "p6.jsonl"
    fake.default = Reply(gate="hold")
    args = ("batch", str(source), "--out", str(out), "-p", "judge", "--max-concurrency", "4")
    first = council.start(*args)
    until(lambda: len(fake.requests) >= 1)
    second = council.start(*args)
    # The second one either ends (refused) or is asking too: then let both go.
    until(lambda: second.poll() is not None or len(fake.requests) > 4)
    fake.release("hold")
    code2 = second.wait(300)
    code1 = first.wait(300)
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    return (
        f"point 6: two overlapping batches of 20 items on one --out: {len(fake.requests)} "
        f"requests, {len(ids)} lines ({len(ids) - len(set(ids))} duplicate), exits {code1}/{code2}"
    )


def point7(council: Council, fake: FakeOpenAI, work: Path) -> str:
    fake.reset()
    source = items(work / "p7-in.jsonl", 2)
    notes = work / "notes.md"
    notes.write_bytes(b"a\nb")
    code, _ = council.run("batch", str(source), "--out", str(notes), "-p", "judge")
    kept = notes.read_bytes().startswith(b"a\nb") and notes.stat().st_size == 3
    before = source.read_bytes()
    code_in, _ = council.run(
        "batch", str(source), "--out", str(source), "-p", "judge", "--retry-failed"
    )
    return (
        f"point 7: notes.md 'a\\nb' as --out: exit {code}, file kept whole: {kept}; "
        f"--out = input --retry-failed: exit {code_in}, input kept: {source.read_bytes() == before}"
    )


def point8(council: Council, fake: FakeOpenAI, work: Path) -> str:
    fake.reset()
    code_ls, _ = council.run("batch", "/bin/ls", "--out", str(work / "p8-ls.jsonl"), "-p", "judge")
    sent_ls = len(fake.requests)
    fake.reset()
    big = work / "p8-big.jsonl"
    big.write_text(json.dumps({"id": "big", "query": "x" * 10_000_000}) + "\n")
    council.run("batch", str(big), "--out", str(work / "p8-big-out.jsonl"), "-p", "judge")
    sent_bytes = sum(len(json.dumps(r.body)) for r in fake.requests)
    fake.reset()
    empty = work / "empty.txt"
    empty.write_text("")
    _, err = council.run("oracle", "-p", "judge", "-c", str(empty), "Q?")
    warned = sum("empty" in line for line in err.splitlines())
    fake.reset()
    fifo = work / "p8.fifo"
    os.mkfifo(fifo)
    process = council.start("oracle", "-p", "judge", "-c", str(fifo), "Q?")
    # A writer that comes once council is there (a slow `git diff > fifo`): after council
    # says it waits, or (when it does not wait) once it has ended.
    assert process.stderr is not None
    process.stderr.readline()
    try:  # without blocking: a council that did not wait is no reader any more
        writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        pass
    else:
        os.write(writer, b"from the pipe\n")
        os.close(writer)
    process.communicate(timeout=60)
    attached = any("from the pipe" in json.dumps(r.body) for r in fake.requests)
    return (
        f"point 8: batch /bin/ls: exit {code_ls}, {sent_ls} requests; a 10 MB query: "
        f"{sent_bytes:,} request bytes sent; empty -c: {warned} warning line(s); "
        f"-c FIFO written late: attached {attached}"
    )


def point9(council: Council, fake: FakeOpenAI, work: Path, trials: int = 5) -> str:
    counts = []
    for _ in range(trials):
        fake.reset()
        fake.script("critic", Reply(gate="never"), round=1)
        process = council.start("deliberate", "-p", "judge,critic", "--rounds", "1", "Resume?")
        until(lambda: len(fake.requests) >= 2)
        process.send_signal(2)
        process.communicate(timeout=60)
        history = Path(council.env["COUNCIL_HOME"]) / "history.db"
        with sqlite3.connect(history) as db:
            query = "SELECT id FROM runs ORDER BY started_at DESC LIMIT 1"
            (run_id,) = db.execute(query).fetchone()
        fake.reset()
        both = [council.start("resume", run_id) for _ in range(2)]
        for process in both:
            process.communicate(timeout=120)
        counts.append(len(fake.requests))
    return f"point 9: two `council resume ID` at once, requests per trial (one asks 2): {counts}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", type=Path, required=True)
    src = parser.parse_args().src.resolve()
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI() as fake:
        work = Path(tmp)
        council = Council(src, work / "state" / "home", fake)
        print(f"src: {src}")
        print(point2(council, work))
        print(point6(council, fake, work))
        print(point7(council, fake, work))
        print(point8(council, fake, work))
        print(point9(council, fake, work))


if __name__ == "__main__":
    main()
