"""What calls and runs cost: prices from the profile, the endpoint's usage.cost and genai-prices.

Against the fake server, which counts a token as four characters of the prompt and a
word of the answer, and reports `usage.cost` as OpenRouter does when asked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from council.config.endpoint_settings import build_endpoint
from council.config.prices import PROVIDER_HOSTS, provider_for
from council.engine.cost import Spent, price_of
from council.store.db import HistoryDB
from council.store.migrations import MIGRATIONS
from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import history_rows, invoke
from tests.test_deliberate import persona_requests, verdict

# USD per million tokens: large, so that a few tokens cost a visible amount.
IN, OUT = 1000.0, 2000.0


def priced_profile(fake: FakeOpenAI, price: str = f"{{input: {IN:g}, output: {OUT:g}}}") -> Path:
    """The user's config with a profile `fake` for the fake server, with `price`."""
    path = Path(os.environ["COUNCIL_HOME"]) / "config.yaml"
    path.write_text(
        f"endpoints:\n  - name: fake\n    base_url: {fake.base_url}\n    price: {price}\n"
    )
    return path


def run_json(*args: str) -> tuple[int, dict[str, Any]]:
    result = invoke(*args, "--json")
    return result.exit_code, json.loads(result.stdout)


def expected(answer: dict[str, Any], per_in: float = IN, per_out: float = OUT) -> float:
    return (answer["tokens_in"] * per_in + answer["tokens_out"] * per_out) / 1e6


# -- the sources, in order ------------------------------------------------------------------


def test_a_profile_price_costs_every_call_and_the_run(fake: FakeOpenAI) -> None:
    priced_profile(fake)
    code, doc = run_json("oracle", "--endpoint", "fake", "-p", "judge,critic", "q")
    assert code == 0
    for answer in doc["answers"]:
        assert answer["cost_usd"] == pytest.approx(expected(answer))
        assert answer["cost_estimated"] is False
    assert doc["cost_usd"] == pytest.approx(sum(expected(a) for a in doc["answers"]))


def test_a_per_model_price_applies_to_its_model_only(fake: FakeOpenAI) -> None:
    priced_profile(fake, "{fake-model: {input: 3, output: 4}}")
    code, doc = run_json("oracle", "--endpoint", "fake", "-m", "fake-model", "-p", "judge", "q")
    assert code == 0 and doc["answers"][0]["cost_usd"] == pytest.approx(
        expected(doc["answers"][0], 3, 4)
    )
    code, doc = run_json("oracle", "--endpoint", "fake", "-m", "other", "-p", "judge", "q")
    assert code == 0 and doc["answers"][0]["cost_usd"] is None and doc["cost_usd"] is None


def test_the_endpoints_usage_cost_is_used_without_a_profile_price(fake: FakeOpenAI) -> None:
    fake.report_cost = (5.0, 7.0)
    code, doc = run_json("oracle", "--base-url", fake.base_url, "-p", "judge", "q")
    assert code == 0
    (answer,) = doc["answers"]
    assert answer["cost_usd"] == pytest.approx(expected(answer, 5, 7))


def test_a_profile_price_beats_the_endpoints_report(fake: FakeOpenAI) -> None:
    priced_profile(fake)
    fake.report_cost = (5.0, 7.0)
    code, doc = run_json("oracle", "--endpoint", "fake", "-p", "judge", "q")
    assert code == 0 and doc["answers"][0]["cost_usd"] == pytest.approx(expected(doc["answers"][0]))


@pytest.mark.parametrize("cost", [-1, "0.5", None, float("inf"), True], ids=repr)
def test_a_usage_cost_that_is_not_a_price_is_ignored(fake: FakeOpenAI, cost: Any) -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 3, "cost": cost}
    fake.default = Reply(usage_body=json.loads(json.dumps(usage).replace("Infinity", "1e999")))
    code, doc = run_json("oracle", "--base-url", fake.base_url, "-p", "judge", "q")
    assert code == 0 and doc["answers"][0]["tokens_in"] == 10
    assert doc["answers"][0]["cost_usd"] is None and doc["cost_usd"] is None


def test_genai_prices_knows_openais_models_offline() -> None:
    openai = build_endpoint(
        base_url="https://api.openai.com/v1",
        model="gpt-4o-mini",
        api_key_env=None,
        timeout=None,
        retries=None,
        max_concurrency=None,
        sources={},
    )
    price = price_of(openai, "gpt-4o-mini")
    assert price is not None and price.source == "genai-prices (openai)"
    assert (price.input, price.output) == (0.15, 0.6)
    assert price_of(openai, "no-such-model-anywhere") is None
    assert provider_for("https://eu.api.openai.com/v1") == "openai"
    assert provider_for("https://openrouter.ai/api/v1") == "openrouter"
    assert provider_for("http://127.0.0.1:8080/v1") is None
    # Its bundled data, never an update from the network.
    from genai_prices import data_snapshot

    assert data_snapshot.get_snapshot().from_auto_update is False


