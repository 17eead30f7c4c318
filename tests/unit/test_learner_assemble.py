"""A training batch from accepted groups (learner.assemble): prefixes per completion, one
carrier of each group's prefix terms, advantages over mixed groups, the metrics."""

from __future__ import annotations

import numpy as np
import pytest

from learner.assemble import assemble
from learner.scheduler import Scheduler
from lppo.core.config import Config
from tests.unit.test_learner_scheduler import _group, _samples


def _cfg(**pg) -> Config:
    return Config.model_validate({
        "learner": {"batch_groups": 4, "group_size": 4, "max_staleness": 8},
        "lppo": {"curation": {"overdispatch": 1.0, "recheck_fraction": 0.0}, "pg": pg},
    })


def _decisions(cfg: Config):
    """A mixed guided group of sample A (guided 2/2 correct, unguided 0/2) and an unguided
    group of sample B (2/4 correct)."""
    s = Scheduler(cfg, _samples(2))
    a, b = s.next_items("a0", 2)
    s.on_group(_group(a, correct=0))                 # A fails: guided next
    (guided,) = s.next_items("a0", 1)
    assert guided.sample_id == a.sample_id and guided.guided == 2
    da = s.on_group(_group(guided, correct=2, unguided=2))
    db = s.on_group(_group(b, correct=2))
    assert da.accepted and db.accepted
    return da, db


def test_mixed_group_prefixes_and_one_carrier_of_the_prefix_terms():
    cfg = _cfg(off_policy_loss=True, sft_coef=0.5, guided_share=0.5)
    da, db = _decisions(cfg)
    batch = assemble([da, db], cfg)
    a, b = batch.sequences[:4], batch.sequences[4:]
    prefix = tuple(da.group.prefix_ids.tolist())
    assert [tuple(s.prefix_ids.tolist()) for s in a] == [prefix, prefix, (), ()]
    assert all(s.prefix_ids.size == 0 and not s.prefix_loss for s in b)
    assert [s.prefix_loss for s in a] == [True, False, False, False]
    # the mixed group's rewards [1, 1, 0, 0] share one baseline: +-0.866 (std with ddof 1)
    assert [s.advantage for s in a] == pytest.approx([0.866, 0.866, -0.866, -0.866], abs=1e-3)
    # prefix against the unguided EMA before the group (0): A = 1 - 0; LP weights are 1 here
    assert a[0].prefix_advantage == pytest.approx(1.0) and a[0].sft_weight == 0.5
    assert batch.prefix_terms() == ["off_policy+sft", None]
    assert batch.prefix_advantages() == [pytest.approx(1.0), None]
    m = batch.metrics
    assert (m["batch/mixed_groups"], m["batch/prefix_taught"]) == (1.0, 1.0)
    assert m["batch/lp_weight_not_one"] == 0.0


def test_group_baseline_and_masked_prefix():
    cfg = _cfg(off_policy_loss=True, off_policy_baseline="group", guided_share=0.5)
    batch = assemble(list(_decisions(cfg)), cfg)
    # LUFFY: the expert's correct answer as a member of the mixed group: (1 - 0.5) / 0.577
    assert batch.sequences[0].prefix_advantage == pytest.approx(0.866, abs=1e-3)
    masked = _cfg(guided_share=0.5)
    batch = assemble(list(_decisions(masked)), masked)
    assert not any(s.prefix_loss for s in batch.sequences)
    assert batch.prefix_terms() == ["masked", None] and batch.prefix_advantages() == [None, None]


def test_overlong_penalty_enters_the_advantages_and_truncated_completions_carry_no_loss():
    import msgspec

    from lppo.core.wire import Array

    cfg = Config.model_validate({
        "actor": {"sampling": {"max_tokens": 4},
                  "reward": {"overlong_buffer": 2, "overlong_penalty": 1.0}},
        "learner": {"batch_groups": 4, "group_size": 4, "max_staleness": 8,
                    "mask_truncated": True},
        "lppo": {"curation": {"overdispatch": 1.0, "recheck_fraction": 0.0},
                 "pg": {"guided_share": 0.5}},
    })
    _, db = _decisions(cfg)  # B: rewards [1, 1, 0, 0], two tokens each
    comps = db.group.completions
    # the second correct one ran to the budget: 4 tokens, cut (penalty -1: reward 1 -> 0);
    # a wrong one used 3 tokens and stopped (penalty -0.5: reward 0 -> -0.5)
    comps[1] = msgspec.structs.replace(comps[1], token_ids=Array.of([1, 2, 3, 4], "int32"),
                                       logprobs=Array.of([-1] * 4, "float32"),
                                       finish_reason="length")
    comps[2] = msgspec.structs.replace(comps[2], token_ids=Array.of([1, 2, 3], "int32"),
                                       logprobs=Array.of([-1] * 3, "float32"))
    batch = assemble([db], cfg)
    rewards = [1.0, 0.0, -0.5, 0.0]
    mean, std = sum(rewards) / 4, float(np.std(rewards, ddof=1))
    assert [s.advantage for s in batch.sequences] == pytest.approx(
        [(r - mean) / std for r in rewards], abs=1e-5)
    assert [s.loss for s in batch.sequences] == [True, False, True, True]
