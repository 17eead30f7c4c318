"""Sequence-level importance weights and rejection outside a ratio band, on constructed ratios
(learner/algo/offpolicy.py), and the sequence weight inside the loss (learner/algo/loss.py)."""

from __future__ import annotations

import math

import pytest
import torch

from learner.algo.loss import LossInputs, LossSettings, ppo_loss
from learner.algo.offpolicy import importance_weights, reject_rows

# Row 0: two tokens at ratios 2 and 0.5 (sequence ratio 1); row 1: 1.5 and 1.5 (2.25);
# row 2: one token at 4 then padding; row 3: nothing (a prompt-only row).
RATIOS = [[2.0, 0.5], [1.5, 1.5], [4.0, 1.0], [1.0, 1.0]]
MASK = torch.tensor([[True, True], [True, True], [True, False], [False, False]])


def logps() -> tuple[torch.Tensor, torch.Tensor]:
    behaviour = torch.full((4, 2), -1.0)
    old = behaviour + torch.log(torch.tensor(RATIOS))
    return old, behaviour


def test_token_weights_are_each_tokens_ratio_capped():
    old, behaviour = logps()
    w, m = importance_weights(old, behaviour, MASK, cap=3.0, level="token")
    assert w[MASK].tolist() == pytest.approx([2.0, 0.5, 1.5, 1.5, 3.0])
    assert m["tis_clip_frac"].item() == pytest.approx(1 / 5)  # one token of five capped
    assert m["tis_weight_mean"].item() == pytest.approx((2 + 0.5 + 1.5 + 1.5 + 3) / 5)


def test_sequence_weights_are_the_product_over_the_completion_capped():
    old, behaviour = logps()
    w, m = importance_weights(old, behaviour, MASK, cap=3.0, level="sequence")
    assert w[0].tolist() == pytest.approx([1.0, 1.0])  # 2 x 0.5
    assert w[1].tolist() == pytest.approx([2.25, 2.25])
    assert w[2, 0].item() == pytest.approx(3.0)  # 4, capped; the padding does not count
    assert m["tis_clip_frac"].item() == pytest.approx(1 / 3)  # one completion of three
    assert not w.requires_grad


def test_rejection_keeps_completions_inside_the_band_by_their_geometric_mean():
    old, behaviour = logps()
    # geometric means: 1, 1.5, 4, (no tokens)
    assert reject_rows(old, behaviour, MASK, (0.5, 2.0)).tolist() == [True, True, False, True]
    assert reject_rows(old, behaviour, MASK, (0.8, 1.2)).tolist() == [True, False, False, True]


def test_a_huge_log_ratio_gives_a_finite_weight():
    behaviour = torch.tensor([[-200.0, -200.0]])
    old = torch.zeros(1, 2)
    w, _ = importance_weights(old, behaviour, torch.ones(1, 2, dtype=torch.bool), 5.0, "sequence")
    assert w.tolist() == [[5.0, 5.0]]
    assert reject_rows(old, behaviour, torch.ones(1, 2, dtype=torch.bool), (0.5, 2.0)).tolist() == [
        False]


def test_the_loss_weighs_each_completion_by_its_sequence_weight():
    old, behaviour = logps()
    logp = old.clone().requires_grad_(True)  # the first update: ratio to old is 1
    adv = torch.tensor([1.0, 1.0, 1.0, 1.0])
    x = LossInputs(logp=logp, behaviour_logp=behaviour, advantages=adv, loss_mask=MASK.float(),
                   old_logp=old)
    token, _ = ppo_loss(x, LossSettings(tis_cap=3.0), normalizer=5.0)
    seq, metrics = ppo_loss(x, LossSettings(tis_cap=3.0, is_level="sequence"), normalizer=5.0)
    assert token.item() == pytest.approx(-(2 + 0.5 + 1.5 + 1.5 + 3) / 5)
    assert seq.item() == pytest.approx(-(1 + 1 + 2.25 + 2.25 + 3) / 5)
    assert math.isclose(metrics["tis_clip_frac"], 1 / 3, rel_tol=1e-6)
