"""Terminal safety: model, server and file text reaches people without control sequences.

A prompt injection can make a model answer with sequences a terminal obeys: write the
clipboard (OSC 52), set the window title (OSC 0), a disguised link (OSC 8), clear the
screen or move the cursor (CSI). Every human-facing output strips them; `--json` and
`--jsonl` keep the text exactly (escaped, so a terminal obeys none of it).
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from council.app.run import run_deliberation, run_oracle
from council.config.personas import PersonaCatalog
from council.engine.events import CallStarted, FirstToken, TextDelta
from council.engine.plan import build_deliberation_plan, build_oracle_plan
from council.render import OutputMode
from council.render.live import LiveView, RoundsLiveView
from council.render.safe_text import json_safe, strip_controls
from tests.fake_openai import Reply
from tests.helpers import invoke, oracle, resolved_endpoint

CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4=\x07"
TITLE = "\x1b]0;pwned\x1b\\"
LINK = "\x1b]8;;https://evil.example\x1b\\docs.python.org\x1b]8;;\x1b\\"
CLEAR = "\x1b[2J\x1b[H"
CURSOR = "\x1b[1A\x1b[2K"
C1 = "\x9b31m\x9d0;c1 title\x9c"
HOSTILE = f"Safe start {CLIPBOARD}{TITLE}see {LINK} {CLEAR}{CURSOR}{C1}\r\nsafe end."
# What a person may see of HOSTILE: the text around the sequences, nothing that controls.
VISIBLE = "Safe start see docs.python.org \nsafe end."
# Characters that must never reach a terminal: C0 but tab and newline, DEL, C1.
CONTROLS = {chr(c) for c in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)]}


def assert_clean(text: str) -> None:
    leaked = sorted({f"U+{ord(ch):04X}" for ch in text if ch in CONTROLS})
    assert not leaked, f"control characters reached the output: {leaked}"


# -- the function -------------------------------------------------------------------------


def test_each_known_sequence_is_removed_and_the_text_around_it_kept():
    assert strip_controls(HOSTILE) == VISIBLE
    assert strip_controls("a\x1b]52;c;abc\nnext") == "a\nnext"  # unterminated: stop at the line
    assert strip_controls("reset\x1bc!") == "reset!"
    assert strip_controls("bell\x07 nul\x00 del\x7f") == "bell nul del"
    assert strip_controls("tab\tand\nnewline") == "tab\tand\nnewline"
    assert strip_controls("Ünïcödé — ✓ 😀") == "Ünïcödé — ✓ 😀"


@given(st.text())
def test_no_control_character_survives_and_cleaning_is_idempotent(text: str) -> None:
    cleaned = strip_controls(text)
    assert_clean(cleaned)
    assert strip_controls(cleaned) == cleaned


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs"))))
def test_text_without_controls_is_left_alone(text: str) -> None:
    assert strip_controls(text) == text


@given(st.text())
def test_json_safe_keeps_every_string_exactly(text: str) -> None:
    encoded = json_safe(json.dumps({"text": text}, ensure_ascii=False))
    assert_clean(encoded)
    assert json.loads(encoded) == {"text": text}


# -- oracle outputs ---------------------------------------------------------------------


def test_piped_markdown_and_quiet_output_are_clean(fake):
    fake.script("judge", Reply(text=HOSTILE))
    result = oracle(fake, "-p", "judge,critic", "Question?")
    assert result.exit_code == 0
    assert_clean(result.stdout)
    assert VISIBLE.strip() in result.stdout.replace("\n\n", "\n")
    fake.script("judge", Reply(text=HOSTILE))
    quiet = oracle(fake, "-p", "judge", "-q", "Question?")
    assert_clean(quiet.stdout)
    assert quiet.stdout == VISIBLE + "\n"


def test_json_and_jsonl_keep_the_text_exactly_but_escaped(fake):
    fake.script("judge", Reply(text=HOSTILE))
    result = oracle(fake, "-p", "judge", "--json", "Question?")
    assert_clean(result.stdout)  # C0 escaped by JSON, C1 by council
    assert json.loads(result.stdout)["answers"][0]["text"] == HOSTILE
    fake.script("judge", Reply(text=HOSTILE))
    lines = oracle(fake, "-p", "judge", "--jsonl", "Question?").stdout.splitlines()
    assert_clean("\n".join(lines))
    events = [json.loads(line) for line in lines]
    streamed = "".join(e["text"] for e in events if e["type"] == "text_delta")
    assert streamed == HOSTILE
    assert next(e for e in events if e["type"] == "call_finished")["text"] == HOSTILE


def _oracle_plan(fake, names: list[str], synthesize: bool = False):
    catalog = PersonaCatalog.discover()
    return build_oracle_plan(
        query="Question?",
        personas=catalog.resolve(names),
        endpoint=resolved_endpoint(fake.base_url),
        arbiter=catalog.get("arbiter") if synthesize else None,
    )


def test_terminal_panels_are_clean_and_links_show_their_target(fake):
    fake.script("judge", Reply(text=HOSTILE + "\n\n[docs.python.org](https://evil.example)"))
    fake.script("arbiter", Reply(text=f"Synthesis {CLEAR}done"))
    out = io.StringIO()
    code = run_oracle(
        _oracle_plan(fake, ["judge"], synthesize=True), OutputMode.RICH, stdout=out, show_live=False
    )
    text = out.getvalue()
    assert code == 0
    assert_clean(text)
    assert "Safe start" in text and "Synthesis done" in text
    # A Markdown link is not a clickable disguise: its real target is printed.
    assert "https://evil.example" in text


def test_the_live_view_shows_streamed_text_without_its_sequences():
    console = Console(file=io.StringIO(), width=100, height=30)
    view = LiveView(console, ["judge", "critic"])
    ids = {"run_id": "r", "call_id": "c1", "persona": "judge"}
    view.handle(CallStarted(**ids, model="m"))
    view.handle(FirstToken(**ids, ttft=0.1))
    # A sequence split across deltas is still removed as a whole.
    for part in ("Hello ", "\x1b", "]52;c;", "cm0=\x07", " world ", CLEAR[:3], CLEAR[3:]):
        view.handle(TextDelta(**ids, text=part))
    console.print(view.render())
    rendered = console.file.getvalue()
    assert_clean(rendered)
    assert "Hello" in rendered and "world" in rendered


def test_the_compact_live_table_does_not_read_model_text_as_markup():
    console = Console(file=io.StringIO(), width=120, height=30)
    names = ["judge", "critic", "skeptic", "optimist", "pragmatist"]
    view = LiveView(console, names)
    ids = {"run_id": "r", "call_id": "c1", "persona": "judge"}
    view.handle(CallStarted(**ids, model="m"))
    view.handle(TextDelta(**ids, text="[link=https://evil.example]click[/link] [bold]x"))
    console.print(view.render())
    rendered = console.file.getvalue()
    assert "[link=https://evil.example]click[/link]" in rendered


def test_stderr_lines_quoting_a_server_are_clean_and_never_markup(fake):
    message = f"bad thing {TITLE}[link=https://evil.example]here[/link]"
    fake.script("judge", Reply(status=400, error_message=message))
    result = oracle(fake, "-p", "judge,critic", "Question?")
    assert result.exit_code == 3
    assert_clean(result.stdout + result.stderr)
    assert "bad thing [link=https://evil.example]here[/link]" in result.stdout
    fake.script("judge", Reply(status=400, error_message=message))
    deliberation = invoke("deliberate", "--base-url", fake.base_url, "-p", "judge,critic", "Q?")
    assert_clean(deliberation.stderr)
    assert "bad thing [link=https://evil.example]here[/link]" in deliberation.stderr
    fake.script("judge", Reply(status=400, error_message=message))
    alone = oracle(fake, "-p", "judge", "Question?")  # every persona failed: an error line
    assert alone.exit_code == 1
    assert_clean(alone.stderr)
    assert "bad thing" in alone.stderr


# -- deliberations ------------------------------------------------------------------------


def _verdict(synthesis: str, dissent: list[str]) -> Reply:
    # The model writes JSON: its escapes (\u001b) decode to the raw sequence.
    body = {"converged": True, "confidence": 0.9, "synthesis": synthesis, "dissent": dissent}
    return Reply(text=json.dumps(body))


def test_a_deliberations_synthesis_and_dissent_are_clean_everywhere_for_people(fake):
    fake.script("arbiter", _verdict(HOSTILE, [f"skeptic: {CLIPBOARD}no plan"]))
    piped = invoke("deliberate", "--base-url", fake.base_url, "-p", "judge,critic", "Ship?")
    assert piped.exit_code == 0
    assert_clean(piped.stdout)
    assert "skeptic: no plan" in piped.stdout and "Safe start" in piped.stdout

    fake.script("arbiter", _verdict(HOSTILE, [f"skeptic: {CLIPBOARD}no plan"]))
    catalog = PersonaCatalog.discover()
    plan = build_deliberation_plan(
        query="Ship?",
        personas=catalog.resolve(["judge", "critic"]),
        arbiter=catalog.get("arbiter"),
        endpoint=resolved_endpoint(fake.base_url),
    )
    out = io.StringIO()
    assert run_deliberation(plan, OutputMode.RICH, stdout=out, show_live=False) == 0
    assert_clean(out.getvalue())
    assert "skeptic: no plan" in out.getvalue()

    fake.script("arbiter", _verdict(HOSTILE, []))
    raw = invoke("deliberate", "--base-url", fake.base_url, "-p", "judge", "--json", "Ship?")
    assert json.loads(raw.stdout)["answer"]["text"] == HOSTILE


def test_the_rounds_live_view_is_clean():
    console = Console(file=io.StringIO(), width=100, height=30)
    view = RoundsLiveView(console, rounds=2)
    ids = {"run_id": "r", "call_id": "r1-judge", "persona": "judge"}
    view.handle(CallStarted(**ids, model="m"))
    view.handle(TextDelta(**ids, text=HOSTILE))
    console.print(view.render())
    assert_clean(console.file.getvalue())


# -- history, show, dry run, files ------------------------------------------------------


def test_show_and_history_replay_clean_text(fake, isolated_env: Path):
    question = f"Is this safe? {TITLE}"
    fake.script("judge", Reply(text=HOSTILE))
    assert oracle(fake, "-p", "judge", question).exit_code == 0
    listing = invoke("history")
    assert_clean(listing.stdout)
    assert "Is this safe?" in listing.stdout
    run_id = listing.stdout.split()[0]
    shown = invoke("show", run_id)
    assert_clean(shown.stdout)
    assert "Safe start" in shown.stdout
    assert json.loads(invoke("show", run_id, "--json").stdout)["answers"][0]["text"] == HOSTILE
    exported = invoke("history", "export").stdout
    assert_clean(exported)
    assert json.loads(exported.splitlines()[0])["query"] == question
    # A run recorded by an older council, whose Markdown holds the raw text: still clean.
    with sqlite3.connect(isolated_env / "history.db") as db:
        db.execute("UPDATE runs SET markdown = ? WHERE id = ?", (HOSTILE, run_id))
    old = invoke("show", run_id)
    assert_clean(old.stdout)
    assert old.stdout == VISIBLE


def test_a_dry_run_shows_attached_files_clean_and_json_exact(fake, tmp_path: Path):
    attached = tmp_path / "notes.txt"
    attached.write_text(f"notes {CLEAR}{CLIPBOARD}end\n", encoding="utf-8")
    args = ("--dry-run", "-p", "judge", "-c", str(attached), "Question?")
    plan = oracle(fake, *args)
    assert plan.exit_code == 0
    assert_clean(plan.stdout)
    assert "notes end" in plan.stdout
    exact = json.loads(oracle(fake, *args[:1], "--json", *args[1:]).stdout)
    assert CLIPBOARD in exact["calls"][0]["messages"][-1]["content"]


def test_a_persona_file_is_shown_clean(tmp_path: Path, monkeypatch):
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "sly.yaml").write_text(
        'name: sly\ndescription: "Sly \\e]0;title\\a one"\nsystem: "Be sly. \\e[2J Really."\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("COUNCIL_PERSONA_PATH", str(personas))
    shown = invoke("personas", "show", "sly")
    assert shown.exit_code == 0
    assert_clean(shown.stdout)
    assert "Be sly.  Really." in shown.stdout
    listing = invoke("personas", "list")
    assert_clean(listing.stdout)
    assert "Sly  one" in listing.stdout
