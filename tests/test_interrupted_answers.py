"""Ctrl-C in an oracle keeps what streamed: printed marked interrupted, stored, no stray border.

The run is a real process on an 80×24 pseudo-terminal that is its controlling
terminal, so a Ctrl-C typed at it is what a shell's user sends: SIGINT to the
process group, and "^C" echoed by the terminal. What the terminal shows at the end
is rebuilt from everything written to it (tests/terminal.py's Screen).
"""

from __future__ import annotations

import json
import sqlite3
import sys

import pytest

from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import council_process, history_db_path, interrupt_after_event, invoke
from tests.terminal import Terminal

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")

PARTIAL = "Critic begins: alpha beta gamma"
STREAMED_CHUNKS = 5  # the fake's words and spaces: "Critic", " begins:", " alpha", ...


def script_half_an_answer(fake: FakeOpenAI) -> None:
    """The judge answers whole; the critic streams its first words, then hangs."""
    fake.script("judge", Reply(text="The judge's whole answer."))
    fake.script("critic", Reply(text=PARTIAL + " delta epsilon zeta", hang_after=STREAMED_CHUNKS))


def critic_streamed(fake: FakeOpenAI) -> bool:
    return any(r.persona == "critic" and r.tokens_sent >= STREAMED_CHUNKS for r in fake.requests)


def test_ctrl_c_prints_the_half_answer_marked_and_leaves_no_border(fake: FakeOpenAI) -> None:
    script_half_an_answer(fake)
    args = ["oracle", "--base-url", fake.base_url, "-p", "judge,critic", "Safe?"]
    env = {"COLUMNS": "80", "LINES": "24"}
    with Terminal(args, rows=24, cols=80, env=env, controlling=True) as term:
        fake.wait_for(critic_streamed, timeout=20)
        term.wait_for(lambda shown: "gamma" in shown)  # council has read what was sent
        term.type("\x03")  # Ctrl-C: SIGINT to the process group, "^C" echoed
        assert term.finish() == 130
        lines = term.screen()
    shown = "\n".join(lines)
    assert "critic · interrupted" in shown and PARTIAL in shown
    assert "The judge's whole answer." in shown
    # The live view is gone whole: none of its side-by-side borders or states is left.
    assert not [line for line in lines if line.count("╭─") > 1 or line.count("╰─") > 1]
    assert "streaming" not in shown and "waiting" not in shown
    assert "did not answer" not in shown  # the critic's panel says what happened
    assert all(len(line) <= 80 for line in lines)

    (row,) = _rows("SELECT status, text FROM calls WHERE persona = 'critic'")
    assert row["status"] == "cancelled" and row["text"].rstrip() == PARTIAL
    again = invoke("show")  # the last run, from the history: the half answer is there
    assert "## critic (interrupted)" in again.stdout and PARTIAL in again.stdout


def test_interrupted_json_keeps_the_streamed_text(fake: FakeOpenAI) -> None:
    script_half_an_answer(fake)
    process = council_process(
        "oracle", "--base-url", fake.base_url, "-p", "judge,critic", "--jsonl", "Safe?"
    )
    chunks: list[str] = []

    def seen(event: dict[str, object]) -> bool:
        if event.get("type") == "text_delta" and event.get("persona") == "critic":
            chunks.append(str(event.get("text")))
        return len(chunks) >= STREAMED_CHUNKS

    out, _ = interrupt_after_event(process, seen)
    assert process.returncode == 130
    finished = [json.loads(line) for line in out.splitlines() if line.strip()]
    cancelled = [e for e in finished if e.get("type") == "call_cancelled"]
    assert cancelled and cancelled[0]["persona"] == "critic"
    (row,) = _rows("SELECT status, text FROM calls WHERE persona = 'critic'")
    assert row["text"] == "".join(chunks) and row["text"].rstrip() == PARTIAL
    document = json.loads(invoke("show", "--json").stdout)
    (critic,) = [e for e in document["errors"] if e["persona"] == "critic"]
    assert (critic["error_kind"], critic["text"]) == ("cancelled", row["text"])


def _rows(sql: str) -> list[sqlite3.Row]:
    connection = sqlite3.connect(history_db_path())
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()
