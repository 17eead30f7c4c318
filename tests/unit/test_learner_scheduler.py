"""The scheduler: admission-paced dispatch, prefixes, rechecks, arrival decisions, state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from learner.algo.prefix import SolutionCuts
from learner.scheduler import SampleEntry, Scheduler
from lppo.config import Config
from lppo.wire import Array, Completion, RolloutGroup

# An expert solution as tokens: "a\n", "b\n", "c\n", "The answer is 7."
TEXTS = ["a", "\n", "b", "\n", "c", "\n", "The answer is ", "7", "."]
CUTS = SolutionCuts.from_token_texts(list(range(100, 109)), TEXTS, "line", answer="7")


def _cfg(**learner) -> Config:
    return Config.model_validate({
        "learner": {"batch_groups": 2, "group_size": 4, "max_staleness": 0, **learner},
        "lppo": {"curation": {"overdispatch": 1.0, "recheck_fraction": 0.0}},
    })


def _samples(k: int, cuts=CUTS) -> list[SampleEntry]:
    return [SampleEntry(sample_id=i, problem=f"p{i}", answer="7", cuts=cuts) for i in range(k)]


def _group(item, correct: int, version: int = 0, n: int = 4, actor="a0", error="") -> RolloutGroup:
    comps = [Completion(token_ids=Array.of([1, 2], "int32"), logprobs=Array.of([-1, -1], "float32"),
                        text="x", finish_reason="stop", reward=float(i < correct),
                        verdict="correct" if i < correct else "wrong") for i in range(n)]
    prefix = item.prefix_ids.tolist() if item.prefix_ids is not None else []
    return RolloutGroup(
        attempt_id=item.attempt_id, sample_id=item.sample_id, actor_id=actor,
        policy_version=version, prompt_ids=Array.of([1], "int32"),
        prefix_ids=Array.of(prefix, "int32"), prefix_ratio=item.prefix_ratio,
        prefix_len=len(prefix), completions=[] if error else comps, gen_seconds=0.1, error=error,
    )


def test_dispatch_is_paced_by_admission_and_one_group_per_sample():
    s = Scheduler(_cfg(), _samples(5))
    items = s.next_items("a0", slots=10)
    assert len(items) == 2  # synchronous: (0 + 0 + 1) * batch_groups
    assert len({i.sample_id for i in items}) == 2 and all(i.n == 4 for i in items)
    assert s.next_items("a0", slots=10) == []
    for it in items:
        assert s.on_group(_group(it, correct=2)).accepted
    assert s.next_items("a0", 10) == []  # buffer full until the version moves
    s.set_version(1, step=1)
    nxt = s.next_items("a0", 10)
    assert len(nxt) == 2 and {i.sample_id for i in nxt}.isdisjoint({i.sample_id for i in items})


def test_failed_sample_is_guided_with_a_prefix_cut_at_a_line_boundary():
    s = Scheduler(_cfg(max_staleness=4), _samples(1))
    (item,) = s.next_items("a0", 1)
    assert item.prefix_ids is None and item.prefix_ratio == 0.0
    d = s.on_group(_group(item, correct=0))
    assert d.reason == "all_wrong"  # dropped from the batch, but the sample's stats moved
    assert d.observation.next_ratio == 0.5 and s.samples[0].stats.last_pass_rate == 0.0
    (guided,) = s.next_items("a0", 1)
    assert guided.prefix_ratio == 0.5
    prefix = guided.prefix_ids.tolist()
    assert prefix == [100, 101, 102, 103]  # "a\nb\n": 4.5 tokens cut back to a line end
    assert 107 not in prefix  # never the answer


def test_all_wrong_and_all_correct_groups_are_dropped_with_their_reason():
    cfg = Config.model_validate({"learner": {"batch_groups": 4, "max_staleness": 2},
                                 "lppo": {"curation": {"drop_all_wrong": True}}})
    s = Scheduler(cfg, _samples(4))
    a, b, c, *_ = s.next_items("a0", 3)
    assert s.on_group(_group(a, correct=0)).reason == "all_wrong"
    assert s.on_group(_group(b, correct=4)).reason == "all_correct"
    assert s.on_group(_group(c, correct=1)).accepted
    assert s.staleness.drops == {"all_wrong": 1, "all_correct": 1}


def test_stale_invalid_and_duplicate_groups():
    s = Scheduler(_cfg(max_staleness=0), _samples(3))
    a, b = s.next_items("a0", 2)
    s.set_version(1, step=1)
    stale = s.on_group(_group(a, correct=2, version=0))
    assert stale.reason == "stale" and stale.observation is None
    assert s.samples[a.sample_id].stats.attempts == 0  # stale groups do not move the EMA
    bad = s.on_group(_group(b, correct=2, error="prompt too long"))
    assert bad.reason == "invalid"
    again = s.on_group(_group(b, correct=2))
    assert again.duplicate and not again.accepted


def test_lost_actor_releases_its_work():
    s = Scheduler(_cfg(max_staleness=0), _samples(4))
    s.next_items("a0", 1)
    s.next_items("a1", 1)
    assert s.staleness.in_flight == 2
    assert s.on_actor_lost("a0") == 1
    assert s.staleness.in_flight == 1 and len(s.next_items("a2", 5)) == 1


def test_retired_sample_is_rechecked_at_the_configured_share():
    cfg = Config.model_validate({
        "learner": {"batch_groups": 8, "max_staleness": 8},
        "lppo": {"curation": {"retire_after": 1, "recheck_fraction": 0.5, "overdispatch": 1.0}},
    })
    s = Scheduler(cfg, _samples(3))
    (first,) = s.next_items("a0", 1)
    s.on_group(_group(first, correct=4))
    assert s.samples[first.sample_id].status == "solved"
    items = s.next_items("a0", 4)
    assert [i.sample_id for i in items].count(first.sample_id) == 1  # 50% share, one solved


def test_state_round_trips_through_json():
    s = Scheduler(_cfg(max_staleness=2), _samples(3))
    for it in s.next_items("a0", 2):
        s.on_group(_group(it, correct=0))
    s.next_items("a0", 1)  # one left in flight at the "checkpoint"
    state = json.loads(json.dumps(s.state_dict()))
    t = Scheduler(_cfg(max_staleness=2), _samples(3))
    t.load_state_dict(state)
    assert {k: (e.stats, e.status, e.ratio) for k, e in t.samples.items()} == \
        {k: (e.stats, e.status, e.ratio) for k, e in s.samples.items()}
    assert t.seen_attempts == s.seen_attempts
    assert t.staleness.in_flight == 0 and t.staleness.lost == 1  # in flight at save: released
    assert t.next_items("a0", 1)


def test_unguidable_sample_counts_as_guided_so_it_can_be_parked():
    cuts = SolutionCuts.from_token_texts([1, 2], ["The answer is ", "7"], "line", answer="7")
    cfg = Config.model_validate({
        "learner": {"batch_groups": 8, "max_staleness": 8},
        "lppo": {"curation": {"park_after": 1, "drop_all_wrong": False}},
    })
    s = Scheduler(cfg, _samples(1, cuts=cuts))
    for _ in range(8):
        items = s.next_items("a0", 1)
        if not items:
            break
        assert items[0].prefix_ids is None  # nothing to show before the answer
        s.on_group(_group(items[0], correct=0))
    assert s.samples[0].status == "parked"
    assert np.isclose(s.samples[0].stats.last_ratio, cfg.lppo.pg.max_ratio)


def test_no_samples_is_an_error():
    with pytest.raises(ValueError):
        Scheduler(_cfg(), [])
