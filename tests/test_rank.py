"""`--rank`: anonymous, per-reviewer shuffled peer review, read leniently, counted by Borda."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from council.engine.ranking import borda, labels, ranking_result, read_ranking, shuffled_for
from tests.fake_openai import Reply
from tests.helpers import history_rows, oracle, oracle_json

QUESTION = "Which queue should we use for the billing events?"
PERSONAS = ("judge", "skeptic", "optimist", "pragmatist")
# Answers that do not name their authors: the labels alone must not give them away.
ANSWERS = {
    "judge": "Use Kafka: durable, replayable, and the team runs it already.",
    "skeptic": "Use a Postgres table as a queue until the volume says otherwise.",
    "optimist": "Use SQS: managed, cheap at this volume, nothing to operate.",
    "pragmatist": "Use RabbitMQ: simple routing, and it is in the stack today.",
}
FIRST_TO_LAST = "Some thoughts.\n\nFINAL RANKING:\n1. Response A\n2. Response B\n3. Response C"

# -- reading a ranking ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        "A is thin; C is best.\nFINAL RANKING:\n1. Response C\n2. Response A\n3. Response B",
        "final ranking: C > A > B",
        '{"ranking": ["Response C", "A", "B"]}',
        '```json\n{"ranking": ["C", "A", "B"]}\n```',
        "My order:\n1. C\n2. A\n3. B",
        "FINAL RANKING:\n1. Response C\n2. Response A\n3. Response C\n4. Response Z\n5. Response B",
    ],
)
def test_a_ranking_is_read_from_every_usual_shape(reply):
    assert read_ranking(reply, ["A", "B", "C"]) == ["C", "A", "B"]


def test_an_unreadable_ranking_is_empty():
    assert read_ranking("They are all fine answers.", ["A", "B", "C"]) == []


def test_labels_go_past_z():
    assert labels(3) == ["A", "B", "C"]
    assert labels(28)[25:] == ["Z", "AA", "AB"]


# -- Borda ------------------------------------------------------------------------------------


def test_borda_gives_n_minus_2_down_to_0_and_stretches_short_rankings():
    reviewed = ["a", "b", "c", "d"]  # n = 4: a full review ranks 3 and gives 2, 1, 0
    rankings = {
        "a": ("b", "c", "d"),
        "b": ("a", "c", "d"),
        "c": ("b", "a", "d"),
        "d": ("b", "a"),  # ranked only two: 2 and 0, "c" left out gets 0
    }
    points = borda(rankings, reviewed)
    assert points == {"a": 2 + 1 + 0, "b": 2 + 2 + 2, "c": 1 + 1, "d": 0}
    result = ranking_result(rankings, reviewed, {}, seed=1)
    assert result.order == ("b", "a", "c", "d")
    assert result.place("b") == 1


@given(st.integers(min_value=3, max_value=9), st.randoms(use_true_random=False))
def test_full_reviews_hand_out_the_classic_borda_total(n, rng):
    reviewed = [f"p{i}" for i in range(n)]
    rankings = {}
    for reviewer in reviewed:
        others = [p for p in reviewed if p != reviewer]
        rng.shuffle(others)
        rankings[reviewer] = tuple(others)
    points = borda(rankings, reviewed)
    # Each of n reviewers hands out 0 + 1 + ... + (n - 2) points.
    assert sum(points.values()) == pytest.approx(n * (n - 2) * (n - 1) / 2)
    assert all(0 <= p <= (n - 1) * (n - 2) for p in points.values())


@given(st.lists(st.sampled_from("abcdef"), unique=True, min_size=1, max_size=5))
def test_a_partial_ranking_gives_at_most_what_a_full_one_gives(ranked):
    reviewed = list("abcdef")
    points = borda({"r": tuple(ranked)}, reviewed)
    assert max(points.values()) == pytest.approx(len(reviewed) - 2)
    assert points[ranked[0]] == max(points.values())


def test_shuffles_are_seeded_and_differ_per_reviewer():
    others = ["a", "b", "c", "d", "e"]
    assert shuffled_for("judge", others, 7) == shuffled_for("judge", others, 7)
    orders = {tuple(shuffled_for(name, others, 7)) for name in ("r1", "r2", "r3", "r4")}
    assert len(orders) > 1


# -- oracle --rank against the fake server ------------------------------------------------------


def _script_answers(fake, review: str = FIRST_TO_LAST) -> None:
    for name, text in ANSWERS.items():
        fake.script(name, Reply(text=text), round=1)
        fake.script(name, Reply(text=review), round=2)


def _review_message(fake, reviewer: str) -> dict:
    # Round 2: the review the ranking counts (round 3 holds --rank's bias checks).
    (request,) = [r for r in fake.requests_for(reviewer) if r.round == "2"]
    return request.body


def _system_prompt(fake, persona: str) -> str:
    """The persona's own system prompt, as its answer call (round 1) sent it."""
    (request,) = [r for r in fake.requests_for(persona) if r.body["messages"][-1]["content"]
                  == QUESTION]  # fmt: skip
    return request.body["messages"][0]["content"]


