"""One group at a time through progress, curation and PG-sampling (learner.algo.sample)."""

from __future__ import annotations

import pytest

from learner.algo.progress import SampleStats
from learner.algo.sample import observe
from lppo.core.config.schema import LPConfig, LPPOConfig, PGConfig
from lppo.core.vocab import StatusChange

PARKED, RECHECK_SOLVED, RETIRED = (StatusChange.PARKED, StatusChange.RECHECK_SOLVED,
                                   StatusChange.RETIRED)

CFG = LPPOConfig()


def test_hard_sample_is_guided_up_to_the_max_then_parked_then_rescued():
    s, status = SampleStats(), "active"
    o = observe(s, status, 0.0, False, CFG)
    assert (o.next_ratio, o.status, o.weight) == (0.5, "active", 1.0)
    ratios = []
    while o.status == "active":
        ratio = o.next_ratio
        ratios.append(ratio)
        o = observe(o.stats, o.status, 0.0, True, CFG, ratio=ratio)
    assert ratios == [0.5, 0.6, 0.7, 0.8, 0.9, 0.9, 0.9]
    assert (o.status, o.transition, o.next_ratio) == ("parked", PARKED, 0.9)
    # a recheck at the max ratio that solves some: active again, the ratio stays (p < 0.5)
    o = observe(o.stats, o.status, 0.125, True, CFG, ratio=0.9)
    assert (o.status, o.transition, o.next_ratio) == ("active", RECHECK_SOLVED, 0.9)
    assert o.weight == 1.0 and o.progress == 0.0          # guided: neutral weight


def test_learning_sample_gets_weight_and_retires():
    s, status = SampleStats(), "active"
    o = observe(s, status, 0.25, False, CFG)
    assert o.weight == 1.0                                  # first observation: no progress
    o = observe(o.stats, o.status, 1.0, False, CFG)
    # ema 0.25 -> 0.8 * 0.25 + 0.2 = 0.4, progress 0.15, weight 0.5 + sigmoid(1.2)
    assert o.progress == pytest.approx(0.15)
    assert o.weight == pytest.approx(0.5 + 1 / (1 + 2.718281828459045 ** -1.2))
    o = observe(o.stats, o.status, 1.0, False, CFG)
    assert o.status == "active"
    o = observe(o.stats, o.status, 1.0, False, CFG)
    assert (o.status, o.transition, o.next_ratio) == ("solved", RETIRED, 0.0)


def test_switches_for_ablations():
    cfg = LPPOConfig(lp=LPConfig(enabled=False), pg=PGConfig(enabled=False))
    o = observe(SampleStats(), "active", 0.0, False, cfg)
    o = observe(o.stats, o.status, 1.0, False, cfg)
    assert o.weight == 1.0 and o.next_ratio == 0.0


def test_mixed_group_moves_the_unguided_statistics_then_walks_the_ratio():
    o = observe(SampleStats(), "active", 0.0, False, CFG)           # fails: guided at 0.5 next
    assert o.baseline == 0.0
    o = observe(o.stats, o.status, 0.75, True, CFG, ratio=0.5, unguided_rate=0.25)
    assert (o.stats.attempts, o.stats.guided_attempts) == (2, 1)
    assert o.stats.last_pass_rate == 0.25 and o.stats.ema == pytest.approx(0.05)
    assert o.next_ratio == 0.4                                       # guided part passed: down
    assert o.baseline == 0.0                                         # measured before the group
    with pytest.raises(ValueError, match="unguided_rate"):
        observe(o.stats, o.status, 0.5, False, CFG, unguided_rate=0.5)


def test_annealed_cap_limits_the_ratio_but_does_not_park():
    o = observe(SampleStats(), "active", 0.0, False, CFG, max_ratio=0.3)
    assert o.next_ratio == 0.3                                       # r0 = 0.5, capped
    for _ in range(5):
        o = observe(o.stats, o.status, 0.0, True, CFG, ratio=o.next_ratio, max_ratio=0.3)
        assert o.next_ratio == 0.3
    # failing with the small hint an anneal leaves is no sign the sample is hopeless
    assert o.status == "active" and o.stats.consecutive_failed_at_max == 0


def test_lagged_signal_weights_guided_groups_by_earlier_progress():
    cfg = LPPOConfig(lp=LPConfig(signal="lagged"))
    o = observe(SampleStats(), "active", 0.0, False, cfg)
    o = observe(o.stats, o.status, 0.5, False, cfg)                  # progress +0.1
    g = observe(o.stats, o.status, 1.0, True, cfg, ratio=0.5)
    assert g.progress == pytest.approx(0.1) and g.weight > 1.0