def test_genai_prices_cost_a_call_to_a_host_that_maps_to_openai(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PROVIDER_HOSTS, "127.0.0.1", "openai")
    code, doc = run_json(
        "oracle", "--base-url", fake.base_url, "-m", "gpt-4o-mini", "-p", "judge", "q"
    )
    assert code == 0
    assert doc["answers"][0]["cost_usd"] == pytest.approx(expected(doc["answers"][0], 0.15, 0.6))


def test_an_unknown_price_is_null_never_zero(fake: FakeOpenAI) -> None:
    result = invoke("oracle", "--base-url", fake.base_url, "-p", "judge,critic", "q")
    assert result.exit_code == 0 and "cost" not in result.stdout.split("---")[-1]
    code, doc = run_json("oracle", "--base-url", fake.base_url, "-p", "judge", "q")
    assert code == 0 and doc["answers"][0]["cost_usd"] is None and doc["cost_usd"] is None


def test_an_explicit_zero_price_is_a_known_zero(fake: FakeOpenAI) -> None:
    priced_profile(fake, "{input: 0, output: 0}")
    code, doc = run_json("oracle", "--endpoint", "fake", "-p", "judge", "q")
    assert code == 0 and doc["answers"][0]["cost_usd"] == 0 and doc["cost_usd"] == 0


@pytest.mark.parametrize(
    "price", ["{input: -1, output: 2}", "{input: 1}", "cheap", "{m: {input: 1, output: x}}"]
)
def test_a_bad_price_is_refused_with_its_line(fake: FakeOpenAI, price: str) -> None:
    path = priced_profile(fake, price)
    result = invoke("oracle", "--endpoint", "fake", "q")
    assert result.exit_code == 2
    assert f"{path}:4" in result.output and "price" in result.output


def test_the_footer_shows_the_runs_cost(fake: FakeOpenAI) -> None:
    priced_profile(fake)
    result = invoke("oracle", "--endpoint", "fake", "-p", "judge", "q")
    assert result.exit_code == 0
    footer = result.stdout.strip().splitlines()[-1]
    assert "cost $" in footer


def test_a_dry_run_shows_each_price_and_the_worst_case(fake: FakeOpenAI) -> None:
    priced_profile(fake)
    result = invoke("oracle", "--endpoint", "fake", "-p", "judge", "--dry-run", "q")
    assert result.exit_code == 0
    assert "on 127.0.0.1:" in result.stdout and "$1000 in / $2000 out" in result.stdout
    assert "(profile)" in result.stdout
    assert "worst case: $" in result.stdout
    code, doc = run_json("oracle", "--base-url", fake.base_url, "--dry-run", "-p", "judge", "q")
    assert code == 0
    host = doc["endpoint"]["host"]
    unknown = {"model": doc["model"], "endpoint": host, "price": None, "source": "unknown"}
    assert doc["prices"] == [unknown]
    assert doc["worst_case_usd"] is None
    result = invoke("oracle", "--base-url", fake.base_url, "--dry-run", "--budget-usd", "1", "q")
    assert result.exit_code == 0 and "cannot be kept: no price for" in result.stdout


# -- retries and cancelled calls --------------------------------------------------------------


def test_a_retried_call_costs_its_broken_attempt_too(fake: FakeOpenAI) -> None:
    priced_profile(fake)
    fake.script("judge", Reply(tokens=30, drop_after=10), Reply(tokens=5))
    code, doc = run_json("oracle", "--endpoint", "fake", "-p", "judge", "--retries", "2", "q")
    assert code == 0
    (answer,) = doc["answers"]
    assert answer["retries"] == 1 and answer["cost_estimated"] is True
    assert answer["cost_usd"] > expected(answer)  # the lost attempt's prompt and 10 tokens
    assert (
        answer["cost_usd"] >= expected(answer) + (answer["tokens_in"] * IN + 10 * OUT) / 1e6 * 0.9
    )


def test_a_cancelled_speculative_round_costs_what_it_streamed(fake: FakeOpenAI) -> None:
    priced_profile(fake)
    fake.script("arbiter", verdict(True, synthesis="Done in one.", gate="verdict-1"))
    for name in ("judge", "critic", "skeptic"):
        fake.script(name, Reply(tokens=40, hang_after=3), round=2)
    with ThreadPoolExecutor(max_workers=1) as background:
        running = background.submit(
            run_json, "deliberate", "--endpoint", "fake", "--speculative", "--rounds", "3", "q"
        )
        fake.wait_for(lambda f: sum(r.tokens_sent for r in persona_requests(f, 2)) == 9)
        fake.release("verdict-1")
        code, doc = running.result(timeout=10)
    assert code == 0
    cancelled = [c for c in doc["timeline"] if c["status"] == "cancelled"]
    assert len(cancelled) == 3
    for call in cancelled:
        # Its prompt (estimated) and the 3 words it streamed, at the price: never 0, never None.
        assert call["cost_usd"] is not None and call["cost_usd"] >= 3 * OUT / 1e6
    wasted = doc["metrics"]["wasted_cost_usd"]
    assert wasted == pytest.approx(sum(c["cost_usd"] for c in doc["timeline"] if not c["kept"]))
    assert doc["cost_usd"] == pytest.approx(sum(c["cost_usd"] for c in doc["timeline"]))
    assert doc["cost_usd"] > wasted > 0


