"""Several updates per batch (`learner.ppo_epochs`, `learner.mini_batches`), rejection outside a
ratio band (`learner.reject_band`) and masked completions, on a tiny model (learner/trainer.py).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from learner.algo.loss import LossInputs, loss_normalizer, ppo_loss
from learner.batch import TrainSequence, collate, pack
from learner.trainer import Trainer, split_groups
from lppo.core.config import Config
from tests.unit.trainer_batches import on_policy_batch


def make_trainer(tiny_model, **learner) -> Trainer:
    torch.manual_seed(0)
    cfg = Config.model_validate({
        "model": {"path": str(tiny_model), "dtype": "float32", "max_model_len": 256},
        "data": {"max_prompt_tokens": 64}, "actor": {"sampling": {"max_tokens": 16}},
        "learner": {"lr": 1e-3, "device": "cpu", "micro_batch_tokens": 64, "max_steps": 10,
                    "batch_groups": 4, **learner},
    })
    return Trainer(cfg)


def batch(trainer: Trainer, groups: int = 4, noise: float = 0.0) -> list[TrainSequence]:
    return on_policy_batch(trainer, groups, noise)


def params(trainer: Trainer) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in trainer.model.parameters()])


def test_one_epoch_one_mini_batch_is_the_single_update_exactly(tiny_model):
    """The default step is one update: forward, the PPO loss against the behaviour log-probs
    with the batch normaliser, backward, clip, AdamW. Done here by hand on a twin trainer."""
    trainer = make_trainer(tiny_model, shared_prefix=False)
    twin = make_trainer(tiny_model, shared_prefix=False)
    seqs = batch(trainer)
    stats = trainer.step(seqs)
    micro = [collate(b, twin.pad_id) for b in pack(seqs, 64)]
    normalizer = loss_normalizer("token_mean", sum(m.loss_tokens for m in micro), len(seqs), 16)
    twin.optimizer.zero_grad()
    total = 0.0
    for mb in micro:
        t = twin._tensors(mb)
        logp, _ = twin._logp(twin.model, t, mb)
        loss, _ = ppo_loss(LossInputs(logp, t["behaviour_logprobs"], t["advantages"],
                                      t["loss_mask"]), twin.settings, normalizer)
        loss.backward()
        total += float(loss)
    torch.nn.utils.clip_grad_norm_(twin.model.parameters(), twin.cfg.learner.grad_clip)
    for group in twin.optimizer.param_groups:
        group["lr"] = stats.lr
    twin.optimizer.step()
    assert torch.equal(params(trainer), params(twin))
    assert stats.loss == pytest.approx(total, abs=1e-7)
    assert "update/count" not in stats.metrics


def test_two_epochs_make_two_updates_clipped_against_the_first_pass(tiny_model):
    trainer = make_trainer(tiny_model, ppo_epochs=2, lr=5e-3, clip_low=0.01, clip_high=0.01)
    stats = trainer.step(batch(trainer))
    state = next(iter(trainer.optimizer.state.values()))
    assert int(state["step"]) == 2 and trainer.steps_done == 1  # the LR schedule: one step
    m = stats.metrics
    assert m["update/count"] == 2
    assert m["update/0/approx_kl"] == pytest.approx(0.0, abs=1e-9)  # logp == old at first
    assert m["update/0/clip_frac"] == 0.0
    assert m["update/1/approx_kl"] > 0 and m["update/1/clip_frac"] > 0  # the clip works
    assert stats.loss == pytest.approx(m["update/0/loss"])


def test_mini_batches_split_whole_groups_and_update_once_each(tiny_model):
    trainer = make_trainer(tiny_model, mini_batches=2)
    seqs = batch(trainer)
    parts = split_groups(seqs, 2)
    assert [sorted({s.group for s in p}) for p in parts] == [[0, 1], [2, 3]]
    assert split_groups(seqs, 1) == [seqs]
    assert [len({s.group for s in p}) for p in split_groups(seqs, 3)] == [1, 2, 1]
    stats = trainer.step(seqs)
    assert int(next(iter(trainer.optimizer.state.values()))["step"]) == 2
    assert stats.metrics["update/count"] == 2 and stats.sequences == 16
    assert stats.tokens == sum(len(s.completion_ids) for s in seqs)


def test_every_completion_off_by_a_nat_is_rejected_and_none_on_policy(tiny_model):
    """Behaviour log-probs 1 nat off per token (ratio e or 1/e, outside [0.5, 2]): all
    rejected, so the update changes nothing; on-policy ones: none rejected."""
    trainer = make_trainer(tiny_model, reject_band=(0.5, 2.0))
    before = params(trainer)
    stats = trainer.step(batch(trainer, noise=1.0))
    assert stats.metrics["is/rejected_frac"] == 1.0 and stats.tokens == 0
    assert torch.equal(params(trainer), before)
    assert trainer.step(batch(trainer)).metrics["is/rejected_frac"] == 0.0


def test_a_band_rejects_only_the_far_completions(tiny_model):
    trainer = make_trainer(tiny_model, reject_band=(0.5, 2.0), shared_prefix=False)
    seqs = batch(trainer)
    far = {0, 5, 10}
    seqs = [replace(s, behaviour_logprobs=s.behaviour_logprobs - 2.0) if i in far else s
            for i, s in enumerate(seqs)]
    twin = make_trainer(tiny_model, shared_prefix=False)
    masked = [replace(s, loss=False) if i in far else s for i, s in enumerate(seqs)]
    stats = trainer.step(seqs)
    assert stats.metrics["is/rejected_frac"] == pytest.approx(3 / 16)
    twin.step(masked)  # the same completions masked by hand: the same update
    assert torch.equal(params(trainer), params(twin))


def test_a_masked_completion_has_no_loss_tokens(tiny_model):
    trainer = make_trainer(tiny_model)
    seqs = batch(trainer)
    seqs[1] = replace(seqs[1], loss=False)
    mb = collate(seqs[:2], trainer.pad_id)
    assert mb.loss_mask[1].sum() == 0 and mb.loss_mask[0].sum() == len(seqs[0].completion_ids)
    stats = trainer.step(seqs)
    assert stats.tokens == sum(len(s.completion_ids) for s in seqs) - len(seqs[1].completion_ids)
