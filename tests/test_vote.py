"""`--vote`: ballots read from any shape, the tally, ties, early stop, unanimous rounds."""

from __future__ import annotations

import json
import re
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from council.engine.ballots import normalise_choice, parse_choices, read_ballot
from council.engine.model import Ballot
from council.engine.vote import BallotBox, tally_of, unanimous
from tests.fake_openai import Reply
from tests.helpers import history_rows, invoke, oracle, oracle_json

QUESTION = "Which database: A) Postgres, B) MySQL, C) SQLite?"
LETTERS = parse_choices("A,B,C,D")

# -- reading ballots ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        '{"choice": "B", "confidence": 0.8, "reason": "mature"}',
        '```json\n{"choice": "b", "confidence": 0.8, "reason": "mature"}\n```',
        'Here is my ballot: {"Choice": "Option B", "confidence": "80%", "reason": "mature"} ok',
        "I weighed both.\nChoice: B\nConfidence: 0.8\nReason: mature",
        "Answer: A\n... on reflection ...\nFinal choice: B.",
        "B",
        "(B)",
        "Option B",
        "B.",
        "  **b**  ",
        "B) MySQL, because the team knows it well and it is already deployed.",
    ],
)
def test_a_ballot_is_read_from_json_prose_and_bare_answers(reply):
    ballot = read_ballot("judge", reply, LETTERS)
    assert ballot.choice == "B" and ballot.raw_ok
    assert ballot.persona == "judge"


def test_confidence_and_reason_are_read_when_given():
    ballot = read_ballot("judge", '{"choice": "C", "confidence": 85, "reason": "a\\n b"}', LETTERS)
    assert (ballot.choice, ballot.confidence, ballot.reason) == ("C", 0.85, "a b")
    prose = read_ballot("judge", "Choice: C\nConfidence: 70%\nReason: small and local", LETTERS)
    assert (prose.confidence, prose.reason) == (0.7, "small and local")


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("E", "'E' is not one of A, B, C, D"),
        ('{"choice": "maybe"}', "'maybe' is not one of A, B, C, D"),
        ("It depends on a great many things that the question does not say.", "no ballot"),
        ("", "no ballot"),
    ],
)
def test_an_unreadable_ballot_is_an_abstention_that_says_why(reply, why):
    ballot = read_ballot("critic", reply, LETTERS)
    assert ballot.choice is None and not ballot.raw_ok
    assert why in ballot.reason


@pytest.mark.parametrize(
    "reply",
    [
        '{"choice": {"choice": "temperature", "confidence": 0.4}, "confidence": 0.5}',
        '{"choice": ["A", "B"]}',
        '{"choice": true}',
        '{"choice": "  "}',
    ],
)
def test_a_json_choice_that_is_no_text_or_number_is_no_ballot(reply):
    # Seen from a 135M model in `council eval`: an object nested as the choice became
    # a "choice" of its own (its str()) and tied the vote.
    ballot = read_ballot("critic", reply)
    assert ballot.choice is None and not ballot.raw_ok


def test_yes_no_choices_and_free_answers_are_normalised():
    yes_no = parse_choices("yes, no")
    assert read_ballot("judge", "Yes.", yes_no).choice == "yes"
    assert read_ballot("judge", "NO", yes_no).choice == "no"
    because = "No, because it is risky and the team is small."
    assert read_ballot("judge", because, yes_no).choice == "no"
    free = [read_ballot(n, t) for n, t in (("a", " Paris. "), ("b", "paris"), ("c", "Lyon"))]
    assert tally_of(free) == {"Paris": 2, "Lyon": 1}
    assert normalise_choice("Option c") == "C"  # "Option C" is C, choices or not


def test_choices_are_parsed_once_each_in_order():
    assert parse_choices("A, B,,a ,C") == ("A", "B", "C")
    assert parse_choices(None) == ()


@given(
    letter=st.sampled_from("ABCD"),
    dress=st.sampled_from(["{}", "({})", "Option {}", "{}.", "{})", "**{}**", "Choice: {}"]),
    case=st.booleans(),
    pad=st.sampled_from(["", " ", "\n", "  \n"]),
)
def test_any_dressed_letter_reads_as_that_letter(letter, dress, case, pad):
    text = pad + dress.format(letter.lower() if case else letter) + pad
    assert read_ballot("p", text, LETTERS).choice == letter


