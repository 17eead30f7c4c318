"""Off-policy correction between the actor's sampler and the trainer (pure tensor rules).

The actor samples with the behaviour policy b (vLLM, possibly several versions old, possibly
steered by an expert prefix); the trainer's proximal policy p is its own policy at the start of
the step (`old_logp`, one no-grad pass). Two corrections, each an option of the loss:

- **Importance weights** (`learner.tis_cap`, `learner.is_level`): each token's policy-gradient
  term is multiplied by a detached, truncated ratio p/b.
    token     w_t = min(exp(p_t - b_t), cap)                  (TIS, Yao et al. 2025)
    sequence  w   = min(exp(sum_t (p_t - b_t)), cap)          one weight for the completion
  The sequence weight is the unbiased one for a sequence-level objective, at a higher
  variance; the cap bounds it.
- **Rejection** (`learner.reject_band = [low, high]`): a completion whose geometric-mean ratio
  exp(mean_t (p_t - b_t)) falls outside the band is left out of the loss altogether (its
  tokens leave the normaliser too): a sequence the trainer finds far less, or far more, likely
  than the sampler did is one whose gradient would be dominated by the mismatch.

Rows are completions (one per row, learner/batch.py); `mask` is 1 on a row's completion tokens.
Log-ratios are clamped to +-`LOG_RATIO_CLAMP` before exp, as everywhere in the loss.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

LOG_RATIO_CLAMP = 20.0
"""Log-ratios are clamped to +-this before exp, here and in the loss (learner/algo/loss.py)."""


def _log_ratio(old_logp: Tensor, behaviour_logp: Tensor, mask: Tensor) -> Tensor:
    """p_t - b_t on masked tokens, 0 elsewhere (detached)."""
    diff = old_logp.detach().to(torch.float32) - behaviour_logp.to(torch.float32)
    return torch.where(mask, diff, torch.zeros_like(diff))


def importance_weights(old_logp: Tensor, behaviour_logp: Tensor, mask: Tensor, cap: float,
                       level: Literal["token", "sequence"] = "token"
                       ) -> tuple[Tensor, dict[str, Tensor]]:
    """Detached weights of the shape of `mask` (see the module docstring), and their metrics:
    mean weight over tokens and the share of tokens (or completions) whose weight was capped."""
    diff = _log_ratio(old_logp, behaviour_logp, mask)
    n = mask.sum()
    if level == "token":
        raw = diff.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP).exp()
        capped = mask & (raw > cap)
        share = capped.sum() / n.clamp(min=1)
    elif level == "sequence":
        rows = mask.any(dim=-1)
        raw = diff.sum(dim=-1).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP).exp()
        share = (rows & (raw > cap)).sum() / rows.sum().clamp(min=1)
        raw = raw.unsqueeze(-1).expand_as(diff)
    else:
        raise ValueError(f"level: expected token or sequence, got {level!r}")
    w = raw.clamp(max=cap).detach()
    mean = torch.where(mask, w, torch.zeros_like(w)).sum() / n.clamp(min=1)
    return w, {"tis_weight_mean": mean, "tis_clip_frac": share}


def reject_rows(old_logp: Tensor, behaviour_logp: Tensor, mask: Tensor,
                band: tuple[float, float]) -> Tensor:
    """Per row: True where the completion's geometric-mean ratio is inside `band` (rows
    without completion tokens are kept: they carry no loss anyway)."""
    diff = _log_ratio(old_logp, behaviour_logp, mask)
    count = mask.sum(dim=-1)
    mean = diff.sum(dim=-1) / count.clamp(min=1)
    ratio = mean.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP).exp()
    low, high = band
    return (count == 0) | ((ratio >= low) & (ratio <= high))
