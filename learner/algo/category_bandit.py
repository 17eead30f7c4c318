"""Self-Evolving Curriculum (`learner.selection = "category_bandit"`): a bandit over categories.

Rule. The training set is split by a data field (`category_bandit.field`, e.g. MATH's `type`
or the demo's `level`). Each category c has a value Q_c (0 at first), the running estimate
of how much learning signal its groups give, updated by TD(0) from every group observed:

    r   = mean over the group's completions of |advantage|   (the run's estimator)
    Q_c <- Q_c + step_size * (r - Q_c)

An all-correct or all-wrong group has every advantage 0 (r = 0); a group that mixes right and
wrong answers has r > 0, largest near a pass rate of 0.5. To fill k slots, draw a category
with probability softmax(Q / temperature) over the categories that still have a free
candidate, take that category's least recently dispatched candidate, and repeat. SEC updates
once per batch from the batch's mean; here each group updates its category when it arrives
(the scheduler sees groups one by one), which with a small step size is the same average.

Score recorded per pick: Q of the category drawn. State: Q per category, the draws'
generator state. Candidates without a category are an error (the scheduler reads it from the
data at start and refuses rows that lack the field).
"""

from __future__ import annotations

import math
from typing import Any

from learner.algo.select import Candidate, Feedback, Pick, Seeded
from lppo.core.config.selection import CategoryBanditConfig


class CategoryBandit(Seeded):
    name = "category_bandit"
    learns = True

    def __init__(self, cfg: CategoryBanditConfig, seed: int):
        super().__init__(seed)
        self.cfg = cfg
        self.q: dict[str, float] = {}

    def observe(self, feedback: Feedback) -> None:
        if feedback.category is None:
            raise ValueError(f"category_bandit: sample {feedback.sample_id} has no category")
        q = self.q.get(feedback.category, 0.0)
        self.q[feedback.category] = q + self.cfg.step_size * (feedback.abs_advantage - q)

    def probabilities(self, categories: list[str]) -> list[float]:
        """Boltzmann probabilities of `categories` (max-subtracted for stability)."""
        values = [self.q.get(c, 0.0) / self.cfg.temperature for c in categories]
        top = max(values)
        weights = [math.exp(v - top) for v in values]
        total = sum(weights)
        return [w / total for w in weights]

    def choose(self, candidates: list[Candidate], k: int) -> list[Pick]:
        by_category: dict[str, list[Candidate]] = {}
        for c in sorted(candidates, key=lambda c: c.recency):
            if c.category is None:
                raise ValueError(f"category_bandit: sample {c.sample_id} has no category")
            by_category.setdefault(c.category, []).append(c)
        picks: list[Pick] = []
        while len(picks) < k and by_category:
            names = sorted(by_category)
            drawn = names[int(self.rng.choice(len(names), p=self.probabilities(names)))]
            queue = by_category[drawn]
            picks.append(Pick(queue.pop(0).sample_id, self.q.get(drawn, 0.0)))
            if not queue:
                del by_category[drawn]
        return picks

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "q": dict(self.q)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.q = {str(c): float(v) for c, v in state.get("q", {}).items()}
