"""Votes and peer rankings for people: the tally, the ballots, Borda points beside answers.

Rows and lines only, shared by the rich and Markdown views (render/rich_report.py,
render/markdown.py); `--json` takes the results' own `to_dict`.
"""

from __future__ import annotations

from council.engine.ballots import choice_key
from council.engine.model import RankingResult, VoteResult
from council.engine.results import OracleResult
from council.render.format import count_label, count_of, member_where

__all__ = [
    "BALLOT_COLUMNS",
    "RANKING_COLUMNS",
    "TALLY_COLUMNS",
    "ballot_rows",
    "ranking_note",
    "ranking_rows",
    "tally_rows",
    "unread_reviews",
    "vote_headline",
    "vote_notes",
    "where_ranked",
]

TALLY_COLUMNS = ("choice", "votes", "who")
BALLOT_COLUMNS = ("persona", "choice", "confidence", "reason")
RANKING_COLUMNS = ("place", "persona", "Borda points", "ranked by each reviewer")


def vote_headline(vote: VoteResult, voters: int) -> str:
    """One line: who won and by how much, a tie as a tie, or no readable ballot."""
    read = len(vote.ballots) - len(vote.abstentions)
    if not vote.winners:
        return f"No answer: no ballot could be read ({count_of(read, voters, 'ballot')})."
    votes = vote.tally[vote.winners[0]]
    pick = vote.consistency
    if pick is not None and pick.persona is not None:
        return (
            f"{vote.winners[0]} is the most consistent answer, "
            f"picked from {count_label(read, 'ballot')} ({pick.persona}'s)."
        )
    if vote.weighted_tally:  # --weighting confidence: the weights decided, not the count
        total = sum(vote.weighted_tally.values())
        weight = vote.weighted_tally[vote.winners[0]]
        counted = f"{count_label(votes, 'ballot')} of {read}"
        if vote.tied:
            return f"Tie between {_listed(vote.winners)}: {weight:g} each by confidence."
        return f"{vote.winners[0]} wins with {weight:g} of {total:g} by confidence ({counted})."
    if vote.tied:
        each = count_label(votes, "vote")
        return (
            f"Tie between {_listed(vote.winners)}: {each} each, of {count_label(read, 'ballot')}."
        )
    return f"{vote.winners[0]} wins with {votes} of {count_label(read, 'ballot')}."


def _listed(names: tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def vote_notes(vote: VoteResult) -> list[str]:
    """What else to know: the ballots stopped once the vote was decided, the abstentions."""
    notes: list[str] = []
    if vote.decided_early:
        rule = vote.stop_rule
        named = f" ({rule.name} rule)" if rule is not None else ""
        notes.append(
            f"Decided early{named}: {count_label(len(vote.stopped), 'ballot call')} stopped "
            f"({', '.join(vote.stopped)}), about {vote.tokens_saved:,} output tokens saved "
            f"(estimated as the {vote.tokens_saved_basis})."
        )
    if vote.consistency is not None:  # Universal Self-Consistency: the arbiter's reason
        notes.append(f"Most consistent (the arbiter): {vote.consistency.reason or '–'}.")
    if vote.abstentions:
        notes.append(f"Abstained (no readable ballot): {', '.join(vote.abstentions)}.")
    return notes


def tally_rows(vote: VoteResult) -> list[tuple[str, ...]]:
    who: dict[str, list[str]] = {}
    for ballot in vote.ballots.values():
        if ballot.choice is not None:
            who.setdefault(_canonical(vote, ballot.choice), []).append(ballot.persona)
    return [(choice, str(n), ", ".join(who.get(choice, []))) for choice, n in vote.tally.items()]


def _canonical(vote: VoteResult, choice: str) -> str:
    """The tally's spelling of a ballot's choice (free answers are grouped case aside)."""
    return next((c for c in vote.tally if choice_key(c) == choice_key(choice)), choice)


def ballot_rows(vote: VoteResult) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for ballot in vote.ballots.values():
        confidence = "–" if ballot.confidence is None else f"{ballot.confidence:.2f}"
        choice = ballot.choice if ballot.choice is not None else "abstained"
        rows.append((ballot.persona, choice, confidence, ballot.reason or "–"))
    for name in vote.stopped:
        rows.append((name, "stopped", "–", "the vote was decided without this ballot"))
    return rows


def ranking_rows(ranking: RankingResult) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for place, name in enumerate(ranking.order, 1):
        places = []
        for reviewer, ranked in ranking.per_reviewer.items():
            if name in ranked:
                places.append(f"{reviewer}: {ranked.index(name) + 1}")
        rows.append((str(place), name, f"{ranking.borda[name]:g}", ", ".join(places) or "–"))
    return rows


def ranking_note(ranking: RankingResult | None, persona: str) -> str:
    """Beside an answer: its place and Borda points (empty when there is no ranking)."""
    if ranking is None or persona not in ranking.borda:
        return ""
    if not any(ranking.per_reviewer.values()):
        return "not ranked"  # no review could be read: no place to give
    place = ranking.place(persona)
    return f"#{place} of {len(ranking.order)} · Borda {ranking.borda[persona]:g}"


def unread_reviews(ranking: RankingResult) -> list[str]:
    """Reviewers whose reply named no ranking that could be read."""
    return [name for name, ranked in ranking.per_reviewer.items() if not ranked]


def where_ranked(result: OracleResult, persona: str) -> str | None:
    """Where a member was asked, and its peer-ranking place and points when ranked."""
    parts = [member_where(result.plan, persona), ranking_note(result.ranking, persona)]
    return " · ".join(p for p in parts if p) or None
