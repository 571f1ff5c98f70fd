"""`--vote`'s named stopping rules (`--stop-rule`) and `--weighting confidence`."""

from __future__ import annotations

import contextlib
import itertools
import json
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from council import Council
from council.engine.model import Ballot
from council.engine.stopping import StopRule, leader_probability, stop_rule
from council.engine.vote import BallotBox
from tests.fake_openai import Reply
from tests.helpers import history_rows, invoke, oracle, oracle_json
from tests.test_vote import _release_when_all_arrived

NINE = ("judge", "critic", "skeptic", "optimist", "pragmatist", "historian")
NINE += ("minimalist", "security", "user-advocate")


def _ballot(name: str, choice: str | None, confidence: float | None = None) -> Ballot:
    return Ballot(name, choice, confidence, "", raw_ok=choice is not None)


def _box(voters: int, cast: str, rule: StopRule, weighting: str = "equal") -> BallotBox:
    box = BallotBox(voters, rule=rule, weighting=weighting)
    for i, choice in enumerate(cast):
        box.add(_ballot(f"p{i}", choice))
    return box


# -- the rules, on their own ------------------------------------------------------------


def test_the_posterior_is_the_beta_rule_with_its_known_values():
    # p ~ Beta(a+1, b+1): P(p > 1/2) = P(Binomial(a+b+1, 1/2) <= a)
    assert leader_probability(4, 0) == 31 / 32
    assert leader_probability(3, 0) == 15 / 16
    assert leader_probability(6, 1) == 247 / 256
    assert leader_probability(2, 2) == 0.5
    # A weighted (fractional) tally is integrated: it lands between its whole neighbours.
    assert leader_probability(4.0 + 1e-9, 0) == pytest.approx(31 / 32, abs=1e-6)
    assert 15 / 16 < leader_probability(3.5, 0) < 31 / 32


def test_posterior_stops_a_large_council_sooner_than_overtake():
    posterior, overtake = stop_rule(), stop_rule("overtake")
    assert posterior == StopRule("posterior", 0.95)  # the default
    assert _box(9, "BBBB", posterior).decided()  # 31/32 >= 0.95
    assert not _box(9, "BBBB", overtake).decided()  # 4 > 0 + 5 is false
    assert not _box(9, "BBB", posterior).decided()  # 15/16 < 0.95
    assert _box(9, "BBBBBBA", posterior).decided()  # 6-1: 247/256
    assert not _box(9, "BBBBAA", posterior).decided()
    assert not _box(9, "BBBB", stop_rule("none")).decided()


def test_the_default_is_overtake_for_councils_up_to_seven():
    """What the README says: at 0.95 the posterior adds an earlier stop only from 8 voters."""
    posterior, overtake = stop_rule(), stop_rule("overtake")

    def earlier(n: int) -> list[tuple[int, int]]:
        tallies = [(a, b) for a in range(n) for b in range(n - a)]
        return [
            (a, b)
            for a, b in tallies
            if posterior.met([a, b], n - a - b, []) and not overtake.met([a, b], n - a - b, [])
        ]

    assert all(earlier(n) == [] for n in range(3, 8))
    assert earlier(8) == [(0, 4), (4, 0)]


def test_the_window_stops_when_the_last_ballots_agree():
    window = stop_rule("window")
    assert window == StopRule("window", 3.0)
    assert stop_rule("window:4") == StopRule("window", 4.0)
    assert stop_rule(":0.9") == StopRule("posterior", 0.9)  # the default rule, its threshold
    assert not _box(7, "ABB", window).decided()
    assert _box(7, "ABBB", window).decided()  # the last three agree; 3-1 with 3 out
    assert not _box(7, "BBAB", window).decided()
    assert _box(7, "AAB", stop_rule("window", 2)).decided() is False
    assert _box(7, "ABB", stop_rule("window", 2)).decided()


@given(cast=st.lists(st.sampled_from("ABC"), max_size=8), outstanding=st.integers(1, 5))
def test_every_rule_stops_no_later_than_overtake(cast, outstanding):
    voters = len(cast) + outstanding
    text = "".join(cast)
    if _box(voters, text, stop_rule("overtake")).decided():
        for name in ("posterior", "window"):
            assert _box(voters, text, stop_rule(name)).decided()
    assert not _box(voters, text, stop_rule("none")).decided()


