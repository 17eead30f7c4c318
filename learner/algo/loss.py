"""Token-level PPO clipped loss against the actor's behaviour log-probs (docs/design.md).

Rule, per policy token t of a completion with advantage A (mask `loss_mask` = 1):

    ratio_t = exp(logp_t - base_t)           base = old_logp if given, else behaviour_logp
    pg_t    = -min(ratio_t * A, clip(ratio_t, 1 - clip_low, 1 + clip_high) * A)
    pg_t   *= w_t = min(exp(old_logp_t - behaviour_logp_t), tis_cap)   (TIS; w detached;
              one weight per completion with is_level = "sequence": learner/algo/offpolicy.py)
    kl_t    = exp(ref_t - logp_t) - (ref_t - logp_t) - 1                (k3, weight kl_coef)
    loss    = sum_t mask_t * (pg_t + kl_coef * kl_t) / normalizer

Clip-higher (DAPO) is `clip_high > clip_low`. The log-ratio is clamped to [-20, 20] before
exp (as verl does), so a wildly off-policy token cannot overflow; outside that range it
carries no gradient.

Truncated importance sampling (Yao et al. 2025, "Your efficient RL framework secretly brings
you off-policy RL training"; verl `tis_imp_ratio_cap`). The actor's sampler (vLLM, other
kernels, bf16) is not the trainer's policy even at the same weights. TIS takes the PPO ratio
against the trainer's own log-probs at the start of the step (`old_logp`, computed without
grad before the first update) and multiplies each token's term by the truncated, detached
ratio trainer/sampler. So `tis_cap` requires `old_logp`. Without TIS, `old_logp` (if given)
is only the PPO ratio's base; without it the base is the behaviour log-probs (one update per
batch, as PipelineRL/AReaL without a recompute).

Prefix tokens (the expert's hint) are not the policy's: `loss_mask` is 0 on them. With
`pg.off_policy_loss`, LUFFY's (Yan et al. 2025) off-policy term is added on tokens with
`prefix_mask` = 1, with p = exp(logp) the current probability and no clip, no behaviour ratio
(the expert's probability is taken as 1):

    off_t = -p_t / (p_t + gamma) * A        (gamma = pg.off_policy_gamma, LUFFY's 0.1)

whose gradient gamma * p / (p + gamma)^2 * grad log p favours low-probability expert tokens.
Which A: a prefix is shared by the n completions of its group and its log-probs are equal in
all of them (same context), so with each sequence's own group-centred advantage the n terms
cancel exactly (sum_i A_i = 0). The trainer should therefore count the prefix once per group
with the advantage the expert's correct solution would get in it,
`Advantages.of_reward(g, reward_correct) * lp_weight` (LUFFY's choice for expert traces).

With `pg.sft_coef`, a supervised term on the prefix tokens of guided groups that passed
(UFT / TRAPO-style; the weight, LP weight included, comes per token in `sft_weights`):

    sft_t = -w_t * logp_t

Aggregation. `normalizer` is the denominator for the *whole* optimizer batch (all
micro-batches, all ranks), so that micro-batch losses add up to the batch loss:

    token_mean                 normalizer = loss tokens (+ prefix tokens when a prefix term
                               is on: off-policy or supervised)
    seq_mean_token_sum_norm    normalizer = completions x max_tokens   (Dr.GRPO: a constant
                               per completion, no bias toward short or long answers)

`loss_normalizer` computes it; without one the loss divides by this call's own token count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from learner.algo.offpolicy import LOG_RATIO_CLAMP, importance_weights
from lppo.core.config.schema import LearnerConfig, PGConfig

Aggregation = Literal["token_mean", "seq_mean_token_sum_norm"]


@dataclass(frozen=True)
class LossSettings:
    """The loss's constants (from `learner.*` and `lppo.pg.*`)."""

    clip_low: float = 0.2
    """Ratio clipped below at 1 - clip_low."""
    clip_high: float = 0.28
    """Ratio clipped above at 1 + clip_high."""
    tis_cap: float | None = None
    """Truncated importance sampling cap; None: off."""
    kl_coef: float = 0.0
    """Weight of the k3 KL to the reference; 0: off."""
    off_policy: bool = False
    """LUFFY-style term on prefix tokens."""
    off_policy_gamma: float = 0.1
    """gamma of the off-policy shaping p / (p + gamma)."""
    sft: bool = False
    """Supervised term on prefix tokens (`pg.sft_coef > 0`; the weights come per token)."""
    is_level: Literal["token", "sequence"] = "token"
    """TIS weight per token, or one per completion (learner/algo/offpolicy.py)."""

    @property
    def prefix_terms(self) -> bool:
        """Whether prefix tokens carry any term (and count in the normaliser)."""
        return self.off_policy or self.sft

    @classmethod
    def from_config(cls, learner: LearnerConfig, pg: PGConfig) -> LossSettings:
        return cls(
            clip_low=learner.clip_low, clip_high=learner.clip_high, tis_cap=learner.tis_cap,
            is_level=learner.is_level,
            kl_coef=learner.kl_coef, off_policy=pg.enabled and pg.off_policy_loss,
            off_policy_gamma=pg.off_policy_gamma, sft=pg.enabled and pg.sft_coef > 0.0,
        )


