"""EMA, learning progress and LP weights (learner.algo.progress), on hand-computed numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from learner.algo.progress import (
    GUIDED_HISTORY,
    SampleStats,
    batch_weights,
    ema_step,
    lp_weight,
    renormalize,
    update,
    weighting_progress,
)
from lppo.core.config.schema import LPConfig, LPPOConfig

CFG = LPPOConfig()


def _run(rates, guided=False, ratio=0.0, stats=None):
    s = stats or SampleStats()
    for p in rates:
        s = update(s, p, guided, CFG, ratio=ratio)
    return s


def test_first_observation_initialises_the_ema_with_zero_progress():
    s = update(SampleStats(), 0.25, False, CFG)
    assert (s.ema, s.prev_ema, s.progress, s.attempts, s.last_pass_rate) == (0.25, None, 0.0, 1,
                                                                               0.25)


def test_ema_and_progress_by_hand():
    # beta 0.8: 0 -> 0.8*0 + 0.2*0.5 = 0.1 (d 0.1) -> 0.8*0.1 + 0.2*1 = 0.28 (d 0.18)
    s = _run([0.0, 0.5])
    assert s.ema == pytest.approx(0.1) and s.progress == pytest.approx(0.1)
    s = update(s, 1.0, False, CFG)
    assert s.ema == pytest.approx(0.28) and s.prev_ema == pytest.approx(0.1)
    assert s.progress == pytest.approx(0.18)
    # falling back to 0: 0.8 * 0.28 = 0.224, progress -0.056
    s = update(s, 0.0, False, CFG)
    assert s.ema == pytest.approx(0.224) and s.progress == pytest.approx(-0.056)
    assert s.attempts == 4


def test_ema_step_alone():
    assert ema_step(None, 0.75, 0.8) == (0.75, 0.0)
    ema, d = ema_step(0.5, 0.0, 0.5)
    assert (ema, d) == (0.25, -0.25)


def test_constant_pass_rate_has_no_progress():
    s = _run([0.5] * 5)
    assert s.ema == pytest.approx(0.5) and s.progress == pytest.approx(0.0)


def test_guided_groups_do_not_touch_the_unguided_ema():
    s = _run([0.0, 0.0])
    g = _run([1.0, 0.5], guided=True, ratio=0.5, stats=s)
    assert (g.ema, g.prev_ema, g.progress, g.attempts, g.last_pass_rate) == (
        s.ema, s.prev_ema, s.progress, s.attempts, s.last_pass_rate)
    assert g.guided_attempts == 2 and g.guided_history == (1.0, 0.5)
    assert g.last_guided_pass_rate == 0.5 and g.last_ratio == 0.5
    assert g.last_group_pass_rate == 0.5
    assert weighting_progress(s, g, guided=True, cfg=LPConfig()) == 0.0


def test_guided_history_is_bounded():
    g = _run([i / 100 for i in range(GUIDED_HISTORY + 3)], guided=True, ratio=0.5)
    assert len(g.guided_history) == GUIDED_HISTORY
    assert g.guided_history[-1] == (GUIDED_HISTORY + 2) / 100


def test_solved_streak_counts_unguided_all_correct_groups_only():
    s = _run([1.0, 1.0])
    assert s.consecutive_solved == 2
    s = update(s, 1.0, True, CFG, ratio=0.5)  # guided: leaves the streak alone
    assert s.consecutive_solved == 2
    s = update(s, 0.875, False, CFG)
    assert s.consecutive_solved == 0


def test_failed_at_max_counts_all_wrong_guided_groups_at_the_largest_ratio():
    s = _run([0.0, 0.0], guided=True, ratio=0.9)
    assert s.consecutive_failed_at_max == 2
    s = update(s, 0.0, True, CFG, ratio=0.9 - 1e-9)  # float noise is still the max
    assert s.consecutive_failed_at_max == 3
    assert update(s, 0.0, True, CFG, ratio=0.8).consecutive_failed_at_max == 0
    assert update(s, 0.125, True, CFG, ratio=0.9).consecutive_failed_at_max == 0
    assert update(s, 0.0, False, CFG).consecutive_failed_at_max == 0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="pass_rate"):
        update(SampleStats(), 1.5, False, CFG)
    with pytest.raises(ValueError, match="pass_rate"):
        update(SampleStats(), float("nan"), False, CFG)
    with pytest.raises(ValueError, match="ratio"):
        update(SampleStats(), 0.0, True, CFG, ratio=0.0)


def test_update_is_pure():
    s = SampleStats()
    update(s, 1.0, False, CFG)
    assert s == SampleStats()


def test_stats_round_trip_through_json():
    s = _run([0.0, 0.25])
    s = _run([0.0, 0.5], guided=True, ratio=0.6, stats=s)
    data = json.loads(json.dumps(s.to_dict()))
    assert SampleStats.from_dict(data) == s
    with pytest.raises(TypeError):
        SampleStats.from_dict({**data, "nope": 1})


def test_lp_weight_by_hand():
    cfg = LPConfig()
    assert lp_weight(0.0, cfg) == 1.0
    # 0.5 + sigmoid(8 * 0.1) = 0.5 + 1 / (1 + e^-0.8)
    assert lp_weight(0.1, cfg) == pytest.approx(0.5 + 0.6899744811276125)
    assert lp_weight(-0.1, cfg) == pytest.approx(0.5 + 0.3100255188723875)
    assert lp_weight(1.0, cfg) < 1.5 and lp_weight(-1.0, cfg) > 0.5
    assert lp_weight(-1e6, LPConfig(kappa=8.0)) == pytest.approx(0.5)  # no overflow
    assert lp_weight(0.3, LPConfig(enabled=False)) == 1.0
    assert lp_weight(0.1, LPConfig(kappa=0.0)) == 1.0


def test_batch_weights_renormalise_to_mean_one():
    cfg = LPConfig()
    raw = np.array([0.5 + 1 / (1 + math.exp(-0.8)), 1.0])
    w = batch_weights([0.1, 0.0], cfg)
    np.testing.assert_allclose(w, raw / raw.mean())
    assert w.mean() == pytest.approx(1.0)
    # symmetric progress: already mean 1
    np.testing.assert_allclose(batch_weights([0.1, -0.1, 0.0], cfg),
                               [1.1899744811, 0.8100255189, 1.0])
    np.testing.assert_allclose(batch_weights([0.1, 0.0], LPConfig(renormalize=False)), raw)


def test_batch_weights_when_off_or_empty():
    np.testing.assert_array_equal(batch_weights([0.3, -0.2], LPConfig(enabled=False)), [1, 1])
    assert batch_weights([], LPConfig()).shape == (0,)


def test_renormalize_edges():
    assert renormalize([]).shape == (0,)
    np.testing.assert_array_equal(renormalize([0.0, 0.0]), [1.0, 1.0])
    np.testing.assert_allclose(renormalize([2.0]), [1.0])
    with pytest.raises(ValueError):
        renormalize([-1.0, 2.0])


def test_weighting_signals_never_contain_the_group_they_weight():
    cfg = LPPOConfig()
    before = _run([0.0, 0.5])                     # ema 0 -> 0.1, progress 0.1
    after = update(before, 1.0, False, cfg)       # this group: ema 0.1 -> 0.28
    current = LPConfig(signal="current")
    assert weighting_progress(before, after, False, current) == pytest.approx(0.18)
    assert weighting_progress(before, after, True, current) == 0.0
    lagged = LPConfig(signal="lagged")
    assert weighting_progress(before, after, False, lagged) == pytest.approx(0.1)
    assert weighting_progress(before, after, True, lagged) == pytest.approx(0.1)
    fast = LPConfig(signal="fast_slow", beta_fast=0.5)
    # fast EMA 0 -> 0.25, slow 0 -> 0.1 before the group: the trend is +0.15, whatever it scores
    assert weighting_progress(before, after, False, fast) == pytest.approx(0.15)
    assert weighting_progress(SampleStats(), after, False, fast) == 0.0   # nothing before


def test_fast_slow_needs_a_faster_ema():
    with pytest.raises(ValueError, match="beta_fast"):
        LPConfig(signal="fast_slow", beta=0.5, beta_fast=0.8)
