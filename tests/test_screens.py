"""What a person sees in a terminal: council run in a pseudo-terminal of 100×40.

The deliberate screen ends with the answer (timeline and final-round answers only
with --verbose), and the oracle's live view keeps finished answers on screen while
the arbiter synthesizes, counting personas as the footer does.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from typing import Self

import pytest

from tests.fake_openai import FakeOpenAI, Reply

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")

# CSI and OSC sequences, and the other lone escapes rich writes to a terminal.
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


def plain(raw: str) -> str:
    return ANSI.sub("", raw).replace("\r", "")


class Terminal:
    """`council ARGS` with stdin, stdout and stderr on one pseudo-terminal of rows×cols.

    Usage:
        with Terminal(["deliberate", "q"], rows=40, cols=100) as term:
            term.wait_for(lambda screen: "answer" in screen)
            code = term.finish()
    """

    def __init__(self, args: list[str], *, rows: int, cols: int) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        env["TERM"] = "xterm-256color"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "council.cli", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.master = master
        self._chunks: list[bytes] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every writer of the terminal has gone
                data = b""
            with self._changed:
                if data:
                    self._chunks.append(data)
                else:
                    self._chunks.append(b"")  # the end, as a marker
                self._changed.notify_all()
            if not data:
                return

    @property
    def raw(self) -> str:
        with self._changed:
            return b"".join(self._chunks).decode("utf-8", "replace")

    def wait_for(self, ready: Callable[[str], bool], timeout: float = 20.0) -> str:
        """What the terminal has shown (ANSI stripped), once `ready` says it is enough."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                seen = plain(b"".join(self._chunks).decode("utf-8", "replace"))
                if ready(seen):
                    return seen
                left = deadline - time.monotonic()
                if left <= 0 or (self._chunks and self._chunks[-1] == b""):
                    raise AssertionError(f"the terminal never showed it; it showed:\n{seen}")
                self._changed.wait(left)

    def finish(self) -> int:
        code = self.process.wait(timeout=30)
        self._reader.join(timeout=10)
        return code

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=10)
        os.close(self.master)


def _verdict(converged: bool, confidence: float, synthesis: str, dissent: list[str]) -> Reply:
    return Reply(
        text=json.dumps(
            {
                "converged": converged,
                "confidence": confidence,
                "synthesis": synthesis,
                "dissent": dissent,
            }
        )
    )


def _script_deliberation(fake: FakeOpenAI) -> None:
    for persona in ("judge", "critic"):
        answer = f"{persona.title()} thinks:\n\n- first point\n- second point\n\nDone."
        fake.script(persona, Reply(text=answer), Reply(text=answer + " Revised."))
    fake.script("arbiter", _verdict(False, 0.4, "Not yet.", []), round=1)
    fake.script(
        "arbiter",
        _verdict(True, 0.9, "Ship it on Monday.\n\nWith a rollback plan.", ["critic: risky"]),
        round=2,
    )


@pytest.mark.parametrize("verbose", [False, True])
def test_deliberate_screen_ends_with_the_answer(fake: FakeOpenAI, verbose: bool) -> None:
    _script_deliberation(fake)
    args = ["deliberate", "--base-url", fake.base_url, "-p", "judge,critic", "--no-history"]
    args += ["--verbose"] if verbose else []
    with Terminal([*args, "Ship on Friday?"], rows=40, cols=100) as term:
        code = term.finish()
        everything = plain(term.raw)
    assert code == 0, everything
    # What stays on screen: what was printed after the live view's last frame (its
    # caption ends it) was cleared.
    screen = everything[everything.rindex("of at most 3") :]
    answer_at = screen.rindex("Ship it on Monday.")
    tail = screen[answer_at:]
    # The answer's panel holds its confidence and dissent, and nothing comes after it.
    assert "Converged in round 2 of 3 (confidence 0.90)" in tail
    assert "critic: risky" in tail
    assert tail.rstrip().endswith("╯"), tail
    assert screen.rindex("2 rounds kept") < answer_at
    assert screen.rindex("rounds") < answer_at
    if verbose:
        assert "timeline" in screen and "round 2 · judge" in screen
        assert screen.rindex("timeline") < answer_at
    else:
        assert "timeline" not in screen
        assert "round 2 · judge" not in screen and "Judge thinks" not in screen


def test_live_view_keeps_finished_answers_while_the_arbiter_synthesizes(fake: FakeOpenAI) -> None:
    personas = ["judge", "critic", "skeptic", "historian", "optimist"]
    for persona in personas:
        fake.script(persona, Reply(text=f"{persona} answer in full"))
    fake.script("arbiter", Reply(text="The synthesis.", gate="synthesis"))
    args = ["oracle", "--base-url", fake.base_url, "-p", ",".join(personas), "--synthesize"]
    with Terminal([*args, "--no-history", "Ship it?"], rows=40, cols=100) as term:
        fake.wait_for(lambda f: any(r.persona == "arbiter" for r in f.requests))
        during = term.wait_for(lambda seen: "synthesis thinking" in seen)
        frame = during[during.rindex("persona ") :]  # the last frame drawn
        fake.release("synthesis")
        code = term.finish()
        screen = plain(term.raw)
    assert code == 0, screen
    assert "5 of 5 personas answered · synthesis thinking" in frame
    for persona in personas:
        assert f"{persona} answer in full" in frame  # still on screen, not dropped
    assert "of 6" not in screen
    # The footer counts the same way, and the synthesis comes last.
    assert "5 of 5 personas answered" in screen[screen.rindex("wall") - 200 :]
    assert screen.rstrip().endswith("╯") and screen.rindex("The synthesis.") > screen.rindex("wall")


@pytest.mark.parametrize("verbose", [False, True])
def test_oracle_screen_ends_with_the_synthesis(fake: FakeOpenAI, verbose: bool) -> None:
    fake.script("judge", Reply(text="Judge: yes."))
    fake.script("critic", Reply(text="Critic: no."))
    fake.script("arbiter", Reply(text="Synthesis: yes, carefully."))
    args = ["oracle", "--base-url", fake.base_url, "-p", "judge,critic", "-s", "--no-history"]
    args += ["-v"] if verbose else []
    with Terminal([*args, "Ship it?"], rows=40, cols=100) as term:
        code = term.finish()
        everything = plain(term.raw)
    assert code == 0, everything
    screen = everything[everything.rindex("Judge: yes.") :]  # the final output
    answer_at = screen.rindex("Synthesis: yes, carefully.")
    assert screen.rindex("2 of 2 personas answered") < answer_at
    assert screen[answer_at:].rstrip().endswith("╯")
    if verbose:
        assert "calls" in screen and "arbiter (synthesis)" in screen
        assert screen.rindex("arbiter (synthesis)") < answer_at
    else:
        assert "arbiter (synthesis)" not in screen
