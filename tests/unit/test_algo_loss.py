"""The PPO loss (learner.algo.loss) on small tensors whose value and gradient are computed by
hand: clipping on both sides, masking, TIS, KL, the off-policy prefix term, aggregation."""

from __future__ import annotations

import math

import pytest
import torch

from learner.algo.loss import (
    LossInputs,
    LossSettings,
    aggregation_for,
    loss_normalizer,
    ppo_loss,
)
from lppo.core.config.schema import LearnerConfig, PGConfig

S = LossSettings(clip_low=0.2, clip_high=0.28)


def _loss(logp, behaviour, adv, mask, settings, normalizer=None, **tensors):
    """`ppo_loss` on the positional tensors these tests write by hand."""
    return ppo_loss(LossInputs(logp, behaviour, adv, mask, **tensors), settings, normalizer)


def _logp(values):
    return torch.tensor(values, dtype=torch.float64).log().requires_grad_(True)


def test_clipping_on_both_sides_by_hand():
    # behaviour log-prob 0, so ratio = exp(logp) = the listed value
    #   r=1.5, A=+1: min(1.5, 1.28)   = 1.28  clipped high, loss -1.28, no gradient
    #   r=0.5, A=-1: min(-0.5, -0.8)  = -0.8  clipped low,  loss  0.8,  no gradient
    #   r=1.1, A=+1: min(1.1, 1.1)    = 1.1   inside,       loss -1.1
    #   r=0.7, A=+1: min(0.7, 0.8)    = 0.7   below but A>0: not clipped, loss -0.7
    #   r=1.5, A=-1: min(-1.5, -1.28) = -1.5  above but A<0: not clipped, loss 1.5
    #   the 6th token is masked (its behaviour log-prob is garbage)
    logp = _logp([[1.5, 0.5, 1.1, 0.7, 1.5, 0.9]])
    behaviour = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, float("inf")]], dtype=torch.float64)
    adv = torch.tensor([[1.0, -1.0, 1.0, 1.0, -1.0, 5.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
    loss, m = _loss(logp, behaviour, adv, mask, S)
    assert loss.item() == pytest.approx((-1.28 + 0.8 - 1.1 - 0.7 + 1.5) / 5)
    loss.backward()
    # d/dlogp of -r*A/5 is -r*A/5 where unclipped
    expected = [0.0, 0.0, -1.1 / 5, -0.7 / 5, 1.5 / 5, 0.0]
    torch.testing.assert_close(logp.grad[0], torch.tensor(expected, dtype=torch.float64))
    assert m["tokens"] == 5
    assert m["clip_frac_high"] == pytest.approx(0.2) and m["clip_frac_low"] == pytest.approx(0.2)
    assert m["clip_frac"] == pytest.approx(0.4)
    assert m["ratio_mean"] == pytest.approx(5.3 / 5)
    assert m["pg_loss"] == pytest.approx(loss.item())
    k3 = sum(r - 1 - math.log(r) for r in (1.5, 0.5, 1.1, 0.7, 1.5)) / 5
    assert m["approx_kl"] == pytest.approx(k3)


def test_sequence_advantages_broadcast_and_batch_normalizer():
    # two sequences of two tokens, ratio 1 everywhere: loss per token -A
    logp = torch.zeros(2, 2, dtype=torch.float64, requires_grad=True)
    adv = torch.tensor([2.0, -1.0], dtype=torch.float64)
    mask = torch.tensor([[1, 1], [1, 0]])
    loss, _ = _loss(logp, torch.zeros(2, 2, dtype=torch.float64), adv, mask, S)
    assert loss.item() == pytest.approx((-2 - 2 + 1) / 3)
    # the same micro-batch inside a larger batch of 10 loss tokens: sum / 10
    loss, _ = _loss(logp, torch.zeros(2, 2, dtype=torch.float64), adv, mask, S,
                       normalizer=10)
    assert loss.item() == pytest.approx(-0.3)


def test_micro_batches_add_up_to_the_batch():
    torch.manual_seed(0)
    logp = (torch.rand(4, 5, dtype=torch.float64) - 1.5).requires_grad_(True)
    behaviour = logp.detach() + 0.3 * torch.randn(4, 5, dtype=torch.float64)
    adv = torch.randn(4, dtype=torch.float64)
    mask = (torch.rand(4, 5) > 0.3).long()
    full, _ = _loss(logp, behaviour, adv, mask, S)
    n = float(mask.sum())
    parts = [_loss(logp[i:i + 2], behaviour[i:i + 2], adv[i:i + 2], mask[i:i + 2], S,
                      normalizer=n)[0] for i in (0, 2)]
    assert (parts[0] + parts[1]).item() == pytest.approx(full.item())


def test_truncated_importance_sampling_by_hand():
    # PPO ratio against old_logp (= logp here: ratio 1); TIS weight min(exp(old - behaviour), 1.5)
    # token 1: exp(log 2) = 2 -> capped 1.5; token 2: exp(log 0.5) = 0.5; A = 1
    s = LossSettings(tis_cap=1.5)
    logp = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    old = torch.zeros(1, 2, dtype=torch.float64)
    behaviour = torch.tensor([[-math.log(2.0), math.log(2.0)]], dtype=torch.float64)
    adv, mask = torch.ones(1, 2, dtype=torch.float64), torch.ones(1, 2)
    loss, m = _loss(logp, behaviour, adv, mask, s, old_logp=old)
    assert loss.item() == pytest.approx(-(1.5 + 0.5) / 2)
    loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.75, -0.25]], dtype=torch.float64))
    assert m["tis_weight_mean"] == pytest.approx(1.0)
    assert m["tis_clip_frac"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="old_logp"):
        _loss(logp, behaviour, adv, mask, s)


