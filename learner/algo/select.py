"""Which samples to dispatch next: a policy over each sample's history (`learner.selection`).

    policy = make_policy(cfg.learner, seed)
    picks = policy.choose(candidates, k)     # up to k Picks (sample id, score), best first
    policy.observe(feedback)                 # every group that updated a sample's statistics
    state = policy.state_dict()              # plain data, in the scheduler's checkpoint
    policy.load_state_dict(state)

The scheduler (learner/scheduler.py) keeps what is not a choice among samples: how many may
be dispatched (admission), one group in flight per sample, curation's rechecks and due
revisits (they go first, whatever the policy), and each item's prefix. A policy sees the
dispatchable candidates and returns which to take and the score it ranked them by; the
ledger stores both per group (`rollout_groups.selection`, `.selection_score`).

Policies and their scores:

    lppo              least recently dispatched first, never-dispatched ones in the first
                      epoch's seeded order: every sample comes back after all others (the
                      rule before policies existed). Score: dispatches since the sample's
                      last one (None: never dispatched).
    uniform           k candidates at random. Score: the uniform draw it ranked by.
    thompson          MoPPS (learner/algo/thompson.py). Score: the drawn pass rate.
    target_pass_rate  PCL's rule (learner/algo/pass_target.py). Score: the predicted rate.
    category_bandit   SEC (learner/algo/category_bandit.py). Score: the category's value.

Every policy with randomness owns a numpy Generator seeded from `run.seed` and the policy's
name, and saves its state, so a resumed run draws what the uninterrupted one would have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Candidate:
    """A dispatchable sample as a policy sees it (a copy: policies never touch the scheduler)."""

    sample_id: int
    recency: tuple
    """Sort key, smallest first: least recently dispatched, then the first epoch's order."""
    age: int | None
    """Dispatches of any sample since this one's last (None: never dispatched)."""
    ema: float | None
    """EMA of the unguided pass rate (None: never observed unguided)."""
    category: str | None = None


@dataclass(frozen=True)
class Feedback:
    """What one arrived group (neither stale nor invalid) said about its sample."""

    sample_id: int
    category: str | None
    unguided_correct: int
    """Correct completions among those sampled without a prefix."""
    unguided_total: int
    """Completions sampled without a prefix (0 for a fully guided group)."""
    abs_advantage: float
    """Mean absolute advantage of the group's completions (the run's estimator)."""


@dataclass(frozen=True)
class Pick:
    sample_id: int
    score: float | None


class Policy:
    """The interface; the base keeps no state and learns nothing."""

    name = ""
    learns = False
    """Whether `observe` uses its feedback (the scheduler builds none otherwise)."""

    def choose(self, candidates: list[Candidate], k: int) -> list[Pick]:
        raise NotImplementedError

    def observe(self, feedback: Feedback) -> None:
        """Default: nothing to learn."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Default: nothing to restore."""


class LeastRecent(Policy):
    name = "lppo"

    def choose(self, candidates: list[Candidate], k: int) -> list[Pick]:
        ranked = sorted(candidates, key=lambda c: c.recency)[:max(k, 0)]
        return [Pick(c.sample_id, None if c.age is None else float(c.age)) for c in ranked]


class Seeded(Policy):
    """A policy that draws: its Generator's state is its checkpoint state."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng([seed, _stable_hash(self.name)])

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "rng" in state:
            self.rng.bit_generator.state = state["rng"]


class Uniform(Seeded):
    name = "uniform"

    def choose(self, candidates: list[Candidate], k: int) -> list[Pick]:
        draws = self.rng.random(len(candidates))
        order = np.argsort(draws, kind="stable")[:max(k, 0)]
        return [Pick(candidates[i].sample_id, float(draws[i])) for i in order]


def closest_first(candidates: list[Candidate], values: list[float], target: float,
                  k: int) -> list[Pick]:
    """The k candidates whose value is nearest `target` (ties: least recently dispatched)."""
    order = sorted(range(len(candidates)),
                   key=lambda i: (abs(values[i] - target), candidates[i].recency))
    return [Pick(candidates[i].sample_id, float(values[i])) for i in order[:max(k, 0)]]


def _stable_hash(text: str) -> int:
    """A process-independent integer for `text` (Python's `hash` of a str is salted)."""
    return int.from_bytes(text.encode()[:8].ljust(8, b"\0"), "little")
