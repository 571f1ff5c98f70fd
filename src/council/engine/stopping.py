"""When a vote may stop asking: the named stopping rules of `--vote` (`--stop-rule`).

Ballots are asked at once; "stopping" means cancelling the calls still running
(engine/vote.py). Each rule looks at the tally so far (weighted when the vote is)
and at the ballots in the order they arrived:

- `overtake`: the ballots still out cannot change the winners: the leader's total
  exceeds the runner-up's plus the most the outstanding ballots could add. Certain.
  It is the floor of `posterior` and `window`: they stop at least as soon.
- `posterior` (the default): Adaptive-Consistency's Beta rule (arXiv 2305.11860).
  With a uniform prior over the leader's share p among the two front-runners and
  totals a (leader) and b (runner-up), p ~ Beta(a+1, b+1); stop when
  P(p > 1/2) >= threshold (0.95). For whole counts that is
  P(Binomial(a+b+1, 1/2) <= a), e.g. 4-0 gives 31/32.
- `window`: Early-Stopping Self-Consistency's window (arXiv 2401.10480): stop when
  the last `threshold` ballots to arrive (3 unless given) all made the same choice.
- `none`: every ballot call runs to its end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_RULE",
    "RULES",
    "StopRule",
    "leader_probability",
    "stop_rule",
]

RULES = ("overtake", "posterior", "window", "none")
DEFAULT_RULE = "posterior"
# Each rule's threshold when none is given: a probability (posterior), a count (window).
_DEFAULT_THRESHOLD = {"posterior": 0.95, "window": 3.0}
# The Beta integral's steps (Simpson's rule), for fractional totals.
_STEPS = 400


@dataclass(frozen=True)
class StopRule:
    """A named rule and its threshold (None for the rules that take none)."""

    name: str = "overtake"
    threshold: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "threshold": self.threshold}

    def met(
        self,
        totals: Sequence[float],
        outstanding: int,
        arrivals: Sequence[str | None],
        *,
        most: float = 1.0,
    ) -> bool:
        """True when the vote may stop: `totals` the choices' totals (any order),
        `outstanding` the ballots still out, each adding at most `most`, and
        `arrivals` the choices in the order their ballots came (None: an abstention)."""
        if outstanding <= 0 or self.name == "none":
            return False  # nothing to stop, or never
        ranked = sorted(totals, reverse=True)
        leader = ranked[0] if ranked else 0.0
        runner_up = ranked[1] if len(ranked) > 1 else 0.0
        if leader > runner_up + outstanding * most:
            return True  # overtake: the floor of every rule
        if self.name == "posterior":
            return leader > runner_up and leader_probability(leader, runner_up) >= (
                self.threshold or 0.0
            )
        if self.name == "window":
            size = int(self.threshold or 0)
            last = list(arrivals[-size:])
            return size >= 2 and len(last) == size and last[0] is not None and len(set(last)) == 1
        return False


def stop_rule(name: str | None = None, threshold: float | None = None) -> StopRule:
    """The rule `name` (the default's when None; "window:4" names its threshold too) with
    its threshold checked; ValueError saying what is wrong otherwise (the app turns it
    into a usage error)."""
    name = DEFAULT_RULE if name is None else name.strip().lower()
    if ":" in name:
        name, _, given = name.partition(":")
        try:
            threshold = float(given)
        except ValueError:
            raise ValueError(f"the stopping rule's threshold {given!r} is not a number") from None
        name = name.strip() or DEFAULT_RULE
    if name not in RULES:
        raise ValueError(f"no stopping rule {name!r}; the rules are {', '.join(RULES)}")
    if threshold is None:
        return StopRule(name, _DEFAULT_THRESHOLD.get(name))
    if name == "posterior" and not 0.5 < threshold < 1:
        raise ValueError(
            f"posterior's threshold is a probability above 0.5 and below 1, not {threshold:g}"
        )
    if name == "window" and (threshold < 2 or threshold != int(threshold)):
        raise ValueError(f"window's threshold is a number of ballots, 2 or more, not {threshold:g}")
    if name in ("overtake", "none"):
        raise ValueError(f"the {name} rule takes no threshold")
    return StopRule(name, float(threshold))


def leader_probability(a: float, b: float) -> float:
    """P(p > 1/2) for p ~ Beta(a+1, b+1): how sure a uniform prior and totals a to b
    make us that the leader's true share beats the runner-up's."""
    if float(a).is_integer() and float(b).is_integer():
        n = int(a) + int(b) + 1  # exact: P(Binomial(n, 1/2) <= a)
        return sum(math.comb(n, k) for k in range(int(a) + 1)) / 2**n
    # Fractional totals (a vote weighted by confidence): 1 - the integral of the density
    # over [0, 1/2], by Simpson's rule (the density is smooth there, and 0 at 0 for a > 0).
    alpha, beta = a + 1.0, b + 1.0
    log_norm = math.lgamma(alpha + beta) - math.lgamma(alpha) - math.lgamma(beta)

    def density(x: float) -> float:
        if x <= 0.0:
            return 0.0
        return math.exp(log_norm + (alpha - 1) * math.log(x) + (beta - 1) * math.log1p(-x))

    h = 0.5 / _STEPS
    total = density(0.0) + density(0.5)
    for i in range(1, _STEPS):
        total += (4 if i % 2 else 2) * density(i * h)
    return min(1.0, max(0.0, 1.0 - total * h / 3))