def test_old_logp_is_the_ratio_base_without_tis():
    logp = torch.zeros(1, 1, dtype=torch.float64, requires_grad=True)
    old = torch.full((1, 1), math.log(0.5), dtype=torch.float64)     # ratio 2 -> clipped 1.28
    loss, _ = _loss(logp, torch.zeros(1, 1, dtype=torch.float64),
                       torch.ones(1, 1, dtype=torch.float64), torch.ones(1, 1), S, old_logp=old)
    assert loss.item() == pytest.approx(-1.28)


def test_kl_to_reference_k3_by_hand():
    # A = 0, so only the KL term: k3 = exp(d) - d - 1 with d = ref - logp
    # d = log 2: 2 - log 2 - 1 = 0.30685; d = 0: 0. kl_coef 0.5, token mean over 2
    s = LossSettings(kl_coef=0.5)
    logp = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([[math.log(2.0), 0.0]], dtype=torch.float64)
    zeros = torch.zeros(1, 2, dtype=torch.float64)
    loss, m = _loss(logp, zeros, zeros, torch.ones(1, 2), s, ref_logp=ref)
    assert loss.item() == pytest.approx(0.5 * (1 - math.log(2)) / 2)
    assert m["kl_ref"] == pytest.approx((1 - math.log(2)) / 2)
    loss.backward()
    # d k3 / d logp = 1 - exp(ref - logp): -1 for token 1, 0 for token 2; x 0.5 / 2
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.25, 0.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match="ref_logp"):
        _loss(logp, zeros, zeros, torch.ones(1, 2), s)


