"""`council stats` and `council history` on a history holding values it should not."""

from __future__ import annotations

import json
import sqlite3

from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import history_db_path as db_path
from tests.helpers import invoke


def verdict(converged: bool) -> Reply:
    data = {"converged": converged, "confidence": 0.9, "synthesis": "S.", "dissent": []}
    return Reply(text=json.dumps(data))


def test_stats_treat_bad_values_as_unknown(fake: FakeOpenAI) -> None:
    for _ in range(2):
        assert invoke("oracle", "--base-url", fake.base_url, "-p", "judge", "q").exit_code == 0
    fake.script("arbiter", verdict(True))
    assert invoke("deliberate", "--base-url", fake.base_url, "-p", "judge", "d").exit_code == 0
    connection = sqlite3.connect(db_path())
    connection.execute(
        "UPDATE calls SET tokens_in = 'lots', tokens_out = -5, latency = 'slow', ttft = 'soon', "
        "retries = 'two', rate_limited = -1 WHERE rowid = (SELECT MIN(rowid) FROM calls)"
    )
    connection.execute(
        "UPDATE runs SET rounds = 'many', saved = 'lots', wasted_tokens = -3, wall = 'long' "
        "WHERE command = 'deliberate'"
    )
    connection.commit()
    connection.close()
    result = invoke("stats", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    judge = next(g for g in report["groups"] if g["name"] == "judge")
    assert judge["tokens_unknown"] == 1 and judge["calls"] == 3
    assert report["deliberations"]["wasted_tokens"] == 0
    text = invoke("stats")
    assert text.exit_code == 0 and "judge" in text.stdout
    listing = invoke("history")
    assert listing.exit_code == 0, listing.output
    assert "–" in listing.stdout  # the wall time that is not a number