@given(st.text(max_size=300))
def test_the_reader_never_raises_and_names_only_given_choices(text):
    ballot = read_ballot("p", text, LETTERS)
    assert ballot.choice in (None, *LETTERS)
    assert ballot.raw_ok == (ballot.choice is not None)


# -- counting -------------------------------------------------------------------------------


def _ballot(name: str, choice: str | None) -> Ballot:
    return Ballot(name, choice, None, "", raw_ok=choice is not None)


def test_a_vote_is_decided_only_when_the_rest_cannot_draw_level():
    box = BallotBox(voters=5)
    box.add(_ballot("a", "B"))
    box.add(_ballot("b", "B"))
    assert not box.decided()  # 2 > 0 + 3 is false
    box.add(_ballot("c", "B"))
    assert box.decided()  # 3 > 0 + 2
    tied = BallotBox(voters=4)
    for name, choice in (("a", "A"), ("b", "A"), ("c", "B")):
        tied.add(_ballot(name, choice))
    assert not tied.decided()  # the last could make it 2-2: a tie is another outcome
    lost = BallotBox(voters=3)
    lost.add(_ballot("a", "A"))
    lost.lost()
    # one ballot for A, one call failed, one outstanding: B could still tie it
    assert lost.outstanding == 1 and not lost.decided()


def test_ties_are_ties_and_unanimity_needs_every_voter():
    box = BallotBox(voters=4, choices=LETTERS)
    for name, choice in (("a", "A"), ("b", "B"), ("c", "b"), ("d", "A")):
        box.add(_ballot(name, choice))
    vote = box.result()
    assert vote.winners == ("A", "B") and vote.winner is None
    assert vote.answer == "tie between A and B"
    assert vote.tally == {"A": 2, "B": 2, "C": 0, "D": 0}
    agreed = BallotBox(voters=2)
    agreed.add(_ballot("a", "A"))
    agreed.add(_ballot("b", "a"))
    assert unanimous(agreed.result(), 2)
    assert not unanimous(agreed.result(), 3)  # someone did not vote


# -- oracle --vote against the fake server ----------------------------------------------------


def _ballots_request(fake, persona):
    (request,) = fake.requests_for(persona)
    return request.body


def test_oracle_vote_counts_ballots_of_every_shape(fake, monkeypatch):
    monkeypatch.setenv("COUNCIL_VOTE_EARLY_STOP", "0")  # every ballot, whatever the order
    fake.script("judge", Reply(text='{"choice": "B", "confidence": 0.9, "reason": "mature"}'))
    fake.script("critic", Reply(text="Thinking it over.\nChoice: b\nReason: known"))
    fake.script("skeptic", Reply(text="Option A"))
    fake.script("optimist", Reply(text="I would rather not choose between these at all."))
    code, doc = oracle_json(
        fake, "--vote", "--choices", "A,B,C", "-p", "judge,critic,skeptic,optimist", QUESTION
    )
    assert code == 0
    vote = doc["vote"]
    assert vote["winners"] == ["B"] and vote["answer"] == "B" and not vote["tied"]
    assert vote["tally"] == {"B": 2, "A": 1, "C": 0}
    ballots = {b["persona"]: b for b in vote["ballots"]}
    assert ballots["judge"] == {
        "persona": "judge",
        "choice": "B",
        "confidence": 0.9,
        "reason": "mature",
        "raw_ok": True,
    }
    assert ballots["optimist"]["choice"] is None and not ballots["optimist"]["raw_ok"]
    assert vote["abstentions"] == ["optimist"]
    assert vote["decided_early"] is False and vote["stopped"] == []
    assert set(vote) == {
        "answer", "winners", "tied", "tally", "ballots", "abstentions",
        "decided_early", "stopped", "tokens_saved", "tokens_saved_basis",
        "stop_rule", "weighting", "weights", "weighted_tally", "consistency",
    }  # fmt: skip
    assert vote["stop_rule"] == {"name": "none", "threshold": None}  # early stop off
    assert (vote["weighting"], vote["weights"], vote["weighted_tally"]) == ("equal", None, None)
    assert doc["answer"]["text"] == "B" and doc["ranking"] is None
    # Every persona was asked for a ballot, in JSON mode, with the choices named.
    body = _ballots_request(fake, "judge")
    choice = body["response_format"]["json_schema"]["schema"]["properties"]["choice"]
    assert choice == {"type": "string", "enum": ["A", "B", "C"]}
    assert '"A", "B", "C"' in body["messages"][-1]["content"]


