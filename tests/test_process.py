"""council as a real process: Ctrl-C, and the installed entry point."""

from __future__ import annotations

import json
import signal

from tests.fake_openai import Reply
from tests.helpers import council_process, interrupt_when


def test_ctrl_c_exits_130_and_prints_finished_answers(fake):
    fake.script("judge", Reply(text="The judge has ruled."))
    # The critic is rate limited once, then hangs: its second request arrives well
    # after the judge's answer has been read, and never finishes.
    fake.script("critic", Reply(status=429, retry_after=0.3), Reply(hang=True))
    proc = council_process("oracle", "--base-url", fake.base_url, "-p", "judge,critic", "Ship?")
    out, err = interrupt_when(proc, fake, lambda f: len(f.requests_for("critic")) == 2)
    assert proc.returncode == 130, err
    assert "The judge has ruled." in out
    assert "critic" in out and "cancelled" in out
    assert "interrupted" in err
    assert "Traceback" not in err
    # The in-flight call was cancelled: its connection was closed.
    fake.wait_for(lambda f: any(r.persona == "critic" for r in f.disconnects))


def test_ctrl_c_in_jsonl_mode_ends_the_stream_with_the_status(fake):
    fake.script("judge", Reply(text="Done."))
    fake.script("critic", Reply(hang=True))
    proc = council_process(
        "oracle", "--base-url", fake.base_url, "-p", "judge,critic", "--jsonl", "Q"
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if json.loads(line)["type"] == "call_finished":
                break
        # Both go out at once; the critic's request may reach the server after the judge's answer.
        fake.wait_for(lambda f: len(f.requests_for("critic")) == 1)
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    events = [json.loads(line) for line in rest.splitlines()]
    kinds = [e["type"] for e in events]
    assert "call_cancelled" in kinds
    assert events[-1]["type"] == "run_finished" and events[-1]["exit_code"] == 130
