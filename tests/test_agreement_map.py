"""Issue 26, point 1: the arbiter's agreement map.

`oracle -s`'s synthesis ends with the map between <agreement> tags (the answer's text
first, in the same call); a deliberation's verdict carries its fields in its JSON,
asked with the verdict's schema. Both reach `--json` as `answer.agreement`, the
Markdown in full and the terminal in one line under the answer.
"""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

from rich.console import Console

from council.app.run import run_deliberation, run_quietly
from council.config.personas import PersonaCatalog
from council.engine.agreement import split_synthesis
from council.engine.convergence import parse_verdict
from council.engine.events import CallStarted, TextDelta
from council.engine.plan import build_deliberation_plan
from council.render import OutputMode
from council.render.live import LiveView
from council.render.rich_report import oracle_renderable
from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import history_rows, invoke, oracle, oracle_json, resolved_endpoint
from tests.test_degraded import arbiter_prompt, fail_two, four_with_arbiter

MAP = {
    "consensus": ["Postgres fits the load"],
    "contradictions": [
        {
            "point": "whether to shard now",
            "sides": [
                {"members": ["judge"], "position": "shard now"},
                {"members": ["critic"], "position": "wait a year"},
            ],
            "assumption": "how fast the data grows",
        }
    ],
    "unique_insights": [{"point": "backups double the disk", "member": "critic"}],
    "blind_spots": ["the cost of migration"],
    "dissent": ["critic: sharding is premature"],
    "confidence": 0.7,
}
SIX = {"consensus", "contradictions", "unique_insights", "blind_spots", "dissent", "confidence"}


def synthesis_reply(data: Any = MAP, answer: str = "## Recommendation\nUse Postgres.") -> Reply:
    return Reply(text=f"{answer}\n\n<agreement>\n{json.dumps(data)}\n</agreement>\n")


def test_the_block_is_cut_from_the_answer_and_read() -> None:
    text, found = split_synthesis(synthesis_reply().text)
    assert text == "## Recommendation\nUse Postgres."
    assert found is not None and found.to_dict() | {"missing": []} == {**MAP, "missing": []}


def test_a_map_is_read_tolerantly() -> None:
    odd = {
        "consensus": "one point alone",
        "contradictions": [{"point": "p", "sides": "not a list"}, 7, {"sides": []}],
        "unique_insights": [{"point": "seen", "member": 3}, {"member": "x"}],
        "blind_spots": {"not": "a list"},
        "confidence": "85%",
    }
    text, found = split_synthesis(f"Answer.\n<agreement>```json\n{json.dumps(odd)}\n```")
    assert text == "Answer." and found is not None  # no closing tag: cut at max_tokens
    assert found.consensus == ("one point alone",)
    assert [c.point for c in found.contradictions] == ["p"] and found.contradictions[0].sides == ()
    assert [(i.point, i.member) for i in found.unique_insights] == [("seen", "3")]
    assert found.blind_spots == () and found.dissent == () and found.confidence == 0.85
    assert split_synthesis("Answer.\n<agreement>not json</agreement>") == ("Answer.", None)
    assert split_synthesis("No map here.") == ("No map here.", None)


def test_a_verdict_carries_the_map_and_an_old_verdict_none() -> None:
    verdict = parse_verdict(json.dumps({"converged": True, "synthesis": "S.", **MAP}))
    assert verdict.agreement is not None and verdict.agreement.blind_spots == (
        "the cost of migration",
    )
    old = parse_verdict('{"converged": true, "confidence": 0.9, "synthesis": "S."}')
    assert old.agreement is None and old.to_dict()["agreement"] is None


def test_oracle_s_json_markdown_and_terminal(fake: FakeOpenAI) -> None:
    fake.script("arbiter", synthesis_reply())
    code, doc = oracle_json(fake, "-p", "judge,critic", "--synthesize", "q")
    assert code == 0 and "<agreement>" in arbiter_prompt(fake)
    assert doc["answer"]["text"] == "## Recommendation\nUse Postgres."
    agreement = doc["answer"]["agreement"]
    assert set(agreement) >= SIX and {k: agreement[k] for k in SIX} == MAP
    fake.script("arbiter", synthesis_reply())
    markdown = oracle(fake, "-p", "judge,critic", "--synthesize", "q").stdout
    assert "## Agreement map" in markdown and "<agreement>" not in markdown
    assert "- whether to shard now\n  judge: shard now\n  critic: wait a year" in markdown
    assert "  differ on: how fast the data grows" in markdown
    assert "- backups double the disk (critic)" in markdown


