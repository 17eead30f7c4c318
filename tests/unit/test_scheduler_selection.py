"""The scheduler with each selection policy (`learner.selection`): dispatches record why,
groups feed the policy back, curation's revisits go first, the state survives a checkpoint;
the bandit's categories come from the data rows."""

from __future__ import annotations

import json

import pytest

from learner.scheduler import SampleEntry, Scheduler
from learner.setup import category_of
from lppo.core.config import Config
from lppo.core.errors import UserError
from store.records import SampleRecord
from tests.unit.test_learner_scheduler import CUTS, _group

POLICIES = ["lppo", "uniform", "thompson", "target_pass_rate", "category_bandit"]


def _cfg(selection: str, **curation) -> Config:
    learner = {"batch_groups": 4, "group_size": 4, "max_staleness": 8, "max_steps": 10,
               "selection": selection}
    if selection == "category_bandit":
        learner["category_bandit"] = {"field": "level"}
    return Config.model_validate({
        "learner": learner,
        "lppo": {"curation": {"overdispatch": 1.0, "recheck_fraction": 0.0, **curation}},
    })


def _samples(k: int) -> list[SampleEntry]:
    return [SampleEntry(sample_id=i, problem=f"p{i}", answer="7", cuts=CUTS,
                        category=str(1 + i % 3)) for i in range(k)]


def _round(s: Scheduler, step: int, correct=lambda sid: sid % 5) -> list:
    items = s.next_items("a0", 2) + s.next_items("a1", 2)  # two actors share the policy
    whys = [(s.inflight[i.attempt_id].selection, s.inflight[i.attempt_id].score) for i in items]
    for it in items:
        actor = s.inflight[it.attempt_id].actor_id
        decision = s.on_group(_group(it, correct=min(4, correct(it.sample_id)), version=step,
                                     actor=actor))
        assert decision.reason != "invalid"
    s.set_version(step + 1, step=step + 1)
    return whys


@pytest.mark.parametrize("selection", POLICIES)
def test_every_policy_dispatches_records_why_and_resumes(selection):
    s = Scheduler(_cfg(selection), _samples(12))
    whys = [w for step in range(4) for w in _round(s, step)]
    assert len(whys) == 16 and {name for name, _ in whys} == {selection}
    assert all(score is None or isinstance(score, float) for _, score in whys)
    state = json.loads(json.dumps(s.state_dict()))
    assert state["selection"]["policy"] == selection
    t = Scheduler(_cfg(selection), _samples(12))
    t.load_state_dict(state)
    assert t.policy.state_dict() == s.policy.state_dict()
    assert [i.sample_id for i in t.next_items("a0", 4)] == \
        [i.sample_id for i in s.next_items("a0", 4)]  # the resumed run chooses the same


def test_revisits_go_first_whatever_the_policy():
    s = Scheduler(_cfg("thompson", revisit_steps=1), _samples(12))
    first = s.next_items("a0", 4)
    for it in first:
        s.on_group(_group(it, correct=0 if it is first[0] else 2))
    s.set_version(1, step=1)
    nxt = s.next_items("a0", 4)
    assert nxt[0].sample_id == first[0].sample_id
    d = s.inflight[nxt[0].attempt_id]
    assert (d.selection, d.score) == ("revisit", 0.0)
    assert {s.inflight[i.attempt_id].selection for i in nxt[1:]} == {"thompson"}


def test_thompson_learns_from_unguided_completions_only():
    s = Scheduler(_cfg("thompson"), _samples(2))
    (item,) = s.next_items("a0", 1)
    s.on_group(_group(item, correct=0))  # unguided: 0 of 4
    assert s.policy.belief(item.sample_id) == (1.0, 5.0)
    s.set_version(1, step=1)
    items = s.next_items("a0", 2)
    guided = next(i for i in items if i.sample_id == item.sample_id)
    assert guided.prefix_ratio > 0  # failed once: guided now
    s.on_group(_group(guided, correct=4))
    assert s.policy.belief(item.sample_id) == (1.0, 5.0)  # a prefix's successes are not its own


def test_the_bandit_values_the_category_whose_groups_carry_signal():
    s = Scheduler(_cfg("category_bandit"), _samples(12))
    for step in range(6):  # level 1 (ids 0, 3, 6, 9) mixes answers; the others never do
        _round(s, step, correct=lambda sid: 2 if sid % 3 == 0 else 0)
    q = s.policy.q
    assert q["1"] > 0.5 and q.get("2", 0.0) == 0.0 and q.get("3", 0.0) == 0.0


def test_a_run_resumed_with_another_policy_starts_it_afresh():
    s = Scheduler(_cfg("thompson"), _samples(6))
    _round(s, 0)
    t = Scheduler(_cfg("uniform"), _samples(6))
    t.load_state_dict(json.loads(json.dumps(s.state_dict())))
    assert t.policy.name == "uniform" and t.next_items("a0", 2)


def test_categories_come_from_the_data_rows_field():
    cfg = _cfg("category_bandit")
    rec = SampleRecord(dataset="demo", source_key="train.jsonl:3", problem="p", answer="1",
                       meta={"level": 2})
    assert category_of(cfg, rec) == "2"
    assert category_of(_cfg("lppo"), rec) is None
    bare = SampleRecord(dataset="demo", source_key="train.jsonl:4", problem="p", answer="1",
                        meta={"topic": "x"})
    with pytest.raises(UserError, match=r"row train.jsonl:4 of data set 'demo' has no scalar "
                                        r"field 'level' \(fields: \['topic'\]\)"):
        category_of(cfg, bare)
