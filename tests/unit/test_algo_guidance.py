"""What guided groups teach about their prefix (learner.algo.guidance), by hand."""

from __future__ import annotations

import pytest

from learner.algo.guidance import MASKED, guided_count, prefix_signal, unguided_baseline
from learner.algo.progress import SampleStats
from lppo.core.config.schema import PGConfig


def _signal(cfg, guided_correct=8, of_correct=0.35, baseline=0.06, weight=1.0):
    return prefix_signal(cfg, guided_correct=guided_correct, reward_correct=1.0,
                         group_advantage_of_correct=of_correct, baseline=baseline,
                         lp_weight=weight)


def test_masked_by_default():
    s = _signal(PGConfig())
    assert (s.advantage, s.sft_weight, s.term) == (None, 0.0, MASKED)
    assert not PGConfig().prefix_terms


def test_off_policy_against_the_unguided_baseline_stays_positive_when_all_pass():
    cfg = PGConfig(off_policy_loss=True)                 # baseline "ema" by default
    s = _signal(cfg, of_correct=0.0, baseline=0.06)      # all-correct group: 0 in the group
    assert s.advantage == pytest.approx(0.94) and s.term == "off_policy"
    assert _signal(cfg, baseline=0.06, weight=1.5).advantage == pytest.approx(1.41)


def test_off_policy_group_baseline_is_luffys():
    cfg = PGConfig(off_policy_loss=True, off_policy_baseline="group")
    assert _signal(cfg, of_correct=0.35).advantage == pytest.approx(0.35)
    assert _signal(cfg, of_correct=0.0).advantage == 0.0


def test_sft_only_for_groups_with_a_correct_guided_completion():
    cfg = PGConfig(sft_coef=0.5)
    assert _signal(cfg, guided_correct=1, weight=2.0).sft_weight == 1.0
    assert _signal(cfg, guided_correct=0).sft_weight == 0.0
    both = _signal(PGConfig(sft_coef=0.5, off_policy_loss=True))
    assert both.term == "off_policy+sft"
    assert PGConfig(sft_coef=0.5).prefix_terms
    assert not PGConfig(sft_coef=0.5, enabled=False).prefix_terms


@pytest.mark.parametrize(("share", "n", "expected"), [
    (1.0, 8, 8), (0.5, 8, 4), (0.1, 8, 1), (0.99, 8, 7), (0.5, 1, 1), (0.5, 2, 1)])
def test_guided_count_keeps_a_mixed_group_mixed(share, n, expected):
    assert guided_count(n, PGConfig(guided_share=share)) == expected


def test_unguided_baseline_sources():
    stats = SampleStats(ema=0.2, last_pass_rate=0.5)
    assert unguided_baseline(stats, PGConfig()) == 0.2
    assert unguided_baseline(stats, PGConfig(off_policy_baseline="last")) == 0.5
    assert unguided_baseline(SampleStats(), PGConfig()) == 0.0