def test_the_terminal_shows_one_line_and_verbose_everything(fake: FakeOpenAI) -> None:
    for verbose in (False, True):
        fail_two(fake)
        hostile = {**MAP, "blind_spots": ["cost\x1b]52;c;aGk=\x07 of it"]}
        fake.script("arbiter", synthesis_reply(hostile))
        result = asyncio.run(run_quietly(four_with_arbiter(fake)))
        console = Console(file=io.StringIO(), width=200, force_terminal=False)
        console.print(oracle_renderable(result, verbose=verbose))
        shown = console.file.getvalue()
        line = (
            "agreement: 1 shared point · 1 contradiction · 1 unique insight · 1 blind spot · "
            "1 dissent · confidence 0.70 · without the views of critic (429), skeptic (bad request)"
        )
        assert line in shown and "\x1b]52" not in shown
        assert ("Blind spots:\n- cost of it" in shown) is verbose
        assert result.agreement_map is not None
        assert [m for m, _ in result.agreement_map.missing] == ["critic", "skeptic"]


def test_a_synthesis_without_a_map_has_none(fake: FakeOpenAI) -> None:
    fake.script("arbiter", Reply(text="## Recommendation\nDo not rewrite."))
    code, doc = oracle_json(fake, "-p", "judge,critic", "--synthesize", "q")
    assert code == 0 and doc["answer"]["agreement"] is None
    assert doc["answer"]["text"] == "## Recommendation\nDo not rewrite."


def test_a_deliberation_verdict_asks_and_gives_the_map(fake: FakeOpenAI) -> None:
    verdict = {"converged": True, "confidence": 0.9, "synthesis": "Postgres.", **MAP}
    fake.script("arbiter", Reply(text=json.dumps(verdict)), round=1)
    result = invoke("deliberate", "--base-url", fake.base_url, "--rounds", "1", "--json", "q")
    doc = json.loads(result.stdout)
    agreement = doc["answer"]["agreement"]
    assert {k: agreement[k] for k in SIX} == {**MAP, "confidence": 0.7}
    assert doc["rounds"][0]["verdict"]["agreement"]["consensus"] == MAP["consensus"]
    request = fake.requests_for("arbiter")[-1]
    assert request.body is not None
    schema = request.body["response_format"]["json_schema"]["schema"]
    assert {"consensus", "contradictions", "unique_insights", "blind_spots"} <= set(
        schema["required"]
    )
    fake.script("arbiter", Reply(text=json.dumps(verdict)), round=1)
    markdown = invoke("deliberate", "--base-url", fake.base_url, "--rounds", "1", "q").stdout
    assert "## Agreement map" in markdown and "- the cost of migration" in markdown


def test_the_live_view_streams_the_answer_and_not_its_map() -> None:
    console = Console(file=io.StringIO(), width=100, height=30)
    view = LiveView(console, ["judge"])
    ids = {"run_id": "r", "call_id": "synthesis", "persona": "arbiter", "role": "arbiter"}
    view.handle(CallStarted(**ids, model="m"))
    for part in ("Use Post", "gres.\n<agr", "eement>\n", '{"consensus": ["secret-map"]}'):
        view.handle(TextDelta(**ids, text=part))
    console.print(view.render())
    rendered = console.file.getvalue()
    assert "Use Postgres." in rendered and "secret-map" not in rendered


def test_the_history_carries_the_map_whole(fake: FakeOpenAI) -> None:
    fake.script("arbiter", synthesis_reply())
    assert oracle(fake, "-p", "judge,critic", "--synthesize", "q").exit_code == 0
    [run] = history_rows("SELECT id FROM runs")
    doc = json.loads(invoke("show", run["id"], "--json").stdout)
    assert {k: doc["answer"]["agreement"][k] for k in SIX} == MAP
    shown = invoke("show", run["id"]).stdout
    assert "## Agreement map" in shown and "differ on: how fast the data grows" in shown


def test_a_deliberation_shows_the_map_under_its_answer(fake: FakeOpenAI) -> None:
    verdict = {"converged": True, "confidence": 0.9, "synthesis": "Postgres.", **MAP}
    shown = []
    for verbose in (False, True):
        fake.script("arbiter", Reply(text=json.dumps(verdict)), round=1)
        plan = build_deliberation_plan(
            query="q",
            personas=PersonaCatalog.discover().resolve(["judge", "critic"]),
            arbiter=PersonaCatalog.discover().get("arbiter"),
            endpoint=resolved_endpoint(fake.base_url),
            rounds=1,
        )
        out = io.StringIO()
        assert run_deliberation(plan, OutputMode.RICH, stdout=out, verbose=verbose) == 0
        shown.append(out.getvalue())
    quiet, verbose_screen = shown
    assert "agreement: 1 shared point · 1 contradiction" in quiet
    assert quiet.rindex("agreement:") > quiet.rindex("Postgres.")  # under the answer
    assert "Blind spots:" not in quiet and "Blind spots:" in verbose_screen
