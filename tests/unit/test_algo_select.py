"""learner/algo/select.py: the interface, `lppo` (least recently dispatched) and `uniform`."""

from __future__ import annotations

import json

from learner.algo.select import Candidate, LeastRecent, Uniform, closest_first


def _cands(n: int) -> list[Candidate]:
    """Sample i was dispatched i dispatches ago... except the last, never dispatched."""
    out = [Candidate(sample_id=i, recency=(float(10 - i), i), age=i, ema=i / n)
           for i in range(n - 1)]
    return out + [Candidate(sample_id=n - 1, recency=(-1.0, 0), age=None, ema=None)]


def test_lppo_takes_the_never_dispatched_then_the_least_recently_dispatched():
    picks = LeastRecent().choose(_cands(5), 3)
    assert [p.sample_id for p in picks] == [4, 3, 2]
    assert [p.score for p in picks] == [None, 3.0, 2.0]  # score: dispatches since its last
    assert LeastRecent().choose(_cands(5), 0) == [] and LeastRecent().state_dict() == {}


def test_uniform_is_seeded_without_repeats_and_resumes_its_draws():
    a, b = Uniform(seed=1), Uniform(seed=1)
    first = a.choose(_cands(20), 5)
    assert first == b.choose(_cands(20), 5)  # same seed: same picks
    assert len({p.sample_id for p in first}) == 5
    assert all(0.0 <= p.score < 1.0 for p in first)
    assert [p.sample_id for p in Uniform(seed=2).choose(_cands(20), 5)] != \
        [p.sample_id for p in first]
    saved = json.loads(json.dumps(a.state_dict()))
    c = Uniform(seed=99)
    c.load_state_dict(saved)
    assert c.choose(_cands(20), 5) == a.choose(_cands(20), 5)  # the resumed run draws the same


def test_uniform_spreads_over_every_candidate():
    u = Uniform(seed=0)
    counts = [0] * 10
    for _ in range(2000):
        counts[u.choose(_cands(10), 1)[0].sample_id] += 1
    assert min(counts) > 150 and max(counts) < 250  # 200 expected each


def test_closest_first_breaks_ties_by_recency():
    cands = _cands(4)  # recency order: 3 (never), 2, 1, 0
    picks = closest_first(cands, [0.5, 0.4, 0.6, 0.9], target=0.5, k=3)
    assert [p.sample_id for p in picks] == [0, 2, 1]  # 0.5; then 0.6 / 0.4 tie: 2 is older
    assert picks[0].score == 0.5
