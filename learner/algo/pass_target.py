"""Pass-rate targeting (`learner.selection = "target_pass_rate"`), after Prompt Curriculum
Learning.

Rule. Predict each candidate's pass rate and take the k closest to `target_pass_rate.target`
(0.5 by default: the prompts whose groups are most likely to mix right and wrong answers);
ties go to the least recently dispatched. PCL learns a value model for the prediction; here it
is what the ledger already keeps: the sample's EMA of its unguided pass rate (`lppo.lp.beta`,
learner/algo/progress.py), or `target_pass_rate.prior_rate` for a sample never observed
unguided. Deterministic: no draws, no state of its own (the EMA lives in the sample's
statistics and its checkpoint).

Known limit: a sample whose EMA sits far from the target (solved, or never solved unguided) is
only dispatched when nothing closer is free; curation's revisits and rechecks still bring it
back.
"""

from __future__ import annotations

from learner.algo.select import Candidate, Pick, Policy, closest_first
from lppo.core.config.selection import TargetPassRateConfig


class TargetPassRate(Policy):
    name = "target_pass_rate"

    def __init__(self, cfg: TargetPassRateConfig):
        self.cfg = cfg

    def predicted(self, c: Candidate) -> float:
        return self.cfg.prior_rate if c.ema is None else c.ema

    def choose(self, candidates: list[Candidate], k: int) -> list[Pick]:
        values = [self.predicted(c) for c in candidates]
        return closest_first(candidates, values, self.cfg.target, k)