def test_a_weighted_vote_stops_only_when_the_weights_out_cannot_change_it():
    box = BallotBox(4, rule=stop_rule("overtake"), weighting="confidence")
    box.add(_ballot("a", "A", 0.9))
    box.add(_ballot("b", "A", 0.9))
    assert not box.decided()  # 1.8 > 0 + 2 x 1.0 is false: two sure ballots could still tie
    box.add(_ballot("c", "A", 0.5))
    assert box.decided()  # 2.3 > 0 + 1.0


@pytest.mark.parametrize(
    ("name", "threshold", "message"),
    [
        ("majority", None, "no stopping rule 'majority'"),
        ("posterior", 0.4, "above 0.5 and below 1"),
        ("window", 2.5, "number of ballots, 2 or more"),
        ("overtake", 0.9, "takes no threshold"),
    ],
)
def test_an_unknown_rule_or_threshold_is_refused(name, threshold, message):
    with pytest.raises(ValueError, match=message):
        stop_rule(name, threshold)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stop-rule", "posterior"], "--stop-rule goes with --vote"),
        (["--weighting", "confidence"], "--weighting goes with --vote"),
        (["--vote", "--stop-rule", "sometimes"], "no stopping rule 'sometimes'"),
        (["--vote", "--stop-rule", "posterior:2"], "below 1, not 2"),
        (["--vote", "--stop-rule", "window:many"], "threshold 'many' is not a number"),
        (["--vote", "--weighting", "loudness"], "no weighting 'loudness'"),
    ],
)
def test_rule_flags_that_do_not_fit_are_one_line_usage_errors(fake, args, message):
    result = oracle(fake, *args, "-p", "judge,critic", "Q?")
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert fake.requests == []


# -- against the fake server ------------------------------------------------------------


def _stopped_early(fake, fast, slow, fast_reply, *args):
    """Fast ballots released together once every call is in; slow ones held to the end.

    The gates are named for the test: the fake opens a gate on its own loop, so a gate
    released at the end of one test could open after the next test's reset."""
    gate = "-".join(args)
    for name in fast:
        fake.script(name, Reply(text=fast_reply, gate=f"fast{gate}"))
    for name in slow:
        fake.script(name, Reply(text="A", gate=f"slow{gate}"))
    thread = _release_when_all_arrived(fake, len(fast) + len(slow), f"fast{gate}")

    def release_slow_unless_stopped() -> None:
        """A rule that does not stop makes the test fail (the slow ballots then come in,
        uncancelled), not hang."""
        with contextlib.suppress(AssertionError):
            fake.wait_for(lambda f: {r.persona for r in f.disconnects} >= set(slow), timeout=10)
        fake.release(f"slow{gate}")

    unstick = threading.Thread(target=release_slow_unless_stopped, daemon=True)
    unstick.start()
    personas = ",".join(fast + slow)
    code, doc = oracle_json(fake, "--vote", "--choices", "A,B", *args, "-p", personas, "Q?")
    thread.join()
    unstick.join()
    return code, doc


def test_the_posterior_rule_stops_and_cancels_the_ballots_still_out(fake):
    fast, slow = ("judge", "critic"), ("skeptic", "optimist")
    reply = '{"choice": "B", "confidence": 0.8, "reason": "r"}'
    # 2-0 of 4: overtake would wait (2 > 0 + 2 is false); P = 7/8 >= 0.85 stops.
    code, doc = _stopped_early(fake, fast, slow, reply, "--stop-rule", "posterior:0.85")
    assert code == 0
    vote = doc["vote"]
    assert vote["stop_rule"] == {"name": "posterior", "threshold": 0.85}
    assert vote["decided_early"] is True and sorted(vote["stopped"]) == sorted(slow)
    assert vote["winners"] == ["B"] and vote["tally"] == {"B": 2, "A": 0}
    fake.wait_for(lambda f: {r.persona for r in f.disconnects} >= set(slow))
    rows = history_rows("SELECT persona, status, error_kind FROM calls ORDER BY persona")
    stopped = {r["persona"]: (r["status"], r["error_kind"]) for r in rows if r["persona"] in slow}
    assert stopped == {name: ("cancelled", "vote decided") for name in slow}


