"""The pure parts of multi-rank training (learner.distributed): the batch split by group and
the batch as tensors. The ranks themselves run in tests/integration/test_distributed.py."""

from __future__ import annotations

import numpy as np
import pytest

from learner.batch import TrainSequence
from learner.distributed import DistContext, decode_sequences, encode_sequences, shard_groups


def _seqs(lengths: dict[int, list[int]]) -> list[TrainSequence]:
    return [TrainSequence(np.arange(1, 3), np.arange(7, 7 + (g % 2)), np.arange(20, 20 + n),
                          -np.ones(n), advantage=0.1 * i, group=g, prefix_loss=bool(g % 2),
                          prefix_advantage=0.5, sft_weight=0.25)
            for g, ns in lengths.items() for i, n in enumerate(ns)]


def test_groups_stay_whole_and_the_load_is_balanced():
    seqs = _seqs({0: [30, 30], 1: [5, 5], 2: [20, 20], 3: [8, 9], 4: [1, 1]})
    shares = shard_groups(seqs, 2)
    groups = [{s.group for s in share} for share in shares]
    assert groups[0].isdisjoint(groups[1]) and groups[0] | groups[1] == {0, 1, 2, 3, 4}
    loads = [sum(s.length for s in share) for share in shares]
    assert abs(loads[0] - loads[1]) <= 20 and sum(len(s) for s in shares) == len(seqs)
    assert len(shard_groups(seqs, 1)[0]) == len(seqs)


def test_fewer_groups_than_ranks_is_refused_with_the_setting_to_change():
    with pytest.raises(ValueError, match="learner.batch_groups"):
        shard_groups(_seqs({0: [3, 3]}), 2)


def test_sequences_survive_the_tensor_encoding():
    seqs = _seqs({0: [4, 2], 1: [3, 1], 2: [0, 5]})
    back = decode_sequences(*encode_sequences(seqs))
    assert len(back) == len(seqs)
    for a, b in zip(seqs, back, strict=True):
        for name in ("prompt_ids", "prefix_ids", "completion_ids", "behaviour_logprobs"):
            assert np.array_equal(getattr(a, name), getattr(b, name))
        assert (a.group, a.prefix_loss, a.advantage, a.prefix_advantage, a.sft_weight) == (
            b.group, b.prefix_loss, pytest.approx(b.advantage), b.prefix_advantage,
            b.sft_weight)


def test_one_rank_without_torchrun(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ctx = DistContext.from_env()
    assert not ctx.enabled and ctx.all_sum([1.5, 2], device=None) == [1.5, 2.0]
