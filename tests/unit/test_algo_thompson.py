"""learner/algo/thompson.py: the Beta posterior's updates, the decay, the draws' target."""

from __future__ import annotations

import json

import pytest

from learner.algo.select import Candidate, Feedback
from learner.algo.thompson import Thompson
from lppo.core.config.selection import ThompsonConfig


def _fb(sid: int, correct: int, total: int) -> Feedback:
    return Feedback(sample_id=sid, category=None, unguided_correct=correct,
                    unguided_total=total, abs_advantage=0.0)


def _cands(n: int) -> list[Candidate]:
    return [Candidate(sample_id=i, recency=(float(i), i), age=None, ema=None) for i in range(n)]


def test_the_posterior_counts_unguided_successes_and_failures():
    t = Thompson(ThompsonConfig(), seed=0)
    assert t.belief(3) == (1.0, 1.0)  # the prior
    t.observe(_fb(3, correct=2, total=8))
    t.observe(_fb(3, correct=1, total=4))
    assert t.belief(3) == (4.0, 10.0)
    t.observe(_fb(3, correct=0, total=0))  # a fully guided group: no evidence
    assert t.belief(3) == (4.0, 10.0)


def test_decay_pulls_the_posterior_back_to_the_prior_before_each_update():
    t = Thompson(ThompsonConfig(decay=0.5, prior_alpha=2.0, prior_beta=1.0), seed=0)
    t.observe(_fb(0, correct=4, total=4))  # (0.5*2 + 0.5*2 + 4, 0.5*1 + 0.5*1 + 0)
    assert t.belief(0) == (6.0, 1.0)
    t.observe(_fb(0, correct=0, total=4))
    assert t.belief(0) == pytest.approx((4.0, 5.0))


def test_samples_near_the_target_are_chosen_far_more_often():
    t = Thompson(ThompsonConfig(target=0.5), seed=0)
    for _ in range(10):
        t.observe(_fb(0, correct=8, total=8))  # always solved: theta near 1
        t.observe(_fb(1, correct=4, total=8))  # half: theta near 0.5
        t.observe(_fb(2, correct=0, total=8))  # never: theta near 0
    counts = [0, 0, 0]
    for _ in range(300):
        counts[t.choose(_cands(3), 1)[0].sample_id] += 1
    assert counts[1] > 290
    assert 0.3 < t.choose(_cands(3), 1)[0].score < 0.7  # the score is the drawn pass rate


def test_an_unseen_sample_is_explored_now_and_then():
    t = Thompson(ThompsonConfig(target=0.5), seed=1)
    for _ in range(3):
        t.observe(_fb(0, correct=1, total=8))  # mean 0.17, fairly sure
    picked_unseen = sum(t.choose(_cands(2), 1)[0].sample_id == 1 for _ in range(400))
    assert 200 < picked_unseen < 400  # the flat prior usually lands nearer 0.5, not always


def test_state_round_trips_and_the_resumed_draws_match():
    t = Thompson(ThompsonConfig(), seed=5)
    t.observe(_fb(7, correct=3, total=8))
    t.choose(_cands(10), 4)
    back = Thompson(ThompsonConfig(), seed=0)
    back.load_state_dict(json.loads(json.dumps(t.state_dict())))
    assert back.posterior == t.posterior
    assert back.choose(_cands(10), 4) == t.choose(_cands(10), 4)
