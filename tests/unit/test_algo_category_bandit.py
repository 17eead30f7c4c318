"""learner/algo/category_bandit.py: SEC's TD(0) values, Boltzmann draws, picks per category."""

from __future__ import annotations

import json
import math

import pytest

from learner.algo.category_bandit import CategoryBandit
from learner.algo.select import Candidate, Feedback
from lppo.core.config.selection import CategoryBanditConfig


def _fb(category: str, adv: float) -> Feedback:
    return Feedback(sample_id=0, category=category, unguided_correct=0, unguided_total=0,
                    abs_advantage=adv)


def _cands(per: dict[str, int]) -> list[Candidate]:
    out, sid = [], 0
    for cat, n in per.items():
        for _ in range(n):
            out.append(Candidate(sample_id=sid, recency=(float(sid), sid), age=None, ema=None,
                                 category=cat))
            sid += 1
    return out


def test_td0_moves_a_categorys_value_toward_its_groups_mean_absolute_advantage():
    b = CategoryBandit(CategoryBanditConfig(field="level", step_size=0.5), seed=0)
    b.observe(_fb("1", 0.8))
    assert b.q == {"1": 0.4}
    b.observe(_fb("1", 0.0))  # an all-correct group: no signal
    assert b.q["1"] == pytest.approx(0.2)


def test_boltzmann_probabilities_and_temperature():
    b = CategoryBandit(CategoryBanditConfig(field="level", temperature=0.5), seed=0)
    b.q = {"a": 1.0, "b": 0.0}
    pa, pb = b.probabilities(["a", "b"])
    assert pa == pytest.approx(math.exp(2) / (math.exp(2) + 1)) and pa + pb == pytest.approx(1)
    hot = CategoryBandit(CategoryBanditConfig(field="level", temperature=100.0), seed=0)
    hot.q = dict(b.q)
    assert hot.probabilities(["a", "b"])[0] == pytest.approx(0.5, abs=0.01)


def test_draws_follow_the_values_and_take_the_least_recent_sample_of_a_category():
    b = CategoryBandit(CategoryBanditConfig(field="level", temperature=0.25), seed=0)
    b.q = {"hard": 1.0, "easy": 0.0}  # p(hard) = 1 / (1 + e^-4) = 0.98
    cands = _cands({"easy": 3, "hard": 3})  # ids 0-2 easy, 3-5 hard; lower id: older
    first = [b.choose(cands, 1)[0] for _ in range(200)]
    assert sum(p.sample_id == 3 for p in first) > 180  # hard's least recently dispatched
    assert {p.score for p in first} <= {1.0, 0.0}
    picks = b.choose(cands, 6)  # more than one category holds: each sample once
    assert sorted(p.sample_id for p in picks) == list(range(6))


def test_a_candidate_without_a_category_is_an_error_and_state_round_trips():
    b = CategoryBandit(CategoryBanditConfig(field="level"), seed=3)
    with pytest.raises(ValueError, match="sample 0 has no category"):
        b.choose([Candidate(0, (0.0, 0), None, None)], 1)
    b.observe(_fb("x", 0.6))
    back = CategoryBandit(CategoryBanditConfig(field="level"), seed=0)
    back.load_state_dict(json.loads(json.dumps(b.state_dict())))
    cands = _cands({"x": 2, "y": 2})
    assert back.q == b.q and back.choose(cands, 3) == b.choose(cands, 3)