def test_a_ballot_without_json_mode_still_counts(fake, monkeypatch):
    monkeypatch.setenv("COUNCIL_VOTE_EARLY_STOP", "0")
    fake.reject_response_format = True  # a server that refuses response_format
    fake.default = Reply(text="yes")
    code, doc = oracle_json(fake, "--vote", "--choices", "yes,no", "-p", "judge,critic", "Ship?")
    assert code == 0
    assert doc["vote"]["winners"] == ["yes"] and doc["vote"]["tally"] == {"yes": 2, "no": 0}
    assert any("response_format" not in r.body for r in fake.requests_for("judge"))


def test_a_tie_is_shown_as_a_tie_and_exits_0(fake):
    for name, choice in (("judge", "A"), ("critic", "B"), ("skeptic", "B"), ("optimist", "A")):
        fake.script(name, Reply(text=choice))
    result = oracle(
        fake, "--vote", "--choices", "A,B", "-p", "judge,critic,skeptic,optimist", QUESTION
    )
    assert result.exit_code == 0, result.output
    assert "Tie between A and B: 2 votes each, of 4 ballots." in result.stdout
    assert "| A | 2 | judge, optimist |" in result.stdout
    fake.script("judge", Reply(text="A"))
    fake.script("critic", Reply(text="B"))
    quiet = oracle(fake, "-q", "--vote", "-p", "judge,critic", QUESTION)
    assert (quiet.exit_code, quiet.stdout) == (0, "tie between A and B\n")


def test_free_answers_are_grouped(fake, monkeypatch):
    monkeypatch.setenv("COUNCIL_VOTE_EARLY_STOP", "0")
    for name, answer in (("judge", "Paris."), ("critic", " paris "), ("skeptic", "Lyon")):
        fake.script(name, Reply(text=answer))
    code, doc = oracle_json(fake, "--vote", "-p", "judge,critic,skeptic", "Capital of France?")
    assert code == 0
    assert doc["vote"]["tally"] == {"Paris": 2, "Lyon": 1}


def test_no_readable_ballot_is_a_partial_result(fake):
    fake.default = Reply(text="It depends on what you value most in the long run, really.")
    result = oracle(fake, "--vote", "--choices", "A,B", "-p", "judge,critic", QUESTION)
    assert result.exit_code == 3
    assert "abstained" in result.stdout


def _release_when_all_arrived(fake, count: int, gate: str) -> threading.Thread:
    """Let `gate` go once `count` requests are in: every call is in flight when ballots come."""

    def release() -> None:
        fake.wait_for(lambda f: len(f.requests) >= count, timeout=10)
        fake.release(gate)

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    return thread


def test_early_stop_cancels_the_ballots_that_cannot_change_the_outcome(fake):
    fast, slow = ("judge", "critic", "skeptic"), ("optimist", "pragmatist")
    for name in fast:
        fake.script(name, Reply(text='{"choice": "B", "reason": "r"}', gate="fast"))
    for name in slow:
        fake.script(name, Reply(text="A", gate="slow"))  # held until the test ends
    thread = _release_when_all_arrived(fake, 5, "fast")
    code, doc = oracle_json(fake, "--vote", "--choices", "A,B", "-p", ",".join(fast + slow), "Q?")
    thread.join()
    assert code == 0  # decided early: the stopped calls are not failures
    vote = doc["vote"]
    assert vote["decided_early"] is True
    assert sorted(vote["stopped"]) == sorted(slow)
    assert vote["winners"] == ["B"] and vote["tally"] == {"B": 3, "A": 0}
    assert vote["tokens_saved"] > 0
    assert doc["errors"] == [] and doc["status"] == "ok"
    # The server saw the slow calls go away: they were really cancelled.
    fake.wait_for(lambda f: {r.persona for r in f.disconnects} >= set(slow))
    rows = history_rows("SELECT persona, status, error_kind FROM calls ORDER BY persona")
    stopped = {r["persona"]: (r["status"], r["error_kind"]) for r in rows if r["persona"] in slow}
    assert stopped == {name: ("cancelled", "vote decided") for name in slow}
    fake.release("slow")


