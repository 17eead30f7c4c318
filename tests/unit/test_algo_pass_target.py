"""learner/algo/pass_target.py: predicted pass rate (EMA, or the prior) closest to a target."""

from __future__ import annotations

from learner.algo.pass_target import TargetPassRate
from learner.algo.select import Candidate
from lppo.core.config.selection import TargetPassRateConfig


def _c(sid: int, ema: float | None, recency: float) -> Candidate:
    return Candidate(sample_id=sid, recency=(recency, sid), age=None, ema=ema)


def test_the_closest_predicted_pass_rates_go_first():
    p = TargetPassRate(TargetPassRateConfig(target=0.5, prior_rate=0.2))
    cands = [_c(0, 0.9, 0), _c(1, 0.55, 1), _c(2, None, 2), _c(3, 0.0, 3), _c(4, 0.4, 4)]
    picks = p.choose(cands, 3)
    assert [x.sample_id for x in picks] == [1, 4, 2]  # 0.55, 0.4, the prior 0.2
    assert [x.score for x in picks] == [0.55, 0.4, 0.2]


def test_ties_go_to_the_least_recently_dispatched_and_nothing_is_drawn():
    p = TargetPassRate(TargetPassRateConfig(target=0.25))
    cands = [_c(0, 0.0, 5), _c(1, 0.5, 2), _c(2, 0.5, 9)]
    assert [x.sample_id for x in p.choose(cands, 2)] == [1, 0]  # all 0.25 away: oldest two
    assert p.choose(cands, 2) == p.choose(cands, 2) and p.state_dict() == {}
