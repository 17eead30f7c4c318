"""Advantage estimators and LP weights (learner.algo.advantages), on hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from learner.algo.advantages import (
    EPS,
    apply_weights,
    compute_advantages,
    drgrpo,
    grpo,
    reinforce_pp,
)


def _close(got, expected, rel=1e-5):
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=rel, atol=1e-9)


def test_grpo_with_std_by_hand():
    # [1, 0, 0, 1]: mean 0.5, unbiased std sqrt(4 * 0.25 / 3) = 0.57735
    # [1, 0, 0, 0]: mean 0.25, unbiased std sqrt((0.5625 + 3 * 0.0625) / 3) = 0.5
    adv = grpo([[1, 0, 0, 1], [1, 0, 0, 0]])
    s = 0.5 / math.sqrt(1 / 3)
    _close(adv.values, [[s, -s, -s, s], [1.5, -0.5, -0.5, -0.5]])
    assert adv.baselines == [0.5, 0.25]
    assert adv.scales == pytest.approx([math.sqrt(1 / 3) + EPS, 0.5 + EPS])


def test_grpo_without_std_and_drgrpo_are_mean_centred():
    expected = [[0.75, -0.25, -0.25, -0.25], [0.5, -0.5]]
    _close(grpo([[1, 0, 0, 0], [1, 0]], std_normalize=False).values, expected)
    _close(drgrpo([[1, 0, 0, 0], [1, 0]]).values, expected)
    assert drgrpo([[1, 0]]).scales == [1.0]


@pytest.mark.parametrize("estimator", ["grpo", "drgrpo", "reinforce_pp"])
def test_degenerate_groups_have_zero_advantage(estimator):
    adv = compute_advantages([[1.0, 1.0, 1.0], [0.0, 0.0], [0.7], []], estimator)
    _close(adv.values, [[0, 0, 0], [0, 0], [0], []])
    assert compute_advantages([], estimator).values == []


def test_reinforce_pp_by_hand():
    # centred: [0.5, -0.5], [0.75, -0.25, -0.25, -0.25]; batch mean 0,
    # population std sqrt((0.25 + 0.25 + 0.5625 + 3 * 0.0625) / 6) = sqrt(1.25 / 6)
    std = math.sqrt(1.25 / 6)
    adv = reinforce_pp([[1, 0], [1, 0, 0, 0]])
    _close(adv.values, [[0.5 / std, -0.5 / std], [0.75 / std] + [-0.25 / std] * 3])
    assert adv.scales == pytest.approx([std + EPS] * 2)


def test_reinforce_pp_token_weighted_batch_statistics():
    # weights 1, 3, 2, 2, 2, 2: mean (0.5 - 1.5 + 1.5 - 1.5) / 12 = -1/12,
    # var = (1 * (7/12)^2 + 3 * (5/12)^2 + 2 * (10/12)^2 + 6 * (2/12)^2) / 12 = 29/144
    adv = reinforce_pp([[1, 0], [1, 0, 0, 0]], lengths=[[1, 3], [2, 2, 2, 2]])
    m, std = -1 / 12, math.sqrt(29) / 12
    a = [[0.5, -0.5], [0.75, -0.25, -0.25, -0.25]]
    _close(adv.values, [[(x - m) / std for x in g] for g in a])
    with pytest.raises(ValueError):
        reinforce_pp([[1, 0]], lengths=[[1]])


def test_reinforce_pp_scales_differently_from_grpo():
    groups = [[1, 0], [1, 1, 1, 0]]
    g, r = grpo(groups).values, reinforce_pp(groups).values
    assert not np.allclose(np.concatenate(g), np.concatenate(r))
    assert np.concatenate(r).std() == pytest.approx(1.0, rel=1e-4)  # unit std over the batch


def test_of_reward_puts_another_reward_on_the_same_footing():
    adv = grpo([[1, 0, 0, 0]])
    assert adv.of_reward(0, 1.0) == pytest.approx(0.75 / (0.5 + EPS))
    assert adv.of_reward(0, 0.0) == pytest.approx(-0.25 / (0.5 + EPS))
    rpp = reinforce_pp([[1, 0], [1, 0, 0, 0]])
    assert rpp.of_reward(1, 1.0) == pytest.approx(rpp.values[1][0])


def test_compute_advantages_dispatches():
    groups = [[1, 0, 0, 0]]
    _close(compute_advantages(groups, "grpo").values, grpo(groups).values)
    _close(compute_advantages(groups, "grpo", std_normalize=False).values, drgrpo(groups).values)
    _close(compute_advantages(groups, "reinforce_pp").values, reinforce_pp(groups).values)
    with pytest.raises(ValueError):
        compute_advantages(groups, "ppo")
    with pytest.raises(ValueError):
        grpo([[1.0, float("nan")]])


def test_apply_weights_multiplies_every_completion_of_a_group():
    out = apply_weights([np.array([1.0, -1.0]), np.array([0.5])], [2.0, 0.5])
    _close(out, [[2.0, -2.0], [0.25]])
    assert apply_weights([], []) == []
    with pytest.raises(ValueError):
        apply_weights([np.array([1.0])], [1.0, 2.0])


def test_inputs_are_not_modified():
    r = np.array([1.0, 0.0])
    a = grpo([r]).values
    apply_weights(a, [3.0])
    np.testing.assert_array_equal(r, [1.0, 0.0])
    assert a[0][0] == pytest.approx(0.5 / (math.sqrt(0.5) + EPS))