def test_prefix_tokens_are_masked_or_get_the_off_policy_term():
    # tokens: [prefix p=0.1, policy r=1, policy r=1]; A = 4 on the prefix, 1 on the policy
    logp = torch.tensor([[math.log(0.1), 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    behaviour = torch.zeros(1, 3, dtype=torch.float64)
    adv = torch.tensor([[4.0, 1.0, 1.0]], dtype=torch.float64)
    loss_mask = torch.tensor([[0, 1, 1]])
    prefix = torch.tensor([[1, 0, 0]])
    masked, _ = _loss(logp, behaviour, adv, loss_mask, S, prefix_mask=prefix)
    assert masked.item() == pytest.approx(-1.0)               # prefix ignored
    masked.backward()
    assert logp.grad[0, 0].item() == 0.0
    logp.grad = None
    # off-policy: -p/(p+0.1)*A = -0.5*4 = -2 on the prefix; (-2 - 1 - 1) / 3 tokens
    s = LossSettings(off_policy=True, off_policy_gamma=0.1)
    loss, m = _loss(logp, behaviour, adv, loss_mask, s, prefix_mask=prefix)
    assert loss.item() == pytest.approx(-4 / 3)
    assert m["off_policy_tokens"] == 1 and m["off_policy_prob_mean"] == pytest.approx(0.1)
    loss.backward()
    # d/dlogp [-p/(p+g) * A] = -A * g * p / (p+g)^2 = -4 * 0.01 / 0.04 = -1, / 3 tokens
    assert logp.grad[0, 0].item() == pytest.approx(-1 / 3)
    assert m["tokens"] == 2  # metrics of the PPO part count policy tokens only


def test_supervised_prefix_term_by_hand():
    # tokens: [prefix p=0.5 w=2, prefix p=0.25 w=0, policy r=1]; the policy token's A = 1
    logp = torch.tensor([[math.log(0.5), math.log(0.25), 0.0]], dtype=torch.float64,
                        requires_grad=True)
    behaviour = torch.zeros(1, 3, dtype=torch.float64)
    adv = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    loss_mask, prefix = torch.tensor([[0, 0, 1]]), torch.tensor([[1, 1, 0]])
    weights = torch.tensor([[2.0, 0.0, 0.0]], dtype=torch.float64)
    s = LossSettings(sft=True)
    loss, m = _loss(logp, behaviour, adv, loss_mask, s, prefix_mask=prefix,
                       sft_weights=weights)
    # (-2 * log 0.5 - 1) over 3 tokens (both prefix tokens count in the normaliser)
    assert loss.item() == pytest.approx((2 * math.log(2) - 1) / 3)
    assert m["sft_tokens"] == 1 and m["sft_nll_mean"] == pytest.approx(math.log(2))
    loss.backward()
    assert logp.grad[0].tolist() == pytest.approx([-2 / 3, 0.0, -1 / 3])


def test_empty_batch_gives_zero_loss_and_zero_gradient():
    logp = torch.zeros(2, 3, requires_grad=True)
    loss, m = _loss(logp, torch.zeros(2, 3), torch.ones(2), torch.zeros(2, 3), S)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logp.grad, torch.zeros(2, 3))
    assert m["tokens"] == 0 and m["clip_frac"] == 0.0
    loss, _ = _loss(logp, torch.zeros(2, 3), torch.ones(2), torch.zeros(2, 3), S, normalizer=0)
    assert loss.item() == 0.0


def test_extreme_log_ratios_stay_finite():
    logp = torch.tensor([[0.0, 0.0]], requires_grad=True)
    behaviour = torch.tensor([[-1000.0, 1000.0]])
    loss, _ = _loss(logp, behaviour, torch.tensor([[-1.0, 1.0]]), torch.ones(1, 2), S)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logp.grad).all()


def test_entropy_is_reported_over_loss_tokens():
    logp = torch.zeros(1, 2, requires_grad=True)
    _, m = _loss(logp, torch.zeros(1, 2), torch.ones(1, 2), torch.tensor([[1, 0]]), S,
                    entropy=torch.tensor([[0.5, 9.0]]))
    assert m["entropy"] == pytest.approx(0.5)


def test_aggregation_and_normalizer():
    assert aggregation_for(LearnerConfig()) == "token_mean"
    dr = LearnerConfig(advantage="drgrpo", std_normalize=False)
    assert aggregation_for(dr) == "seq_mean_token_sum_norm"
    assert aggregation_for(LearnerConfig(loss_agg="seq_mean_token_sum_norm")) == (
        "seq_mean_token_sum_norm")
    assert aggregation_for(dr.model_copy(update={"loss_agg": "token_mean"})) == "token_mean"
    assert loss_normalizer("token_mean", 37, 4, 1024) == 37.0
    assert loss_normalizer("seq_mean_token_sum_norm", 37, 4, 1024) == 4096.0
    assert loss_normalizer("token_mean", 0, 0, 1024) == 0.0
    with pytest.raises(ValueError):
        loss_normalizer("seq_mean", 1, 1, 1)
    with pytest.raises(ValueError):
        loss_normalizer("seq_mean_token_sum_norm", 1, 1, 0)


def test_settings_from_config():
    s = LossSettings.from_config(
        LearnerConfig(clip_low=0.1, clip_high=0.3, tis_cap=2.0, kl_coef=0.01,
                      is_level="sequence"),
        PGConfig(off_policy_loss=True, off_policy_gamma=0.2),
    )
    assert s == LossSettings(0.1, 0.3, 2.0, 0.01, True, 0.2, sft=False, is_level="sequence")
    assert LossSettings.from_config(LearnerConfig(), PGConfig(sft_coef=0.5)).sft
    assert not LossSettings.from_config(LearnerConfig(),
                                        PGConfig(enabled=False, off_policy_loss=True)).off_policy
