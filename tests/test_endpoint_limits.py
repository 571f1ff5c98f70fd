"""Issue 14, point 5: what a run learned about an endpoint is kept for the next run."""

from __future__ import annotations

import json
import os
from pathlib import Path

from council.app.limits import seed_learned
from council.endpoint.pool import EndpointPool
from council.store.limits import normalize_url
from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import history_rows, invoke, keep_learned, kept_learned, resolved_endpoint


def profile_config(fake: FakeOpenAI, name: str = "box") -> None:
    path = Path(os.environ["COUNCIL_HOME"]) / "config.yaml"
    path.write_text(f"endpoints:\n  - name: {name}\n    base_url: {fake.base_url}\n")


def test_normalized_urls_name_one_endpoint() -> None:
    assert normalize_url("HTTP://LocalHost:80/v1/") == "http://localhost:80/v1"
    assert normalize_url("http://localhost/v1") == "http://localhost:80/v1"
    assert normalize_url("https://api.example.com/v1") == "https://api.example.com:443/v1"
    assert normalize_url("http://[::1]:8080/v1") == "http://[::1]:8080/v1"


def test_a_learned_limit_is_kept_shown_used_by_the_next_run_and_reset(fake: FakeOpenAI) -> None:
    profile_config(fake)
    # What the limiter and fitting would have learned before the first run.
    keep_learned(fake.base_url, "m", capacity=2, context_window=4096, window_source="error")
    first = invoke("oracle", "--endpoint", "box", "-m", "m", "-p", "judge", "q")
    assert first.exit_code == 0, first.output
    (row,) = history_rows("SELECT * FROM endpoint_limits")
    assert row["base_url"] == normalize_url(fake.base_url)
    assert (row["model"], row["capacity"], row["context_window"]) == ("m", 2, 4096)
    assert (row["window_source"], row["origin"]) == ("error", "profile box")

    # Each run's endpoint pool starts empty; the next run starts from what was kept.
    second = invoke("oracle", "--endpoint", "box", "-m", "m", "-p", "judge", "q")
    assert second.exit_code == 0, second.output
    (kept,) = kept_learned(fake.base_url)
    assert (kept.capacity, kept.context_window, kept.window_source) == (2, 4096, "error")

    listing = invoke("endpoints", "list")
    assert "learned m: 2 at a time, window 4096 (error)" in listing.stdout
    (entry,) = json.loads(invoke("endpoints", "list", "--json").stdout)[:1]
    assert entry["learned"][0]["capacity"] == 2 and entry["ceiling_source"] == "default"

    reset = invoke("endpoints", "reset", "box")
    assert reset.exit_code == 0, reset.output
    assert "1 model" in reset.stdout
    assert history_rows("SELECT * FROM endpoint_limits") == []
    pool = EndpointPool()  # what a run after the reset starts from
    seed_learned([resolved_endpoint(fake.base_url)], pool)
    assert pool.learned.snapshot() == {}
    assert "learned m:" not in invoke("endpoints", "list").stdout


def test_reset_by_url_and_an_unknown_name(fake: FakeOpenAI) -> None:
    keep_learned(fake.base_url, "m", capacity=3)
    assert (
        invoke("oracle", "--base-url", fake.base_url, "-m", "m", "-p", "judge", "q").exit_code == 0
    )
    (row,) = history_rows("SELECT origin FROM endpoint_limits")
    assert row["origin"] == "--base-url"
    assert invoke("endpoints", "reset", fake.base_url + "/").exit_code == 0
    assert history_rows("SELECT * FROM endpoint_limits") == []
    unknown = invoke("endpoints", "reset", "nowhere")
    assert unknown.exit_code == 2 and "not a URL" in unknown.stderr


def test_no_history_keeps_nothing(fake: FakeOpenAI) -> None:
    # The run learns a capacity: one slot, two personas at once.
    fake.slots, fake.over_limit, fake.slot_retry_after = 1, "429", 0.05
    fake.default = Reply(ttft=0.2, tokens=3)
    result = invoke(
        "oracle", "--base-url", fake.base_url, "--no-history", "-m", "m", "-p", "judge,critic", "q"
    )
    assert result.exit_code == 0, result.output
    assert not (Path(os.environ["COUNCIL_HOME"]) / "history.db").exists()


def test_endpoints_check_shows_the_ceiling_and_what_was_learned(fake: FakeOpenAI) -> None:
    path = Path(os.environ["COUNCIL_HOME"]) / "config.yaml"
    path.write_text(
        f"endpoints:\n  - name: box\n    base_url: {fake.base_url}\n    max_concurrency: 4\n"
    )
    keep_learned(fake.base_url, "m", capacity=2)
    assert invoke("oracle", "--endpoint", "box", "-m", "m", "-p", "judge", "q").exit_code == 0
    checked = invoke("endpoints", "check", "box", "-m", "m")
    assert checked.exit_code == 0, checked.output
    assert "ceiling: 4 at a time (profile)" in checked.stdout
    assert "learned: m: 2 at a time, window not learned" in checked.stdout
