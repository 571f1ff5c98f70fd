"""What a person sees in a terminal: council run in a pseudo-terminal of 100×40.

The deliberate screen ends with the answer (timeline and final-round answers only
with --verbose), and the oracle's live view keeps finished answers on screen while
the arbiter synthesizes, counting personas as the footer does.
"""

from __future__ import annotations

import json
import sys

import pytest

from tests.fake_openai import FakeOpenAI, Reply
from tests.terminal import Terminal, plain

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")


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
