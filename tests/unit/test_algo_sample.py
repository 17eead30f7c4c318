"""One group at a time through progress, curation and PG-sampling (learner.algo.sample)."""

from __future__ import annotations

import pytest

from learner.algo.curation import PARKED, RECHECK_SOLVED, RETIRED
from learner.algo.progress import SampleStats
from learner.algo.sample import observe
from lppo.config.schema import LPConfig, LPPOConfig, PGConfig

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