def test_without_early_stop_every_ballot_call_finishes(fake, monkeypatch):
    monkeypatch.setenv("COUNCIL_VOTE_EARLY_STOP", "0")
    fast, slow = ("judge", "critic", "skeptic"), ("optimist", "pragmatist")
    for name in fast:
        fake.script(name, Reply(text="B"))
    for name in slow:
        fake.script(name, Reply(text="A", ttft=0.05))
    code, doc = oracle_json(fake, "--vote", "--choices", "A,B", "-p", ",".join(fast + slow), "Q?")
    assert code == 0
    assert doc["vote"]["decided_early"] is False and doc["vote"]["tally"] == {"B": 3, "A": 2}
    assert fake.disconnects == []


def test_vote_output_in_markdown_has_the_tally_and_every_ballot(fake, monkeypatch):
    monkeypatch.setenv("COUNCIL_VOTE_EARLY_STOP", "0")
    fake.script("judge", Reply(text='{"choice": "A", "confidence": 0.6, "reason": "simple"}'))
    fake.script("critic", Reply(text="A"))
    result = oracle(fake, "--vote", "--choices", "A,B", "-p", "judge,critic", QUESTION)
    assert result.exit_code == 0
    out = result.stdout
    assert "**A wins with 2 of 2 ballots.**" in out
    assert "| judge | A | 0.60 | simple |" in out
    assert "| critic | A | – | – |" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["oracle", "--choices", "A,B"], "--choices goes with --vote"),
        (["oracle", "--vote", "--choices", "A"], "fewer than two choices"),
        (["oracle", "--vote", "--rank"], "--vote and --rank are exclusive"),
        (["oracle", "--vote", "--choices", "A,B", "-s"], "it takes no --synthesize"),
        (["deliberate", "--rank"], "--rank is for council oracle"),
    ],
)
def test_vote_flags_that_do_not_go_together_are_usage_errors(args, message):
    result = invoke(*args, "--dry-run", "-p", "judge,critic,skeptic", "Q?")
    assert result.exit_code == 2
    assert message in result.output


def test_dry_run_shows_the_ballot_prompt(fake):
    result = oracle(fake, "--dry-run", "--vote", "--choices", "yes,no", "-p", "judge", "Ship?")
    assert result.exit_code == 0
    assert "response_format json_schema" in result.stdout
    assert '"choice": exactly one of "yes", "no"' in result.stdout
    assert "- vote: every persona gives a ballot (yes, no)" in result.stdout
    assert fake.requests == []


# -- deliberate --vote --------------------------------------------------------------------------


def _verdict(converged: bool) -> Reply:
    body = {"converged": converged, "confidence": 0.5, "synthesis": "Split.", "dissent": []}
    return Reply(text=json.dumps(body))


