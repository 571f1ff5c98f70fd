"""Issue 23, point 8: verdicts and ballots asked with a JSON schema, stepping down as far
as the server takes, and what a server refused remembered for the rest of the run.

The fake refuses as real servers do: llama-cpp-python's server (the embedded model) with
pydantic's 422 "Input should be 'text' or 'json_object'", an OpenAI-shaped server with a
400 naming `response_format.type`, and a server that takes no response_format at all.
"""

from __future__ import annotations

import json
from typing import Any

from council.endpoint.formats import FormatLadder
from council.engine.prompts import VERDICT_RESPONSE_FORMAT, ballot_response_format
from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import invoke, oracle_json


def deliberate_json(fake: FakeOpenAI, *args: str) -> tuple[int, dict[str, Any]]:
    result = invoke("deliberate", "--base-url", fake.base_url, "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def formats_asked(fake: FakeOpenAI, persona: str) -> list[tuple[int | None, Any]]:
    return [(r.status, (r.body or {}).get("response_format")) for r in fake.requests_for(persona)]


SCHEMA = VERDICT_RESPONSE_FORMAT["json_schema"]["schema"]


def test_a_verdict_is_asked_with_its_json_schema(fake: FakeOpenAI) -> None:
    code, doc = deliberate_json(fake, "--rounds", "2", "q")
    assert code == 0 and doc["answer"]["converged"] is True
    asked = formats_asked(fake, "arbiter")
    assert [status for status, _ in asked] == [200, 200]
    for _, response_format in asked:
        assert response_format["type"] == "json_schema"
        schema = response_format["json_schema"]["schema"]
        verdict = {"converged", "confidence", "synthesis", "dissent"}
        agreement = {"consensus", "contradictions", "unique_insights", "blind_spots"}  # issue 26
        assert set(schema["required"]) == verdict | agreement


def test_llama_cpp_python_refusing_json_schema_gets_json_object_with_the_schema(
    fake: FakeOpenAI,
) -> None:
    fake.response_format_types = ("text", "json_object")  # as llama-cpp-python's server
    code, doc = deliberate_json(fake, "--rounds", "2", "q")
    assert code == 0 and doc["answer"]["converged"] is True
    asked = formats_asked(fake, "arbiter")
    assert [status for status, _ in asked] == [422, 200, 200]  # refused once, then remembered
    assert asked[0][1]["type"] == "json_schema"
    assert asked[1][1] == asked[2][1] == {"type": "json_object", "schema": SCHEMA}


def test_an_older_llama_server_refusing_json_schema_with_a_500_is_asked_lower(
    fake: FakeOpenAI,
) -> None:
    fake.response_format_types = ("text", "json_object")
    fake.response_format_refusal = "llama-server"  # 500, its message the only clue
    code, doc = deliberate_json(fake, "--rounds", "2", "q")
    assert code == 0 and doc["answer"]["converged"] is True
    asked = formats_asked(fake, "arbiter")
    assert [status for status, _ in asked] == [500, 200, 200]  # not retried as a 500
    assert asked[1][1] == {"type": "json_object", "schema": SCHEMA}


def test_a_message_quoting_json_schema_drops_nothing(fake: FakeOpenAI) -> None:
    # A context error that happens to mention response_format is no refusal of a form.
    text = "context too long; response_format json_schema was fine"
    fake.script("arbiter", Reply(status=400, error_message=text), round=1)
    deliberate_json(fake, "--rounds", "2", "q")
    asked = formats_asked(fake, "arbiter")
    assert asked[0][0] == 400
    assert all(f["type"] == "json_schema" for _, f in asked)


def test_a_server_taking_no_schema_gets_plain_json_object(fake: FakeOpenAI) -> None:
    fake.response_format_types = ("text", "json_object")
    fake.response_format_refusal = "openai"
    fake.reject_object_schema = True
    code, _ = deliberate_json(fake, "--rounds", "2", "q")
    assert code == 0
    asked = formats_asked(fake, "arbiter")
    assert [status for status, _ in asked] == [400, 400, 200, 200]
    assert [f["type"] for _, f in asked][:2] == ["json_schema", "json_object"]
    assert "schema" in asked[1][1] and asked[2][1] == asked[3][1] == {"type": "json_object"}


def test_a_server_taking_no_response_format_gets_the_prose_reader(fake: FakeOpenAI) -> None:
    fake.reject_response_format = True
    verdict = {"converged": True, "confidence": 0.9, "synthesis": "Agreed.", "dissent": []}
    fake.script("arbiter", Reply(text="Here it is:\n" + json.dumps(verdict)), round=1)
    code, doc = deliberate_json(fake, "--rounds", "2", "q")
    assert code == 0 and doc["answer"]["text"] == "Agreed."
    asked = formats_asked(fake, "arbiter")
    # "Unknown parameter: 'response_format'": no form of it will do, dropped at once.
    assert [status for status, _ in asked] == [400, 200]  # converged in round 1
    assert asked[1][1] is None


def test_ballots_are_asked_with_their_choices_as_an_enum(fake: FakeOpenAI) -> None:
    for name, choice in (("judge", "A"), ("critic", "B"), ("skeptic", "A")):
        fake.script(
            name, Reply(text=json.dumps({"choice": choice, "confidence": 1, "reason": "."}))
        )
    code, doc = oracle_json(fake, "--vote", "--choices", "A,B", "-p", "judge,critic,skeptic", "q")
    assert code == 0 and doc["answer"]["text"] == "A"
    for request in fake.requests:
        assert request.body is not None
        schema = request.body["response_format"]["json_schema"]["schema"]
        assert schema["properties"]["choice"] == {"type": "string", "enum": ["A", "B"]}


def test_the_steps_go_down_only_from_what_was_refused() -> None:
    ladder = FormatLadder()
    verdict = VERDICT_RESPONSE_FORMAT
    assert ladder.effective(verdict) == verdict
    assert ladder.refused(verdict)
    assert ladder.refused(verdict)  # a second call refused the same: still one step down
    assert ladder.effective(verdict) == {"type": "json_object", "schema": SCHEMA}
    assert ladder.effective(ballot_response_format())["schema"]["required"] == [
        "choice",
        "confidence",
        "reason",
    ]
    assert ladder.effective({"type": "json_object"}) == {"type": "json_object"}
    assert ladder.refused({"type": "json_object", "schema": SCHEMA})
    assert ladder.effective(verdict) == {"type": "json_object"}
    assert not ladder.refused({"type": "json_object"})  # nothing left: the field is dropped
    assert ladder.effective(verdict) is None


def test_a_ranking_is_asked_with_its_labels_as_an_enum_and_read_from_json(
    fake: FakeOpenAI,
) -> None:
    names = ("judge", "critic", "skeptic")
    for name in names:
        fake.script(name, Reply(text=f"{name} answer"), round=1)
        ranking = {"review": "B is thin.", "ranking": ["Response A", "Response B"]}
        fake.script(name, Reply(text=json.dumps(ranking)), round=2)
    code, doc = oracle_json(fake, "--rank", "-o", "seed", "5", "-p", ",".join(names), "q")
    assert code == 0
    for reviewer in names:
        request = next(r for r in fake.requests_for(reviewer) if r.round == "2")
        assert request.body is not None
        schema = request.body["response_format"]["json_schema"]["schema"]
        assert schema["properties"]["ranking"]["items"]["enum"] == ["Response A", "Response B"]
        # Read from the JSON: each reviewer's first shown answer ranked first.
        assert doc["ranking"]["per_reviewer"][reviewer] == doc["ranking"]["shown"][reviewer]
