"""MoPPS-style selection (`learner.selection = "thompson"`): Thompson sampling of pass rates.

Rule. Each sample keeps a Beta(alpha, beta) posterior of its unguided pass rate, starting at
the prior (`thompson.prior_alpha`, `.prior_beta`). A group that carries unguided completions
updates it, after pulling it back toward the prior by `decay` (1: no forgetting):

    alpha <- decay * alpha + (1 - decay) * prior_alpha + correct
    beta  <- decay * beta  + (1 - decay) * prior_beta  + (unguided - correct)

To choose k samples, draw theta_i ~ Beta(alpha_i, beta_i) for every candidate and take the k
whose theta is closest to `thompson.target` (0.5: the groups most likely to be neither
all-correct nor all-wrong, which carry no GRPO signal). Drawing rather than ranking by the
mean explores: a sample seen rarely has a wide posterior and is picked now and then.

Guided completions do not update the posterior (a prefix changes the pass rate; the same rule
as the unguided EMA in learner/algo/progress.py), so a sample only ever guided keeps its
prior. The posterior is per sample and plain data (the checkpoint keeps it with the draws'
generator state).
"""

from __future__ import annotations

from typing import Any

from learner.algo.select import Candidate, Feedback, Pick, Seeded, closest_first
from lppo.core.config.selection import ThompsonConfig


class Thompson(Seeded):
    name = "thompson"
    learns = True

    def __init__(self, cfg: ThompsonConfig, seed: int):
        super().__init__(seed)
        self.cfg = cfg
        self.posterior: dict[int, tuple[float, float]] = {}
        """Sample id -> (alpha, beta); absent: the prior."""

    def belief(self, sample_id: int) -> tuple[float, float]:
        return self.posterior.get(sample_id, (self.cfg.prior_alpha, self.cfg.prior_beta))

    def observe(self, feedback: Feedback) -> None:
        if feedback.unguided_total <= 0:
            return
        c, d = self.cfg, self.cfg.decay
        alpha, beta = self.belief(feedback.sample_id)
        failures = feedback.unguided_total - feedback.unguided_correct
        self.posterior[feedback.sample_id] = (
            d * alpha + (1 - d) * c.prior_alpha + feedback.unguided_correct,
            d * beta + (1 - d) * c.prior_beta + failures,
        )

    def choose(self, candidates: list[Candidate], k: int) -> list[Pick]:
        if not candidates:
            return []
        beliefs = [self.belief(c.sample_id) for c in candidates]
        theta = self.rng.beta([a for a, _ in beliefs], [b for _, b in beliefs])
        return closest_first(candidates, [float(t) for t in theta], self.cfg.target, k)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(),
                "posterior": {str(sid): list(ab) for sid, ab in self.posterior.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.posterior = {int(sid): (float(a), float(b))
                          for sid, (a, b) in state.get("posterior", {}).items()}
