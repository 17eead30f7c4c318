"""What the learner hands the ledger about LP weights: nothing on arrival, the applied
(batch-renormalised) weight of every group a train step used."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from learner.algo.advantages import compute_advantages
from learner.algo.progress import SampleStats, lp_weight
from learner.algo.sample import Observation
from learner.assemble import assemble
from learner.io import LearnerIO
from learner.loop import Learner, StepInputs
from learner.scheduler import Decision, SampleEntry, Scheduler
from lppo.core.config import Config
from lppo.core.wire import Array, Completion, RolloutGroup

CFG = Config.model_validate({"learner": {"batch_groups": 3, "group_size": 4,
                                         "max_staleness": 1}})


def _group(attempt_id: str, sample_id: int, correct: int, prefix_len: int = 0) -> RolloutGroup:
    comps = [Completion(token_ids=Array.of([1, 2], "int32"), logprobs=Array.of([-1, -1], "float32"),
                        text="x", finish_reason="stop", reward=float(i < correct),
                        verdict="correct" if i < correct else "wrong") for i in range(4)]
    return RolloutGroup(
        attempt_id=attempt_id, sample_id=sample_id, actor_id="a0", policy_version=0,
        prompt_ids=Array.of([1], "int32"), prefix_ids=Array.of([9] * prefix_len, "int32"),
        prefix_ratio=0.5 if prefix_len else 0.0, prefix_len=prefix_len, completions=comps,
        gen_seconds=0.1,
    )


def _accepted(i: int, progress: float, correct: int) -> Decision:
    obs = Observation(stats=SampleStats(), status="active", transition=None, progress=progress,
                      weight=lp_weight(progress, CFG.lppo.lp), next_ratio=0.0)
    return Decision(_group(f"t-{i}", i, correct), None, reason=None, observation=obs)


def test_step_record_carries_the_lp_weights_applied_to_the_advantages():
    learner = Learner(CFG)
    learner.io = SimpleNamespace(rejected_frames=dict)
    decisions = [_accepted(0, 0.2, 1), _accepted(1, 0.0, 2), _accepted(2, -0.1, 3)]
    batch = assemble(decisions, CFG)
    seqs = batch.sequences
    setup = SimpleNamespace(step=1, version=1, scheduler=SimpleNamespace(
        status_counts=lambda: {"active": 3, "solved": 0, "parked": 0}))
    stats = SimpleNamespace(metrics={}, loss=0.1, grad_norm=1.0, lr=1e-6, tokens=24)
    empty = {"dropped": {}, "actors": {}}
    rec = learner._step_record(setup, StepInputs(decisions, batch, wait_s=0.0), stats,
                               empty, empty, train_s=0.0, sync_s=0.0)

    assert rec.used_attempt_ids == ["t-0", "t-1", "t-2"]
    raw = np.array([d.observation.weight for d in decisions])
    assert np.mean(rec.used_lp_weights) == pytest.approx(1.0)  # renormalised over the batch
    assert rec.used_lp_weights == pytest.approx(raw / raw.mean())
    assert not np.allclose(rec.used_lp_weights, raw)
    # ... and these are the factors that actually multiplied each group's advantages
    adv = compute_advantages([[c.reward for c in d.group.completions] for d in decisions],
                             CFG.learner.advantage, CFG.learner.std_normalize)
    for g, w in enumerate(rec.used_lp_weights):
        applied = [s.advantage for s in seqs if s.group == g]
        assert applied == pytest.approx(adv.values[g] * w)
    assert rec.used_prefix_terms == [None] * 3 and rec.used_prefix_advantages == [None] * 3
    assert rec.metrics["batch/lp_weight_std"] == pytest.approx(np.std(rec.used_lp_weights))
    assert rec.metrics["batch/lp_weight_not_one"] == pytest.approx(1.0)  # all moved here


class _Writer:
    def __init__(self):
        self.groups = []

    def put_group(self, record):
        self.groups.append(record)

    def flush(self):
        pass


def test_arrival_records_no_lp_weight_the_sample_state_keeps_the_raw_one():
    sched = Scheduler(CFG, [SampleEntry(sample_id=i, problem=f"p{i}", answer="7")
                            for i in range(2)])
    writer = _Writer()
    io = LearnerIO(CFG, sched, writer)
    items = sched.next_items("a0", 2)
    io._record([_group(it.attempt_id, it.sample_id, correct) for it, correct
                in zip(items, (2, 0), strict=True)])
    kept, dropped = writer.groups
    assert (kept.dropped_reason, dropped.dropped_reason) == (None, "all_wrong")
    assert kept.lp_weight is None and dropped.lp_weight is None  # set by the step that uses it
    assert kept.state.weight == 1.0  # first observation: progress 0, raw weight 1
    assert io.accepted.qsize() == 1