def test_estimated_tokens_when_the_server_sends_no_usage(fake: FakeOpenAI) -> None:
    priced_profile(fake)
    fake.send_usage = False
    code, doc = run_json("oracle", "--endpoint", "fake", "-p", "judge", "q")
    assert code == 0
    (answer,) = doc["answers"]
    assert answer["tokens_in"] is None and answer["cost_estimated"] is True
    assert answer["cost_usd"] > 0


def test_spent_prefers_counted_tokens() -> None:
    spent = Spent(tokens_in=None, tokens_out=7, estimated_in=100, estimated_out=2)
    assert spent.tokens() == (100, 7, True)


# -- history and stats ---------------------------------------------------------------------------


def test_history_keeps_costs_and_stats_sum_them(fake: FakeOpenAI) -> None:
    priced_profile(fake)
    costs = []
    for question in ("one", "two"):
        code, doc = run_json("oracle", "--endpoint", "fake", "-p", "judge,critic", question)
        assert code == 0
        costs.append(doc["cost_usd"])
    calls = history_rows("SELECT persona, cost_usd, cost_estimated FROM calls")
    assert len(calls) == 4 and all(r["cost_usd"] > 0 for r in calls)
    runs = history_rows("SELECT cost_usd FROM runs ORDER BY started_at")
    assert [r["cost_usd"] for r in runs] == pytest.approx(costs)
    for by in ("persona", "model", "endpoint"):
        stats = json.loads(invoke("stats", "--by", by, "--json").stdout)
        assert sum(g["cost_usd"] for g in stats["groups"]) == pytest.approx(sum(costs))
    by_persona = {
        g["name"]: g["cost_usd"] for g in json.loads(invoke("stats", "--json").stdout)["groups"]
    }
    judge = sum(r["cost_usd"] for r in calls if r["persona"] == "judge")
    assert by_persona["judge"] == pytest.approx(judge)
    assert "$" in invoke("stats").stdout


def test_stats_show_unknown_cost_as_unknown(fake: FakeOpenAI) -> None:
    invoke("oracle", "--base-url", fake.base_url, "-p", "judge", "q")
    (group,) = json.loads(invoke("stats", "--json").stdout)["groups"]
    assert group["cost_usd"] is None and group["cost_unknown"] == 1


def test_an_older_history_gains_the_cost_columns(fake: FakeOpenAI) -> None:
    path = Path(os.environ["COUNCIL_HOME"]) / "history.db"
    before = [m for m in MIGRATIONS if m[0] != "m009_costs"]
    old = HistoryDB.open(path, migrations=before)
    old.write(
        "INSERT INTO runs (id, started_at, command, plan, status) "
        "VALUES ('old', 1.0, 'oracle', '{}', 'ok')"
    )
    old.write(
        "INSERT INTO calls (run_id, call_id, round, persona, role, status, latency) "
        "VALUES ('old', 'r1-judge', 1, 'judge', 'persona', 'answered', 1.0)"
    )
    old.close()
    priced_profile(fake)
    assert invoke("oracle", "--endpoint", "fake", "-p", "judge", "new").exit_code == 0
    rows = history_rows("SELECT run_id, cost_usd FROM calls ORDER BY run_id = 'old'")
    assert rows[0]["cost_usd"] > 0 and rows[1]["cost_usd"] is None  # the old call: unknown
    (group,) = json.loads(invoke("stats", "--json").stdout)["groups"]
    assert group["cost_unknown"] == 1 and group["cost_usd"] == pytest.approx(rows[0]["cost_usd"])


def test_help_and_a_local_dry_run_do_not_import_genai_prices(fake: FakeOpenAI) -> None:
    """genai-prices takes a few hundred ms to import: only a known provider's price needs it."""
    code = (
        "import sys\n"
        "from council.cli import app\n"
        "for args in (['--help'], ['oracle', '--base-url', sys.argv[1], '--dry-run', 'q']):\n"
        "    try:\n"
        "        app(args)\n"
        "    except SystemExit as exit:\n"
        "        assert not exit.code, exit.code\n"
        "assert 'genai_prices' not in sys.modules, 'imported genai_prices'\n"
        "print('clean')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, fake.base_url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("clean")
