"""Per-sample statistics, learning progress and LP weights (LPPO's LP-weighting; docs/design.md).

Rule. Every sample keeps an exponential moving average of its *unguided* group pass rate:

    ema_t = beta * ema_{t-1} + (1 - beta) * p_t        (the first observation sets ema_0 = p_0)
    d_t   = ema_t - ema_{t-1}                          (learning progress; 0 on the first one)
    w     = b + sigmoid(kappa * d_t)                   (LP weight; b = 0.5 gives w = 1 at d = 0)

optionally rescaled so that the weights of one training batch have mean 1 (the batch's
overall step size is then that of plain GRPO; only the split between samples changes).
`lp.enabled = false` gives every group weight 1.

Why. A sample whose pass rate is moving is one the policy is learning right now; weighting its
group up spends the gradient where it changes behaviour, while stalled (d ~ 0) samples keep
weight ~1 and regressing ones (d < 0) get less. The sigmoid bounds the weight to
(b, b + 1) so one noisy group cannot dominate a batch.

Guided groups (a prefix of the expert solution in the context) do not measure the policy's
own ability: their pass rate updates the sample's guided statistics (history, counters used by
PG-sampling and curation), never the unguided EMA. A mixed group (some completions guided,
some not: `pg.guided_share`) updates both, the unguided part first.

Which progress weights a group (`lp.signal`, `weighting_progress`):

    current    d_t of this very group, 0 for a guided group (LPPO's formula). At one or two
               visits per sample this is 0 or is made of the group it weights, so it mostly
               up-weights groups that happened to score high this time.
    lagged     d_{t-1}: the sample's progress before this group, for guided groups too.
    fast_slow  fast EMA (`lp.beta_fast`) minus the EMA (`lp.beta`), both before this group:
               a trend over several visits, as in learning-progress curricula.

The last two never contain the group they weight, so a lucky group is not rewarded twice.

`SampleStats` is a frozen value; `update` returns a new one (pure), so the scheduler can keep
it in a dict, checkpoint it (`to_dict` / `from_dict`) and write it to the ledger as is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from lppo.core.config.schema import LPConfig, LPPOConfig

GUIDED_HISTORY = 8
"""Guided pass rates kept in `SampleStats.guided_history` (a record for the ledger and the
dashboard; no rule reads more than the last one)."""

RATIO_TOL = 1e-6
"""Two prefix ratios closer than this are equal (ratios move in float steps of 0.1)."""


@dataclass(frozen=True)
class SampleStats:
    """What the learner knows about one sample, after the groups it has seen so far."""

    attempts: int = 0
    """Unguided groups observed."""
    ema: float | None = None
    """EMA of the unguided pass rate (None before the first unguided group)."""
    ema_fast: float | None = None
    """Fast EMA of the unguided pass rate (`lp.beta_fast`), for `lp.signal = "fast_slow"`."""
    prev_ema: float | None = None
    """EMA before the last unguided group (None until the second unguided group)."""
    progress: float = 0.0
    """Learning progress `ema - prev_ema` of the last unguided group (0 on the first)."""
    last_pass_rate: float | None = None
    """Pass rate of the last unguided group."""
    guided_attempts: int = 0
    """Guided groups observed."""
    guided_history: tuple[float, ...] = ()
    """Pass rates of the last `GUIDED_HISTORY` guided groups, oldest first."""
    last_guided_pass_rate: float | None = None
    """Pass rate of the last guided group."""
    last_ratio: float = 0.0
    """Prefix ratio of the most recent group (0: it was unguided). PG-sampling reads it."""
    consecutive_solved: int = 0
    """Consecutive all-correct unguided groups (reset by an unguided group with a failure)."""
    consecutive_failed_at_max: int = 0
    """Consecutive all-wrong guided groups at the largest prefix ratio (reset by any other
    group)."""

    @property
    def seen(self) -> bool:
        """Whether any group (guided or not) has been observed."""
        return self.attempts + self.guided_attempts > 0

    @property
    def last_group_pass_rate(self) -> float | None:
        """Pass rate of the most recent group, guided or not (None before any)."""
        return self.last_guided_pass_rate if self.last_ratio > 0 else self.last_pass_rate

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (checkpoints, ledger meta)."""
        out = asdict(self)
        out["guided_history"] = list(self.guided_history)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampleStats:
        """Inverse of `to_dict`; unknown keys are errors."""
        data = dict(data)
        data["guided_history"] = tuple(data.get("guided_history", ()))
        return cls(**data)