def test_a_unanimous_round_ends_the_council_without_the_arbiter(fake):
    for name in ("judge", "critic", "skeptic"):
        fake.script(name, Reply(text=f"My reasoning as {name}.\nChoice: B"))
    result = invoke(
        "deliberate", "--base-url", fake.base_url, "--json", "--vote", "--choices", "A,B",
        "-p", "judge,critic,skeptic", QUESTION,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["stop_reason"] == "unanimous"
    assert doc["answer"]["text"] == "B" and doc["answer"]["unanimous"] is True
    assert len(doc["rounds"]) == 1 and doc["rounds"][0]["vote"]["tally"] == {"B": 3, "A": 0}
    assert fake.requests_for("arbiter") == []  # no verdict was asked for
    # Every persona was asked to end its answer with a ballot line.
    asked = 'End your answer with one line of its own: "Choice: X"'
    assert all(asked in r.body["messages"][-1]["content"] for r in fake.requests)


def test_a_split_round_goes_to_the_arbiter_and_a_later_unanimous_one_ends_it(fake):
    fake.script("judge", Reply(text="Choice: A"), round=1)
    fake.script("critic", Reply(text="Choice: B"), round=1)
    fake.script("arbiter", _verdict(False), round=1)
    fake.script("judge", Reply(text="Position: changed\nChoice: B"), round=2)
    fake.script("critic", Reply(text="Position: kept\nChoice: B"), round=2)
    result = invoke(
        "deliberate", "--base-url", fake.base_url, "--vote", "--rounds", "3",
        "-p", "judge,critic", QUESTION,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(fake.requests_for("arbiter")) == 1  # round 1 only
    assert "Unanimous in round 2 of 3: every persona chose B" in result.stdout
    assert "unanimous ballots: B (not judged)" in result.stdout


# -- what a terminal shows ------------------------------------------------------------------------


def test_the_live_view_shows_each_ballot_as_read_and_stopped_calls_as_such():
    import io

    from rich.console import Console

    from council.engine.events import CallCancelled, CallFinished, CallStarted
    from council.engine.model import VOTE_DECIDED, CallOutcome
    from council.render.live import LiveView

    console = Console(file=io.StringIO(), width=120, height=30)
    view = LiveView(console, ["judge", "critic", "skeptic"], ballots=("A", "B"))
    for name, text in (("judge", '{"choice": "b", "confidence": 0.8}'), ("critic", "Maybe.")):
        ids = {"run_id": "r", "call_id": f"r1-{name}", "persona": name}
        view.handle(CallStarted(**ids, model="m"))
        view.handle(CallFinished(**ids, outcome=CallOutcome(persona=name, text=text)))
    ids = {"run_id": "r", "call_id": "r1-skeptic", "persona": "skeptic"}
    view.handle(CallStarted(**ids, model="m"))
    stopped = CallOutcome(persona="skeptic", error_kind="cancelled")
    view.handle(CallCancelled(**ids, outcome=stopped, reason=VOTE_DECIDED))
    console.print(view.render())
    rendered = console.file.getvalue()
    assert "ballot B (0.80)" in rendered
    assert "abstained" in rendered
    assert "vote decided" in rendered


def test_the_terminal_ends_with_the_vote(fake, monkeypatch):
    import io

    from council.app.run import run_oracle
    from council.config.personas import PersonaCatalog
    from council.engine.plan import build_oracle_plan
    from council.render import OutputMode
    from tests.helpers import resolved_endpoint

    monkeypatch.setenv("COUNCIL_VOTE_EARLY_STOP", "0")
    fake.script("judge", Reply(text='{"choice": "A", "confidence": 0.6, "reason": "simple"}'))
    fake.script("critic", Reply(text="B"))
    catalog = PersonaCatalog.discover()
    plan = build_oracle_plan(
        query=QUESTION,
        personas=catalog.resolve(["judge", "critic"]),
        endpoint=resolved_endpoint(fake.base_url),
        vote=True,
        choices=("A", "B"),
        vote_early_stop=False,
    )
    out = io.StringIO()
    code = run_oracle(plan, OutputMode.RICH, stdout=out, show_live=False)
    assert code == 0
    text = out.getvalue()
    assert "tally" in text and "ballots" in text
    assert text.rstrip().splitlines()[-1].startswith("╰")  # the vote's panel is last
    assert "vote · tie between A and B" in text


def test_a_free_answer_is_never_markup_or_a_terminal_sequence(fake, monkeypatch):
    monkeypatch.setenv("COUNCIL_VOTE_EARLY_STOP", "0")
    from council.render.rich_report import oracle_renderable

    hostile = "[link=https://evil.example]Paris[/link]\x1b]52;c;cm0=\x07"
    for name in ("judge", "critic"):
        fake.script(name, Reply(text=json.dumps({"choice": hostile, "reason": hostile})))
    code, doc = oracle_json(fake, "--vote", "-p", "judge,critic", "Capital?")
    assert code == 0
    import io

    from rich.console import Console

    from council.engine.model import Ballot, VoteResult
    from council.engine.plan import build_oracle_plan
    from council.engine.results import OracleResult
    from tests.helpers import resolved_endpoint

    ballots = {b["persona"]: Ballot(**b) for b in doc["vote"]["ballots"]}
    vote = VoteResult(
        winners=tuple(doc["vote"]["winners"]),
        tally=doc["vote"]["tally"],
        ballots=ballots,
        decided_early=False,
        stopped=(),
        tokens_saved=0,
    )
    plan = build_oracle_plan(
        query="Q", personas=[], endpoint=resolved_endpoint(fake.base_url), vote=True
    )
    result = OracleResult(run_id="r", plan=plan, vote=vote)
    console = Console(file=io.StringIO(), width=200, force_terminal=True)
    console.print(oracle_renderable(result))
    rendered = console.file.getvalue()
    assert "[link=https://evil.example]Paris[/link]" in rendered  # shown as text
    assert "\x1b]52" not in rendered and "\x1b]8;" not in rendered  # no clipboard, no link


def test_ctrl_c_during_a_vote_closes_every_ballot_call_and_exits_130(fake):
    from tests.helpers import council_process, interrupt_when

    fake.script("judge", Reply(text="B"))
    for name in ("critic", "skeptic"):
        fake.script(name, Reply(hang=True))
    proc = council_process(
        "oracle", "--base-url", fake.base_url, "--vote", "--choices", "A,B",
        "-p", "judge,critic,skeptic", "Q?",
    )  # fmt: skip
    _, err = interrupt_when(
        proc, fake, lambda f: bool(f.requests_for("critic") and f.requests_for("skeptic"))
    )
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    fake.wait_for(lambda f: {r.persona for r in f.disconnects} >= {"critic", "skeptic"})


@given(
    cast=st.lists(st.sampled_from("ABC"), max_size=6),
    outstanding=st.integers(min_value=1, max_value=4),
)
def test_a_vote_is_decided_exactly_when_no_outstanding_ballots_can_change_the_winners(
    cast, outstanding
):
    import itertools

    box = BallotBox(voters=len(cast) + outstanding, choices=("A", "B", "C"))
    for i, choice in enumerate(cast):
        box.add(_ballot(f"p{i}", choice))
    now = box.result().winners
    finals = set()
    for rest in itertools.product("ABC", repeat=outstanding):
        ballots = [_ballot(f"p{i}", c) for i, c in enumerate([*cast, *rest])]
        tally = tally_of(ballots, ("A", "B", "C"))
        best = max(tally.values())
        finals.add(tuple(c for c, n in tally.items() if n == best))
    assert box.decided() == (finals == {now} and len(now) == 1)


def test_in_a_terminal_ballots_show_as_they_come_and_the_vote_stays_on_screen(fake):
    from tests.test_screens import Terminal, plain

    fake.script("judge", Reply(text='{"choice": "B", "confidence": 0.9, "reason": "fit"}'))
    fake.script("critic", Reply(text="Choice: B", gate="critic"))
    fake.script("skeptic", Reply(hang=True))
    args = ["oracle", "--base-url", fake.base_url, "--vote", "--choices", "A,B", "--no-history"]
    with Terminal([*args, "-p", "judge,critic,skeptic", "Which?"], rows=40, cols=100) as term:
        during = term.wait_for(lambda seen: "ballot B (0.90)" in seen)
        fake.release("critic")
        code = term.finish()
        screen = plain(term.raw)
    assert code == 0, screen
    assert "ballot B (0.90)" in plain(during)
    assert re.search(r"skeptic\s*│\s*stopped", screen)  # in the ballots table
    tail = screen[screen.rindex("vote · B") :]
    assert "B wins with 2 of 2 ballots." in tail
    assert tail.rstrip().endswith("╯"), tail


def test_a_vote_reads_in_the_councils_order_whichever_ballot_ends_first() -> None:
    """Ballots counted as their calls end (here the critic's first) give the same vote,
    tie order and ballot table as in the council's order: the answer does not depend on
    which server answered sooner."""
    box = BallotBox(2, order=["judge", "critic"])
    box.add(read_ballot("critic", "B"))
    box.add(read_ballot("judge", "A"))
    vote = box.result()
    assert vote.answer == "tie between A and B"
    assert list(vote.tally) == ["A", "B"]
    assert list(vote.ballots) == ["judge", "critic"]