def aggregation_for(learner: LearnerConfig) -> Aggregation:
    """`learner.loss_agg` with `auto` resolved (Dr.GRPO -> seq_mean_token_sum_norm)."""
    if learner.loss_agg != "auto":
        return learner.loss_agg
    return "seq_mean_token_sum_norm" if learner.advantage == "drgrpo" else "token_mean"


def loss_normalizer(mode: Aggregation, num_tokens: int, num_seqs: int, max_len: int) -> float:
    """The batch-wide denominator: `num_tokens` (token_mean) or `num_seqs * max_len`.

    Counts are over the whole optimizer batch; 0 for an empty batch (the loss is then 0).
    """
    if mode == "token_mean":
        return float(num_tokens)
    if mode == "seq_mean_token_sum_norm":
        if max_len <= 0:
            raise ValueError(f"max_len: expected > 0, got {max_len}")
        return float(num_seqs * max_len)
    raise ValueError(f"mode: expected token_mean or seq_mean_token_sum_norm, got {mode!r}")


def _masked_mean(x: Tensor, mask: Tensor, n: Tensor) -> Tensor:
    return torch.where(mask, x, torch.zeros_like(x)).sum() / n.clamp(min=1)


COUNT_METRICS = frozenset({"tokens", "off_policy_tokens", "sft_tokens"})
"""Metrics that count tokens: a batch's value is the sum over its micro-batches (the others
are means, which a trainer averages weighted by each micro-batch's tokens)."""


def _metrics(ratio: Tensor, log_ratio: Tensor, adv: Tensor, pg: Tensor, mask: Tensor,
             s: LossSettings) -> dict[str, Tensor]:
    n = mask.sum()
    low = mask & (adv < 0) & (ratio < 1.0 - s.clip_low)
    high = mask & (adv > 0) & (ratio > 1.0 + s.clip_high)
    return {
        "tokens": n.float(),
        "pg_loss": _masked_mean(pg, mask, n),
        "ratio_mean": _masked_mean(ratio, mask, n),
        "approx_kl": _masked_mean(ratio - 1.0 - log_ratio, mask, n),
        "clip_frac_low": low.sum() / n.clamp(min=1),
        "clip_frac_high": high.sum() / n.clamp(min=1),
        "clip_frac": (low | high).sum() / n.clamp(min=1),
    }


@dataclass(frozen=True)
class LossInputs:
    """The per-token tensors of one (micro-)batch, all of one shape ([B, T] or any other);
    `advantages` may also be [B] (one per sequence). Values under a 0 mask are ignored (may be
    anything, even inf)."""

    logp: Tensor
    """The policy's log-probs of the targets, with grad (`learner/algo/logprobs.py`)."""
    behaviour_logp: Tensor
    """The actor's log-probs of the sampled tokens (completion positions)."""
    advantages: Tensor
    loss_mask: Tensor
    """1 on completion tokens (the policy's own)."""
    old_logp: Tensor | None = None
    """The trainer's log-probs before this step's update (needed by `tis_cap`)."""
    ref_logp: Tensor | None = None
    """The reference model's log-probs (needed by `kl_coef > 0`)."""
    prefix_mask: Tensor | None = None
    """1 on the prefix tokens that carry their group's prefix terms."""
    sft_weights: Tensor | None = None
    """The supervised term's weight per prefix token."""
    entropy: Tensor | None = None
    """Per-token entropy (`learner/algo/logprobs.py`), only reported."""