def _shown_in_message(content: str) -> list[str]:
    """The personas whose answers the message shows, in label order."""
    by_text = {text: name for name, text in ANSWERS.items()}
    blocks = re.findall(r'<response label="Response ([A-Z])">\n(.*?)\n</response>', content, re.S)
    assert [label for label, _ in blocks] == labels(len(blocks))
    return [by_text[text] for _, text in blocks]


def test_each_reviewer_sees_the_others_anonymised_and_shuffled_for_it(fake):
    _script_answers(fake)
    code, doc = oracle_json(fake, "--rank", "-o", "seed", "7", "-p", ",".join(PERSONAS), QUESTION)
    assert code == 0
    ranking = doc["ranking"]
    assert ranking["seed"] == 7
    orders = []
    for reviewer in PERSONAS:
        body = _review_message(fake, reviewer)
        system, user = body["messages"]
        # Its own system prompt (the reviewer reviews as itself); never its own answer,
        # and the others' answers under labels only, never by name.
        assert system["content"] == _system_prompt(fake, reviewer)
        assert ANSWERS[reviewer] not in user["content"]
        for other in PERSONAS:
            if other != reviewer:
                assert not re.search(rf"\b{other}\b", user["content"], re.IGNORECASE)
        shown = _shown_in_message(body["messages"][-1]["content"])
        assert sorted(shown) == sorted(p for p in PERSONAS if p != reviewer)
        assert ranking["shown"][reviewer] == shown  # the recorded order is the one sent
        orders.append(shown)
    # Shuffled separately: not every reviewer sees the others in the council's order.
    plan_order = [[p for p in PERSONAS if p != r] for r in PERSONAS]
    assert orders != plan_order


def test_borda_points_come_from_the_reviews_and_stand_beside_each_answer(fake):
    _script_answers(fake)  # every reviewer ranks the responses in the order shown
    code, doc = oracle_json(fake, "--rank", "-o", "seed", "3", "-p", ",".join(PERSONAS), QUESTION)
    assert code == 0
    ranking = doc["ranking"]
    assert set(ranking) == {"order", "borda", "per_reviewer", "shown", "seed"}
    assert doc["vote"] is None and len(doc["reviews"]) == len(PERSONAS)
    assert ranking["per_reviewer"] == ranking["shown"]
    expected = dict.fromkeys(PERSONAS, 0.0)
    for shown in ranking["shown"].values():
        for place, name in enumerate(shown):
            expected[name] += len(shown) - 1 - place  # n - 2 = 2 for the first, 1, 0
    assert ranking["borda"] == expected
    assert ranking["order"] == sorted(PERSONAS, key=lambda p: (-expected[p], PERSONAS.index(p)))
    _script_answers(fake)
    markdown = oracle(fake, "--rank", "-o", "seed", "3", "-p", ",".join(PERSONAS), QUESTION)
    best = ranking["order"][0]
    assert f"#1 of 4 · Borda {expected[best]:g}" in markdown.stdout
    assert "## Peer ranking (anonymous, Borda count)" in markdown.stdout


def test_the_same_seed_gives_the_same_labels(fake):
    _script_answers(fake)
    _, first = oracle_json(fake, "--rank", "-o", "seed", "11", "-p", ",".join(PERSONAS), QUESTION)
    _script_answers(fake)
    _, again = oracle_json(fake, "--rank", "-o", "seed", "11", "-p", ",".join(PERSONAS), QUESTION)
    assert first["ranking"]["shown"] == again["ranking"]["shown"]