def _check_rate(pass_rate: float) -> float:
    p = float(pass_rate)
    if not 0.0 <= p <= 1.0 or math.isnan(p):
        raise ValueError(f"pass_rate: expected 0 <= p <= 1, got {pass_rate}")
    return p


def ema_step(ema: float | None, pass_rate: float, beta: float) -> tuple[float, float]:
    """(new ema, progress) after observing `pass_rate`; `ema=None` initialises (progress 0)."""
    p = _check_rate(pass_rate)
    if ema is None:
        return p, 0.0
    new = beta * ema + (1.0 - beta) * p
    return new, new - ema


def at_max_ratio(ratio: float, max_ratio: float) -> bool:
    """Whether `ratio` is the largest prefix ratio (within float tolerance)."""
    return ratio >= max_ratio - RATIO_TOL


def update(stats: SampleStats, pass_rate: float, guided: bool, cfg: LPPOConfig,
           ratio: float = 0.0) -> SampleStats:
    """The sample's statistics after one group with `pass_rate` (n_correct / n).

    `guided`: the group was dispatched with a prefix ratio `ratio` > 0; the unguided EMA is
    then left alone. Pass `guided=True` even when the cut came out empty (a solution whose
    answer is on its first line): the ratio still climbs to `pg.max_ratio` and the sample can
    be parked instead of failing unguided forever. Unguided groups move the EMAs and the
    all-correct streak used to retire samples.
    """
    p = _check_rate(pass_rate)
    if guided:
        if ratio <= 0.0:
            raise ValueError(f"ratio: a guided group needs the prefix ratio > 0, got {ratio}")
        failed_at_max = p == 0.0 and at_max_ratio(ratio, cfg.pg.max_ratio)
        return replace(
            stats,
            guided_attempts=stats.guided_attempts + 1,
            guided_history=(*stats.guided_history, p)[-GUIDED_HISTORY:],
            last_guided_pass_rate=p,
            last_ratio=float(ratio),
            consecutive_failed_at_max=stats.consecutive_failed_at_max + 1 if failed_at_max else 0,
        )
    ema, progress = ema_step(stats.ema, p, cfg.lp.beta)
    return replace(
        stats,
        attempts=stats.attempts + 1,
        prev_ema=stats.ema,
        ema=ema,
        ema_fast=ema_step(stats.ema_fast, p, cfg.lp.beta_fast)[0],
        progress=progress,
        last_pass_rate=p,
        last_ratio=0.0,
        consecutive_solved=stats.consecutive_solved + 1 if p == 1.0 else 0,
        consecutive_failed_at_max=0,
    )


def weighting_progress(before: SampleStats, after: SampleStats, guided: bool,
                       cfg: LPConfig) -> float:
    """The progress that weights a group (`lp.signal`, see the module docstring): `before` and
    `after` are the sample's statistics around the group; `guided`: it had a prefix (a mixed
    group counts as guided)."""
    if cfg.signal == "current":
        return 0.0 if guided else after.progress
    if cfg.signal == "lagged":
        return before.progress
    if before.ema_fast is None or before.ema is None:
        return 0.0
    return before.ema_fast - before.ema


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def lp_weight(progress: float, cfg: LPConfig) -> float:
    """`b + sigmoid(kappa * progress)`, or 1 when LP weighting is off."""
    if not cfg.enabled:
        return 1.0
    return cfg.bias + _sigmoid(cfg.kappa * float(progress))


def renormalize(weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """`weights / mean(weights)`: a batch's weights with mean 1. Empty stays empty; weights that
    are all 0 (only possible with b = 0 and sigmoid underflow) become all 1."""
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0:
        return w
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError(f"weights: expected finite non-negative values, got {w.tolist()}")
    mean = float(w.mean())
    return np.ones_like(w) if mean == 0.0 else w / mean


def batch_weights(progresses: Sequence[float], cfg: LPConfig) -> np.ndarray:
    """LP weights of one training batch's groups, renormalised to mean 1 if `cfg.renormalize`.

    All 1 when `cfg.enabled` is false. `progresses[i]` is `weighting_progress(...)` of
    group i.
    """
    if not cfg.enabled:
        return np.ones(len(progresses), dtype=np.float64)
    w = np.array([lp_weight(d, cfg) for d in progresses], dtype=np.float64)
    return renormalize(w) if cfg.renormalize else w
