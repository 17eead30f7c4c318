"""Advantage estimators on groups of rewards, and LP weights applied to them (docs/design.md).

Rules, for group g with rewards r_g1..r_gn (one per completion of one prompt):

    GRPO       A_gi = (r_gi - mean_g) / (std_g + eps)    std_normalize = true (DeepSeekMath)
               A_gi =  r_gi - mean_g                     std_normalize = false
    Dr.GRPO    A_gi =  r_gi - mean_g                     (never the std: Liu et al. 2025)
    REINFORCE++-baseline (Hu et al. 2025; OpenRLHF `reinforce_baseline`):
               a_gi =  r_gi - mean_g                     group baseline, then over the batch
               A_gi = (a_gi - mean_B(a)) / (std_B(a) + eps)

`std_g` is the unbiased sample std (ddof = 1), as TRL and verl use for GRPO. A group of one
completion has no group-relative signal: its advantage is 0 (verl instead uses r itself;
with `learner.group_size >= 2` this only concerns degenerate groups). Equal rewards give
advantages 0 with or without std (0 / eps = 0).

REINFORCE++: OpenRLHF normalises over the batch's *tokens* (a sequence counts once per
response token); pass `lengths` to reproduce that, otherwise each completion counts once.
std_B is the population std there, as here. Because a is group-centred, mean_B(a) is 0 when
completions are weighted equally, so the batch step only rescales.

Dr.GRPO also removes length normalisation; that is an aggregation of the loss, not an
advantage: the loss sums token terms and divides by (completions x a constant max length)
instead of the token count, see `learner.algo.loss.loss_normalizer`.

LP weights multiply every advantage of their group (`apply_weights`), after the estimator:
a group's weight scales its share of the gradient, not its baseline.

`Advantages` also keeps each group's baseline and scale so that another reward can be put on
the same footing (`of_reward`, e.g. an off-policy expert completion, LUFFY-style).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Estimator = Literal["grpo", "drgrpo", "reinforce_pp"]
EPS = 1e-6
"""Added to a std before dividing by it (numeric guard, not a method constant)."""


@dataclass(frozen=True)
class Advantages:
    """Per-completion advantages of a batch of groups: `values[g][i] = (r_gi - baselines[g])
    / scales[g]`."""

    values: list[np.ndarray]
    """One float64 array per group, one entry per completion."""
    baselines: list[float]
    """What was subtracted from each group's rewards."""
    scales: list[float]
    """What each group's centred rewards were divided by (1 when not normalised)."""

    def of_reward(self, g: int, reward: float) -> float:
        """The advantage `reward` would get as a member of group `g` (baselines unchanged)."""
        return (float(reward) - self.baselines[g]) / self.scales[g]


def _arrays(groups: Sequence[Sequence[float]]) -> list[np.ndarray]:
    out = []
    for i, g in enumerate(groups):
        a = np.asarray(g, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"groups[{i}]: rewards must be finite, got {a.tolist()}")
        out.append(a)
    return out


def _group_stats(r: np.ndarray) -> tuple[float, float]:
    """(mean, unbiased std) of one group; (r, 0) for a single completion, (0, 0) for none."""
    if r.size == 0:
        return 0.0, 0.0
    if r.size == 1:
        return float(r[0]), 0.0
    return float(r.mean()), float(r.std(ddof=1))


def grpo(groups: Sequence[Sequence[float]], std_normalize: bool = True,
         eps: float = EPS) -> Advantages:
    """GRPO: reward minus group mean, divided by (group std + eps) when `std_normalize`."""
    rewards = _arrays(groups)
    values, baselines, scales = [], [], []
    for r in rewards:
        mean, std = _group_stats(r)
        scale = std + eps if std_normalize else 1.0
        values.append((r - mean) / scale)
        baselines.append(mean)
        scales.append(scale)
    return Advantages(values, baselines, scales)


def drgrpo(groups: Sequence[Sequence[float]]) -> Advantages:
    """Dr.GRPO: reward minus group mean, no std (pair with `seq_mean_token_sum_norm`)."""
    return grpo(groups, std_normalize=False)


def reinforce_pp(groups: Sequence[Sequence[float]],
                 lengths: Sequence[Sequence[int]] | None = None,
                 eps: float = EPS) -> Advantages:
    """REINFORCE++-baseline: group-mean baseline, then batch mean/std normalisation.

    `lengths[g][i]`: response tokens of completion i of group g, to weight the batch
    statistics per token as OpenRLHF does; None weighs every completion once.
    """
    centred = grpo(groups, std_normalize=False)
    if not centred.values:
        return centred
    flat = np.concatenate(centred.values)
    if lengths is None:
        w = np.ones_like(flat)
    else:
        w = np.concatenate([np.asarray(x, dtype=np.float64).reshape(-1) for x in lengths])
        if w.shape != flat.shape or np.any(w < 0):
            raise ValueError("lengths: expected one non-negative length per completion")
    total = float(w.sum())
    if total == 0.0:
        return centred
    mean = float((w * flat).sum() / total)
    std = float(np.sqrt((w * (flat - mean) ** 2).sum() / total))
    scale = std + eps
    values = [(a - mean) / scale for a in centred.values]
    baselines = [b + mean for b in centred.baselines]
    return Advantages(values, baselines, [scale] * len(values))


def compute_advantages(groups: Sequence[Sequence[float]], estimator: Estimator,
                       std_normalize: bool = True,
                       lengths: Sequence[Sequence[int]] | None = None) -> Advantages:
    """Dispatch on `learner.advantage`; `std_normalize` is GRPO's, `lengths` REINFORCE++'s."""
    if estimator == "grpo":
        return grpo(groups, std_normalize=std_normalize)
    if estimator == "drgrpo":
        return drgrpo(groups)
    if estimator == "reinforce_pp":
        return reinforce_pp(groups, lengths=lengths)
    raise ValueError(f"estimator: expected grpo, drgrpo or reinforce_pp, got {estimator!r}")


def apply_weights(advantages: Sequence[np.ndarray],
                  weights: Sequence[float] | np.ndarray) -> list[np.ndarray]:
    """Each group's advantages times that group's LP weight (new arrays)."""
    if len(advantages) != len(weights):
        raise ValueError(
            f"weights: expected one per group ({len(advantages)}), got {len(weights)}"
        )
    return [np.asarray(a, dtype=np.float64) * float(w) for a, w in zip(advantages, weights,
                                                                        strict=True)]