def test_the_window_rule_stops_where_overtake_and_posterior_would_not(fake):
    fast, slow = NINE[:3], NINE[3:7]
    # 3-0 of 7: overtake needs 4, the posterior 15/16 < 0.95; the last three agree.
    code, doc = _stopped_early(fake, fast, slow, "B", "--stop-rule", "window")
    assert code == 0
    vote = doc["vote"]
    assert vote["stop_rule"] == {"name": "window", "threshold": 3.0}
    assert sorted(vote["stopped"]) == sorted(slow) and vote["answer"] == "B"
    fake.wait_for(lambda f: {r.persona for r in f.disconnects} >= set(slow))
    [run] = history_rows("SELECT plan FROM runs")
    rule = json.loads(run["plan"])["vote"]["stop_rule"]
    assert rule == {"name": "window", "threshold": 3.0}


def _split_by_confidence(fake):
    fake.script("judge", Reply(text='{"choice": "A", "confidence": 0.9, "reason": "sure"}'))
    fake.script("critic", Reply(text='{"choice": "B", "confidence": 0.3, "reason": "guess"}'))
    fake.script("skeptic", Reply(text="Choice: B\nReason: maybe"))  # no confidence: 0.5


def test_weighting_by_confidence_changes_the_winner(fake):
    args = ("--vote", "--choices", "A,B", "--stop-rule", "none", "-p", "judge,critic,skeptic")
    _split_by_confidence(fake)
    code, equal = oracle_json(fake, *args, "Q?")
    assert code == 0 and equal["vote"]["answer"] == "B"  # 2 ballots to 1
    _split_by_confidence(fake)
    code, weighted = oracle_json(fake, *args, "--weighting", "confidence", "Q?")
    assert code == 0
    vote = weighted["vote"]
    assert vote["answer"] == "A" and weighted["answer"]["text"] == "A"
    assert vote["weighting"] == "confidence"
    assert vote["weights"] == {"judge": 0.9, "critic": 0.3, "skeptic": 0.5}
    assert vote["weighted_tally"] == {"A": 0.9, "B": 0.8}
    assert vote["tally"] == {"B": 2, "A": 1}  # the count is still there, for reading
    _split_by_confidence(fake)
    shown = oracle(fake, *args, "--weighting", "confidence", "Q?")
    assert "A wins with 0.9 of 1.7 by confidence (1 ballot of 3)." in shown.stdout
    # The history keeps the weighted vote whole.
    last = history_rows("SELECT id FROM runs ORDER BY started_at DESC LIMIT 1")[0]["id"]
    kept = json.loads(invoke("show", last, "--json").stdout)["vote"]
    assert kept["weighted_tally"] == {"A": 0.9, "B": 0.8} and kept["weights"]["critic"] == 0.3


def test_the_python_api_takes_the_rule_and_the_weighting(fake):
    _split_by_confidence(fake)
    council = Council(personas=["judge", "critic", "skeptic"], base_url=fake.base_url, model="m")
    result = council.ask(
        "Q?", vote=True, choices=["A", "B"], stop_rule="none", weighting="confidence"
    )
    vote = result.to_dict()["vote"]
    assert vote["answer"] == "A" and vote["stop_rule"] == {"name": "none", "threshold": None}
    _split_by_confidence(fake)
    result = council.ask("Q?", vote=True, stop_rule="window", stop_threshold=2)
    assert result.to_dict()["vote"]["stop_rule"] == {"name": "window", "threshold": 2.0}
    with pytest.raises(Exception, match="no weighting"):
        council.ask("Q?", vote=True, weighting="loud")


def test_the_rule_flags_are_oracles_alone(fake):
    """A deliberation's rounds run every answer to its end: nothing to stop or weigh."""
    args = ("deliberate", "--base-url", fake.base_url, "--vote", "--stop-rule", "window")
    result = invoke(*args, "Q?")
    assert result.exit_code == 2 and "no such option --stop-rule" in result.output
    assert "--weighting" in invoke("oracle", "--help").stdout


def test_a_rule_decides_when_not_the_tally_whatever_the_arrival_order():
    """The same ballots counted in any arrival order give the same tally and winners."""
    ballots = [_ballot("a", "A", 0.6), _ballot("b", "B", 0.7), _ballot("c", "A", 0.2)]
    results = set()
    for order in itertools.permutations(ballots):
        box = BallotBox(3, ("A", "B"), order=["a", "b", "c"], weighting="confidence")
        for ballot in order:
            box.add(ballot)
        vote = box.result()
        results.add((tuple(vote.ballots), tuple(vote.weighted_tally.items()), vote.winners))
    assert len(results) == 1