def ppo_loss(x: LossInputs, settings: LossSettings,
             normalizer: float | None = None) -> tuple[Tensor, dict[str, float]]:
    """The loss of one (micro-)batch and its metrics (see the module docstring).

    `normalizer`: the batch-wide denominator (`loss_normalizer`); None: this call's own token
    count. Metrics are means over this call's loss tokens, plus `tokens`, so the caller can
    weight them across micro-batches.
    """
    logp, behaviour_logp, old_logp, prefix_mask = x.logp, x.behaviour_logp, x.old_logp, x.prefix_mask
    mask = x.loss_mask.bool()
    adv = x.advantages.to(logp.dtype)
    if adv.dim() == logp.dim() - 1:
        adv = adv.unsqueeze(-1)
    adv = adv.expand_as(logp)
    detached = logp.detach()
    base = behaviour_logp if old_logp is None else old_logp
    base = torch.where(mask, base.detach().to(logp.dtype), detached)
    log_ratio = (logp - base).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    ratio = log_ratio.exp()
    clipped = ratio.clamp(1.0 - settings.clip_low, 1.0 + settings.clip_high)
    pg = -torch.minimum(ratio * adv, clipped * adv)
    extra: dict[str, Tensor] = {}
    if settings.tis_cap is not None:
        if old_logp is None:
            raise ValueError("tis_cap needs old_logp (the trainer's log-probs before the update)")
        w, extra = importance_weights(old_logp, behaviour_logp, mask, settings.tis_cap,
                                      settings.is_level)
        pg = pg * w.to(pg.dtype)
    tok = pg
    if settings.kl_coef > 0.0:
        kl = _k3(logp, x.ref_logp, mask)
        tok = tok + settings.kl_coef * kl
        extra["kl_ref"] = _masked_mean(kl.detach(), mask, mask.sum())
    total = torch.where(mask, tok, torch.zeros_like(tok)).sum()
    count = mask.sum()
    if settings.prefix_terms and prefix_mask is not None:
        pmask = prefix_mask.bool()
        count = count + pmask.sum()
        if settings.off_policy:
            off, off_metrics = _off_policy(logp, adv, pmask, settings.off_policy_gamma)
            total = total + off
            extra.update(off_metrics)
        if settings.sft and x.sft_weights is not None:
            sft, sft_metrics = _supervised(logp, x.sft_weights.to(logp.dtype), pmask)
            total = total + sft
            extra.update(sft_metrics)
    denom = float(count) if normalizer is None else float(normalizer)
    loss = total / denom if denom > 0 else total * 0.0
    with torch.no_grad():
        metrics = _metrics(ratio.detach(), log_ratio.detach(), adv, pg.detach(), mask, settings)
        metrics.update(extra)
        if x.entropy is not None:
            metrics["entropy"] = _masked_mean(x.entropy.detach().float(), mask, mask.sum())
        names = list(metrics)
        values = torch.stack([metrics[k].float().reshape(()) for k in names]).tolist()
    return loss, dict(zip(names, values, strict=True))


def _k3(logp: Tensor, ref_logp: Tensor | None, mask: Tensor) -> Tensor:
    """k3 estimator of KL(policy || reference) per token: exp(d) - d - 1, d = ref - logp."""
    if ref_logp is None:
        raise ValueError("kl_coef > 0 needs ref_logp (the reference model's log-probs)")
    ref = torch.where(mask, ref_logp.to(logp.dtype), logp.detach())
    d = (ref - logp).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    return d.exp() - d - 1.0


def _off_policy(logp: Tensor, adv: Tensor, pmask: Tensor,
                gamma: float) -> tuple[Tensor, dict[str, Tensor]]:
    """Sum over prefix tokens of -p / (p + gamma) * A, and its metrics."""
    p = torch.where(pmask, logp, torch.zeros_like(logp)).exp()
    term = -(p / (p + gamma)) * adv
    n = pmask.sum()
    return torch.where(pmask, term, torch.zeros_like(term)).sum(), {
        "off_policy_tokens": n.float(),
        "off_policy_prob_mean": _masked_mean(p.detach(), pmask, n),
    }


def _supervised(logp: Tensor, weights: Tensor, pmask: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Sum over prefix tokens of -w * log p (the supervised term), and its metrics."""
    on = pmask & (weights > 0)
    term = torch.where(on, -weights * logp, torch.zeros_like(logp))
    n = on.sum()
    return term.sum(), {
        "sft_tokens": n.float(),
        "sft_nll_mean": _masked_mean(-logp.detach(), on, n),
    }
