"""What a deliberation looks like: the live rows, and the final output in a terminal."""

from __future__ import annotations

import io
import json

from rich.console import Console

from council.app.run import run_deliberation
from council.config.personas import PersonaCatalog
from council.engine.events import (
    ArbiterVerdict,
    CallCancelled,
    CallFinished,
    CallStarted,
    RoundDiscarded,
    TextDelta,
)
from council.engine.model import CallOutcome
from council.engine.plan import build_deliberation_plan
from council.errors import ErrorKind
from council.render import OutputMode
from council.render.live import RoundsLiveView
from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import resolved_endpoint


def rendered(view: RoundsLiveView) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=120, color_system=None).print(view.render())
    return buffer.getvalue()


def call_ids(round_number: int, persona: str, role: str = "persona") -> dict[str, object]:
    call_id = f"r{round_number}-{persona if role == 'persona' else 'verdict'}"
    return {"run_id": "run", "call_id": call_id, "persona": persona, "round": round_number}


def test_live_rows_mark_speculation_until_the_verdict_keeps_or_cancels_it() -> None:
    view = RoundsLiveView(Console(file=io.StringIO(), width=120), rounds=3)
    round_1 = call_ids(1, "judge")
    view.handle(CallStarted(**round_1, model="m"))
    view.handle(TextDelta(**round_1, text="Ship it "))
    view.handle(
        CallFinished(
            **round_1,
            outcome=CallOutcome(
                persona="judge",
                text="Ship it",
                tokens_in=1,
                tokens_out=2,
                latency=0.5,
                ttft=0.1,
                retries=0,
            ),
        )
    )
    verdict_1 = call_ids(1, "arbiter", role="arbiter")
    view.handle(CallStarted(**verdict_1, role="arbiter", model="m"))
    round_2 = call_ids(2, "judge")
    view.handle(CallStarted(**round_2, model="m", speculative=True))
    view.handle(TextDelta(**round_2, text="Still ship"))

    during = rendered(view)
    assert "verdict · arbiter" in during
    assert "speculative" in during and "Still ship" in during
    assert "round 2 of at most 3" in during

    view.handle(
        ArbiterVerdict(
            run_id="run",
            round=1,
            converged=False,
            confidence=0.4,
            synthesis="s",
            dissent=(),
            ends_council=False,
        )
    )
    after_verdict = rendered(view)
    assert "not converged, confidence 0.40" in after_verdict
    assert "speculative" not in after_verdict  # round 2 is kept now

    round_3 = call_ids(3, "judge")
    view.handle(CallStarted(**round_3, model="m", speculative=True))
    view.handle(
        CallCancelled(
            **round_3,
            outcome=CallOutcome(
                persona="judge", error_kind=ErrorKind.CANCELLED, tokens_out=3, latency=0.2
            ),
            reason="superseded",
        )
    )
    view.handle(RoundDiscarded(run_id="run", round=3, wasted_tokens=3))
    final = rendered(view)
    assert "cancelled" in final and "speculation discarded" in final


def test_terminal_output_ends_with_the_answer_and_verbose_adds_answers_and_timeline(
    fake: FakeOpenAI,
) -> None:
    for _ in range(2):  # the same council twice: without --verbose, then with it
        fake.script(
            "arbiter",
            Reply(
                text=json.dumps(
                    {"converged": False, "confidence": 0.3, "synthesis": "Not yet.", "dissent": []}
                )
            ),
            round=1,
        )
        fake.script(
            "arbiter",
            Reply(
                text=json.dumps(
                    {
                        "converged": True,
                        "confidence": 0.9,
                        "synthesis": "Ship it on Monday.",
                        "dissent": ["skeptic: no rollback plan"],
                    }
                )
            ),
            round=2,
        )
    catalog = PersonaCatalog.discover()
    plan = build_deliberation_plan(
        query="Ship on Friday?",
        personas=catalog.resolve(["judge", "critic"]),
        arbiter=catalog.get("arbiter"),
        endpoint=resolved_endpoint(fake.base_url),
        speculative=True,
    )
    screens = []
    for verbose in (False, True):
        out = io.StringIO()
        code = run_deliberation(plan, OutputMode.RICH, stdout=out, show_live=True, verbose=verbose)
        assert code == 0
        screens.append(out.getvalue())
    short, full = screens
    for text in screens:
        assert "Ship it on Monday." in text and "Converged in round 2 of 3" in text
        assert "2 rounds kept" in text
        # The answer's panel, with its confidence and dissent, is the last thing printed.
        tail = text[text.index("Ship it on Monday.") :]
        assert "skeptic: no rollback plan" in tail and "2 rounds kept" not in tail
        assert tail.rstrip().endswith("╯")
    assert "round 2 · judge" not in short and "timeline" not in short
    assert "round 2 · judge" in full and "round 2 · critic" in full
    assert "timeline" in full and "speculative" in full
    assert full.index("timeline") < full.index("Ship it on Monday.")
