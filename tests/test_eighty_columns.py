"""Listings in an 80×24 terminal: no line wider than 80, no row broken in two.

Each command runs as a real process on a pseudo-terminal of 80 columns and 24 rows,
with COLUMNS and LINES set as a shell sets them. What the terminal received is read
back: a line wider than 80 is one the terminal would have wrapped into two.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI, Reply
from tests.helpers import invoke
from tests.terminal import ANSI, Terminal

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")

COLUMNS, ROWS = 80, 24
LONG_QUESTION = (
    "Should we move the billing service into the monorepo with the rest of the platform "
    "code this quarter, given that two teams own parts of it and deploy on different days?"
)
REPOSITORY = Path(__file__).resolve().parents[1]


def screen(*args: str) -> list[str]:
    """`council ARGS` in an 80×24 terminal: the lines it showed (exit 0 expected)."""
    env = {"COLUMNS": str(COLUMNS), "LINES": str(ROWS)}
    with Terminal(list(args), rows=ROWS, cols=COLUMNS, env=env) as term:
        code = term.finish()
        raw = ANSI.sub("", term.raw)
    assert code == 0, raw
    # A carriage return starts the line over (a progress line redrawn): each piece
    # written must fit, and the line shows the last one.
    pieces = [line.split("\r") for line in raw.split("\n")]
    too_wide = [piece for line in pieces for piece in line if len(piece) > COLUMNS]
    assert not too_wide, "\n".join(too_wide)
    lines = [next((p for p in reversed(line) if p), "") for line in pieces]
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


@pytest.fixture
def recorded(fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A history of four runs, a long question among them, one with a preset: their ids."""
    (tmp_path / ".git").mkdir()
    presets = tmp_path / ".council" / "presets"
    presets.mkdir(parents=True)
    (presets / "team-review.yaml").write_text(
        f"name: team-review\npersonas: [judge]\nbase_url: {fake.base_url}\n"
    )
    monkeypatch.chdir(tmp_path)
    fake.script("critic", Reply(status=429, retry_after=0), Reply())
    for args in (
        ("-p", "judge,critic,user-advocate", LONG_QUESTION),
        ("-p", "judge", "Tabs or spaces?"),
        ("-p", "skeptic,critic", LONG_QUESTION.upper()),
    ):
        assert invoke("oracle", "--base-url", fake.base_url, *args).exit_code == 0
    assert invoke("oracle", "--preset", "team-review", LONG_QUESTION).exit_code == 0
    return [run["id"] for run in json.loads(invoke("history", "--json").stdout)]


def test_history_rows_fit_trimming_the_question(recorded: list[str]) -> None:
    lines = screen("history")
    assert len(lines) == len(recorded)  # a row a line: none broken in two
    for line, run_id in zip(lines, recorded, strict=True):
        assert line.startswith(run_id) and " ok " in line
    assert lines[0].endswith("…") and "[team-review]" in lines[0]
    assert "Tabs or spaces?" in lines[2]
    found = screen("history", "--search", "billing")
    assert len(found) == 3 and all(line.endswith("…") for line in found)


def test_stats_rows_fit(recorded: list[str]) -> None:
    lines = screen("stats")
    assert lines[0].startswith("4 runs;")
    header, *rest = lines[1:]
    assert header.split()[:3] == ["persona", "calls", "errors"]
    names = ("critic", "judge", "skeptic", "user-advocate")
    rows = [line for line in rest if line.split()[0] in names]
    assert sorted(line.split()[0] for line in rows) == sorted(names)  # each on one line
    # Everything after the rows is sentences, wrapped at words with an indent.
    assert rest[: len(rows)] == rows
    assert all(line.startswith(("suggestion: ", "deliberations: ", "  ")) for line in rest[4:])


def test_persona_and_preset_listings_fit(recorded: list[str]) -> None:
    personas = json.loads(invoke("personas", "list", "--json").stdout)
    lines = screen("personas", "list")
    assert [line.split()[0] for line in lines] == [p["name"] for p in personas]
    assert all(line.endswith("(built-in)") for line in lines)
    presets = json.loads(invoke("presets", "list", "--json").stdout)
    lines = screen("presets", "list")
    assert [line.split()[0] for line in lines] == [p["name"] for p in presets]
    assert "[project: .council/presets/team-review.yaml]" in lines[0]
    shown = screen("presets", "show", "review")
    assert "file: (built-in) review.yaml" in shown
    assert not any(str(REPOSITORY) in line or "site-packages" in line for line in shown)


def test_eval_table_keeps_strategy_names_whole(fake: FakeOpenAI) -> None:
    data = REPOSITORY / "examples" / "eval-basics.jsonl"
    lines = screen(
        "eval",
        str(data),
        "--base-url",
        fake.base_url,
        "-p",
        "judge,critic",
        "--strategies",
        "skeptic,synthesize,deliberate,vote",
        "--rounds",
        "1",
        "--limit",
        "2",
    )
    table = [line for line in lines if "│" in line and line.split("│")[0].strip()]
    assert [line.split("│")[0].strip() for line in table] == [
        "skeptic",
        "synthesize",
        "deliberate",
        "vote",
        "best single (judge)",  # the baselines, read from synthesize's members
        "majority vote",
    ]


def test_long_help_is_grouped_to_about_two_screens() -> None:
    lines = screen("batch", "--help")
    # 156 lines before, in one "Options" box; 4.7 screens until --position-checks and
    # --self-check-rate (issue 26) took 4 more lines (the panel's name column widened).
    assert len(lines) <= 4.85 * ROWS
    panels = [line for line in lines if line.startswith("╭─ ")]
    assert any("Batch" in p for p in panels) and any("Deliberate mode" in p for p in panels)
    for command in ("oracle", "deliberate", "eval", "history", "show", "keys"):
        screen(command, "--help")


def test_the_batch_progress_line_fits_a_narrow_terminal() -> None:
    from council.engine.results import BatchProgress
    from council.render.batch_progress import progress_line

    progress = BatchProgress(
        total=100_000,
        done=12_278,
        failed=67,
        rate_limited=890,
        tokens_in=12_345_678,
        tokens_out=2_345_678,
        skipped=5,
        limit=8,
        calls_in_flight=8,
        started_at=time.monotonic() - 100,
    )
    whole = progress_line(progress)
    assert len(whole) > COLUMNS
    line = progress_line(progress, COLUMNS)
    assert len(line) <= COLUMNS and line.startswith("12,345/100,000 items (67 failed)")
    assert "ETA" in line and "890 × 429" in line and "tokens" not in line