# -- Universal Self-Consistency: free answers, the arbiter picks -------------------------


def test_the_arbiter_picks_the_most_consistent_free_answer(fake):
    fake.script("judge", Reply(text='{"choice": "Paris", "confidence": 0.9, "reason": "capital"}'))
    fake.script("critic", Reply(text='{"choice": "Lyon", "confidence": 0.6, "reason": "big"}'))
    fake.script("skeptic", Reply(text='{"choice": "the city of Paris", "reason": "seat"}'))
    fake.script(
        "arbiter",
        Reply(text='{"reason": "Responses 1 and 3 both name Paris", "response": "Response 3"}'),
    )
    args = ("--vote", "-s", "--stop-rule", "none", "-p", "judge,critic,skeptic")
    code, doc = oracle_json(fake, *args, "Capital of France?")
    assert code == 0
    vote = doc["vote"]
    # The exact count is a three-way tie; the arbiter's pick is the answer.
    assert vote["tally"] == {"Paris": 1, "Lyon": 1, "the city of Paris": 1}
    assert vote["answer"] == "the city of Paris" and doc["answer"]["text"] == "the city of Paris"
    assert vote["consistency"] == {
        "persona": "skeptic",
        "answer": "the city of Paris",
        "reason": "Responses 1 and 3 both name Paris",
        "asked": True,
    }
    # The arbiter saw every answer anonymously, in the council's order, and a schema.
    (request,) = fake.requests_for("arbiter")
    prompt = request.body["messages"][-1]["content"]
    assert "most consistent" in prompt and "judge" not in prompt
    assert prompt.index("Paris") < prompt.index("Lyon") < prompt.index("the city of Paris")
    schema = request.body["response_format"]["json_schema"]["schema"]["properties"]
    assert schema["response"]["enum"] == ["Response 1", "Response 2", "Response 3"]


def test_the_dry_run_says_what_the_vote_will_do(fake):
    args = ("--dry-run", "--vote", "-s", "--stop-rule", "window:4", "--weighting", "confidence")
    result = oracle(fake, *args, "-p", "judge,critic", "Capital?")
    assert result.exit_code == 0, result.output
    assert (
        "- vote: every persona gives a ballot (free answers, grouped); stops on the window 4 "
        "rule; ballots weighed by their confidence; then the arbiter picks the most "
        "consistent answer (not a synthesis)"
    ) in result.stdout
    assert fake.requests == []


def test_no_arbiter_is_asked_when_every_free_answer_is_the_same(fake):
    fake.default = Reply(text="Paris")
    code, doc = oracle_json(fake, "--vote", "-s", "-p", "judge,critic", "Capital of France?")
    assert code == 0 and doc["vote"]["answer"] == "Paris"
    assert doc["vote"]["consistency"]["asked"] is False
    assert fake.requests_for("arbiter") == []


def test_an_unreadable_pick_leaves_the_count_to_decide(fake):
    fake.script("judge", Reply(text="Paris"))
    fake.script("critic", Reply(text="paris"))
    fake.script("skeptic", Reply(text="Lyon"))
    fake.script("arbiter", Reply(text="They mostly agree."))
    args = ("--vote", "-s", "--stop-rule", "none", "-p", "judge,critic,skeptic")
    result = oracle(fake, *args, "Capital of France?")
    assert result.exit_code == 0, result.output
    assert "Paris wins with 2 of 3 ballots." in result.stdout
    assert "the arbiter's pick could not be read: the count decides" in result.stdout


def test_in_a_terminal_the_pick_shows_as_such(fake):
    from tests.test_screens import Terminal, plain

    fake.script("judge", Reply(text="Paris"))
    fake.script("critic", Reply(text="Lyon"))
    fake.script("arbiter", Reply(text='{"reason": "both fine", "response": "Response 1"}'))
    args = ["oracle", "--base-url", fake.base_url, "--vote", "-s", "--no-history"]
    with Terminal([*args, "-p", "judge,critic", "Capital?"], rows=40, cols=100) as term:
        code = term.finish()
        screen = plain(term.raw)
    assert code == 0, screen
    assert "most consistent · arbiter" in screen and "synthesis · arbiter" not in screen
    assert "Paris is the most consistent answer, picked from 2 ballots (judge's)." in screen
