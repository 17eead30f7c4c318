"""Rollout dumps (learner/dump.py): every field of every trained completion comes back, and a
missing, foreign or damaged file is a clear error."""

from __future__ import annotations

import numpy as np
import pytest

from learner.batch import TrainSequence
from learner.dump import dump_path, read_dump, write_dump
from lppo.core.errors import UserError


def seqs() -> list[TrainSequence]:
    return [
        TrainSequence((1, 2, 3), (50, 51), (100, 101, 102), (-0.5, -1.0, -1.5), advantage=0.75,
                      group=0, prefix_advantage=0.25, prefix_loss=True, sft_weight=0.5),
        TrainSequence((1, 2, 3), (), (104,), (-2.0,), advantage=-0.75, group=0, loss=False),
        TrainSequence((7,), (), (9, 9), (-0.1, -0.2), advantage=0.0, group=1),
    ]


def test_a_dump_comes_back_whole(tmp_path):
    path = write_dump(tmp_path, 7, steps_done=6, policy_version=7, seqs=seqs())
    assert path == dump_path(tmp_path, 7) and path.name == "step_7.safetensors"
    dump = read_dump(path)
    assert (dump.step, dump.steps_done, dump.policy_version) == (7, 6, 7)
    for got, want in zip(dump.sequences, seqs(), strict=True):
        for name in ("prompt_ids", "prefix_ids", "completion_ids", "behaviour_logprobs"):
            assert np.array_equal(getattr(got, name), getattr(want, name)), name
        for name in ("advantage", "group", "prefix_advantage", "prefix_loss", "sft_weight",
                     "loss"):
            assert getattr(got, name) == getattr(want, name), name


def test_missing_foreign_and_damaged_dumps_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="no rollout dump .*learner.dump_rollouts = true"):
        read_dump(tmp_path / "step_1.safetensors")
    import torch
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"), metadata={"a": "b"})
    with pytest.raises(UserError, match="not an lppo rollout dump"):
        read_dump(tmp_path / "other.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(UserError, match="unreadable rollout dump"):
        read_dump(tmp_path / "bad.safetensors")


def test_replay_starts_from_the_checkpoint_before_the_step(tmp_path):
    from learner.replay import weights_for
    from lppo.core.config import Config

    cfg = Config.model_validate({"run": {"output_dir": str(tmp_path), "name": "r"},
                                 "model": {"path": "initial"}})
    assert weights_for(cfg, 1, None) == ("initial", None)
    with pytest.raises(UserError, match=r"step 3 started from the weights of step 2, and the "
                                        r"run has no checkpoint of it \(it has: none\)"):
        weights_for(cfg, 3, None)
    ckpt = tmp_path / "r" / "checkpoints" / "step_2"
    (ckpt / "model").mkdir(parents=True)
    assert weights_for(cfg, 3, None) == (str(ckpt / "model"), ckpt)
    assert weights_for(cfg, 3, tmp_path / "elsewhere") == (str(tmp_path / "elsewhere"), None)