def test_ranking_calls_are_round_2_reviewers_in_the_events_and_history(fake):
    _script_answers(fake)
    result = oracle(fake, "--jsonl", "--rank", "-o", "seed", "1", "-p", ",".join(PERSONAS), "Q?")
    assert result.exit_code == 0
    events = [json.loads(line) for line in result.stdout.splitlines()]
    started = [e for e in events if e["type"] == "call_started" and e["role"] == "reviewer"]
    assert sorted(e["persona"] for e in started) == sorted(PERSONAS)
    assert {e["round"] for e in started} == {2}
    rows = history_rows("SELECT persona, round, status FROM calls WHERE role = 'reviewer'")
    assert sorted((r["persona"], r["round"], r["status"]) for r in rows) == [
        (p, 2, "answered") for p in sorted(PERSONAS)
    ]


def test_synthesize_hands_the_ranking_to_the_arbiter(fake):
    _script_answers(fake)
    fake.script("arbiter", Reply(text="Use Kafka."))
    code, doc = oracle_json(
        fake, "--rank", "-s", "-o", "seed", "5", "-p", ",".join(PERSONAS), QUESTION
    )
    assert code == 0
    (request,) = fake.requests_for("arbiter")
    content = request.body["messages"][-1]["content"]
    order = doc["ranking"]["order"]
    assert "ranked each other's answers anonymously" in content
    assert f"1. {order[0]} ({doc['ranking']['borda'][order[0]]:g} points)" in content
    assert content.index(f"1. {order[0]}") < content.index(f"4. {order[3]}")


def test_an_unreadable_or_failed_review_is_left_out_and_said(fake):
    _script_answers(fake)
    fake.reset()
    for name, text in ANSWERS.items():
        fake.script(name, Reply(text=text), round=1)
    fake.script("judge", Reply(text="They all have merit."), round=2)
    fake.script("skeptic", Reply(status=400, error_message="bad"), round=2)
    for name in ("optimist", "pragmatist"):
        fake.script(name, Reply(text=FIRST_TO_LAST), round=2)
    code, doc = oracle_json(fake, "--rank", "-o", "seed", "2", "-p", ",".join(PERSONAS), QUESTION)
    assert code == 3  # a ranking call failed: partial
    assert doc["ranking"]["per_reviewer"]["judge"] == []
    assert "skeptic" not in doc["ranking"]["per_reviewer"]
    assert [r["persona"] for r in doc["reviews"] if "error_kind" in r] == ["skeptic"]
    assert sum(doc["ranking"]["borda"].values()) == 2 * (0 + 1 + 2)  # two reviews counted


def test_rank_needs_three_personas(fake):
    result = oracle(fake, "--rank", "-p", "judge,skeptic", QUESTION)
    assert result.exit_code == 2
    assert "--rank needs at least 3 personas" in result.output
    assert fake.requests == []


def test_dry_run_shows_the_seed_and_a_review_call(fake):
    result = oracle(fake, "--dry-run", "--rank", "-o", "seed", "4", "-p", ",".join(PERSONAS), "Q")
    assert result.exit_code == 0
    assert "shuffled for each (seed 4)" in result.stdout
    assert "judge (ranking)" in result.stdout and 'label="Response A"' in result.stdout
    dry = oracle(fake, "--dry-run", "--json", "--rank", "-o", "seed", "4", "-p", "judge,a,b", "Q")
    assert dry.exit_code in (0, 2)  # unknown personas may be refused; the seed is the point


def test_verbose_lists_the_ranking_calls_with_the_others(fake):
    import io

    from council.app.run import run_oracle
    from council.config.personas import PersonaCatalog
    from council.engine.plan import build_oracle_plan
    from council.render import OutputMode
    from tests.helpers import resolved_endpoint

    _script_answers(fake)
    plan = build_oracle_plan(
        query=QUESTION,
        personas=PersonaCatalog.discover().resolve(list(PERSONAS)),
        endpoint=resolved_endpoint(fake.base_url),
        rank=True,
        rank_seed=9,
    )
    out = io.StringIO()
    assert run_oracle(plan, OutputMode.RICH, stdout=out, show_live=False, verbose=True) == 0
    text = out.getvalue()
    assert all(f"{name} (ranking)" in text for name in PERSONAS)
    assert "peer ranking (anonymous, Borda count)" in text
