"""Issue 27 points 7 and 10: batch lines carry their question; batch-API runs you can see."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from council.app.batch.api import run_via_batch_api
from council.app.batch.items import BatchItem
from council.app.batch.output import OutputFile
from council.config.personas import Persona
from council.engine.plan import build_oracle_plan
from tests.fake_openai import FakeOpenAI
from tests.helpers import invoke, resolved_endpoint


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


ROWS = [{"id": f"t{n}", "query": f"question t{n}", "team": n} for n in (1, 2, 3)]


# -- point 10: every --out line carries its question -------------------------------------------


def test_every_line_carries_its_question_unless_no_query(fake: FakeOpenAI, tmp_path: Path) -> None:
    items = _write(tmp_path / "items.jsonl", ROWS)
    out = tmp_path / "out.jsonl"
    result = invoke(
        "batch", str(items), "--base-url", fake.base_url, "-p", "judge", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    lines = {line["id"]: line for line in _lines(out)}
    assert {i: line["query"] for i, line in lines.items()} == {
        "t1": "question t1",
        "t2": "question t2",
        "t3": "question t3",
    }
    assert list(lines["t1"])[:3] == ["id", "query", "team"]  # read first, before the answers
    bare = tmp_path / "bare.jsonl"
    args = ("--base-url", fake.base_url, "-p", "judge", "--no-query", "--out", str(bare))
    assert invoke("batch", str(items), *args).exit_code == 0
    assert all("query" not in line and line["team"] for line in _lines(bare))


def test_a_templated_line_carries_the_question_as_asked(fake: FakeOpenAI, tmp_path: Path) -> None:
    items = tmp_path / "tickets.csv"
    items.write_text("id,body\nA,printer on fire\n")
    out = tmp_path / "out.jsonl"
    result = invoke(
        "batch",
        str(items),
        "--base-url",
        fake.base_url,
        "-p",
        "judge",
        "--template",
        "Review this ticket: {body}",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    (line,) = _lines(out)
    assert (line["query"], line["body"]) == (
        "Review this ticket: printer on fire",
        "printer on fire",
    )
    asked = fake.requests[-1].body
    assert asked is not None and line["query"] in asked["messages"][-1]["content"]


def _batch_api(fake: FakeOpenAI, out: Path, **options: Any) -> Any:
    plan = build_oracle_plan(
        query="",
        personas=[Persona(name="judge", description="", system="You judge.")],
        endpoint=resolved_endpoint(fake.base_url),
    )
    items = [BatchItem(r["id"], r["query"], {"team": r["team"]}, n) for n, r in enumerate(ROWS, 1)]
    with OutputFile(out) as writer:
        return asyncio.run(
            run_via_batch_api(
                items,
                plan,
                resolved_endpoint(fake.base_url),
                writer,
                poll_interval=0.01,
                progress=lambda line: None,
                identity=str(out),
                **options,
            )
        )


def test_batch_api_lines_carry_their_question_too(fake: FakeOpenAI, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    assert _batch_api(fake, out).items_ok == 3
    assert sorted(line["query"] for line in _lines(out)) == [r["query"] for r in ROWS]
    bare = tmp_path / "bare.jsonl"
    assert _batch_api(fake, bare, with_query=False).items_ok == 3
    assert all("query" not in line for line in _lines(bare))
