"""Micro-batching, tensor alignment, LR schedule, and one real optimizer step on a tiny model."""

from __future__ import annotations

import pytest
import torch

from learner.batch import TrainSequence, collate, pack
from learner.trainer import Trainer, lr_factor
from lppo.core.config import Config
from tests.unit.trainer_batches import on_policy_batch


def _seq(p, q, c, adv=1.0, group=0, prefix_loss=False) -> TrainSequence:
    return TrainSequence(
        prompt_ids=tuple(range(1, p + 1)), prefix_ids=tuple(range(50, 50 + q)),
        completion_ids=tuple(range(100, 100 + c)), behaviour_logprobs=tuple([-1.0] * c),
        advantage=adv, group=group, prefix_advantage=0.5, prefix_loss=prefix_loss,
    )


def test_collate_aligns_targets_masks_and_logprobs():
    mb = collate([_seq(3, 2, 4, adv=2.0, prefix_loss=True), _seq(2, 0, 1)], pad_id=0)
    assert mb.input_ids.shape == (2, 9) and mb.targets.shape == (2, 8)
    assert mb.input_ids[0].tolist() == [1, 2, 3, 50, 51, 100, 101, 102, 103]
    # completion tokens 100..103 are targets at positions 4..7
    assert mb.loss_mask[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert mb.targets[0, 4:8].tolist() == [100, 101, 102, 103]
    assert mb.prefix_mask[0].tolist() == [0, 0, 1, 1, 0, 0, 0, 0]
    assert mb.targets[0, 2:4].tolist() == [50, 51]
    assert mb.advantages[0].tolist() == [0, 0, 0.5, 0.5, 2, 2, 2, 2]
    assert mb.behaviour_logprobs[0, 4:].tolist() == [-1.0] * 4
    assert mb.loss_mask[1].tolist() == [0, 1, 0, 0, 0, 0, 0, 0]
    assert mb.attention_mask[1].tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert mb.loss_tokens == 5


def test_pack_respects_token_budget():
    seqs = [_seq(5, 0, n) for n in (20, 3, 10, 8, 1)]
    batches = pack(seqs, token_budget=40)
    assert sorted(len(s.completion_ids) for b in batches for s in b) == [1, 3, 8, 10, 20]
    for b in batches:
        assert len(b) == 1 or len(b) * max(s.length for s in b) <= 40
    assert len(pack([_seq(5, 0, 100)], token_budget=10)) == 1  # oversize gets its own


def test_sequences_are_validated():
    with pytest.raises(ValueError, match="behaviour log-probs"):
        TrainSequence((1,), (), (5, 6), (-1.0,), 1.0, 0)
    with pytest.raises(ValueError, match="prompt token"):
        TrainSequence((), (), (5,), (-1.0,), 1.0, 0)


@pytest.mark.parametrize(("schedule", "expected"), [
    ("constant", [0.5, 1.0, 1.0, 1.0, 1.0]),
    ("linear", [0.5, 1.0, 1.0, 2 / 3, 1 / 3]),
    ("cosine", [0.5, 1.0, 1.0, 0.75, 0.25]),
])
def test_lr_schedule_warmup_then_decay(schedule, expected):
    got = [lr_factor(s, warmup=2, total=5, schedule=schedule) for s in range(5)]
    assert got == pytest.approx(expected)


@pytest.fixture()
def trainer(tiny_model) -> Trainer:
    torch.manual_seed(0)
    cfg = Config.model_validate({
        "model": {"path": str(tiny_model), "dtype": "float32", "max_model_len": 256},
        "data": {"max_prompt_tokens": 64},
        "actor": {"sampling": {"max_tokens": 16}},
        "learner": {"lr": 1e-3, "device": "cpu", "micro_batch_tokens": 64, "max_steps": 10},
    })
    return Trainer(cfg)


def _batch(trainer: Trainer) -> list[TrainSequence]:
    return on_policy_batch(trainer, groups=2)


def _surrogate(trainer: Trainer, seqs) -> float:
    from learner.algo.loss import LossInputs, ppo_loss

    mb = collate(seqs, trainer.pad_id)
    with torch.no_grad():
        t = trainer._tensors(mb)
        logp, _ = trainer._logp(trainer.model, t, mb)
        loss, _ = ppo_loss(LossInputs(logp, t["behaviour_logprobs"], t["advantages"],
                                      t["loss_mask"]), trainer.settings)
    return float(loss)


def test_one_step_changes_every_parameter_and_lowers_the_loss(trainer):
    seqs = _batch(trainer)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    loss_before = _surrogate(trainer, seqs)
    stats = trainer.step(seqs)
    assert stats.sequences == 8 and stats.tokens == sum(len(s.completion_ids) for s in seqs)
    assert stats.grad_norm > 0 and stats.lr == pytest.approx(1e-3)
    assert abs(stats.loss - loss_before) < 1e-4  # on-policy: the step's loss is the surrogate
    unchanged = [n for n, p in trainer.model.named_parameters()
                 if p.requires_grad and torch.equal(before[n], p.detach())]
    assert unchanged == []
    assert _surrogate(trainer, seqs) < loss_before - 1e-3
    assert 0.0 <= stats.metrics["clip_frac"] <= 1.0 and "entropy" in stats.metrics
    # several micro-batches: token counts add up (the step row and train/tokens agree)
    assert len(pack(seqs, trainer.cfg.learner.micro_batch_tokens)) > 1
    assert stats.metrics["tokens"] == stats.tokens


def test_micro_batching_does_not_change_the_gradient(trainer):
    seqs = _batch(trainer)
    grads = []
    for budget in (1000, 16):
        trainer.cfg.learner.micro_batch_tokens = budget
        trainer.optimizer.zero_grad()
        micro = [collate(b, trainer.pad_id) for b in pack(seqs, budget)]
        tokens = sum(m.loss_tokens for m in micro)
        for mb in micro:
            trainer._micro_step(mb, float(tokens), None)
        grads.append(torch.cat([p.grad.flatten() for p in trainer.model.parameters()]))
    assert len(pack(seqs, 16)) > 1
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_a_non_finite_batch_changes_nothing(trainer):
    from dataclasses import replace

    seqs = _batch(trainer)
    seqs[0] = replace(seqs[0], advantage=float("nan"))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    lr_step = trainer.steps_done
    stats = trainer.step(seqs)
    assert not stats.finite
    assert all(torch.equal(before[n], p.detach()) for n, p in trainer.model.named_parameters())
    assert trainer.optimizer.state == {} and trainer.steps_done == lr_step
    assert trainer.step(_batch(trainer)).finite  # the next good batch trains as usual


def test_bf16_compute_keeps_fp32_masters_so_small_updates_take_effect(tiny_model):
    """At lr 1e-6 a bf16 parameter of scale 0.02 rarely moves (its spacing there is ~1e-4);
    the fp32 masters do, and actors get the weights in the compute dtype."""
    torch.manual_seed(0)
    cfg = Config.model_validate({
        "model": {"path": str(tiny_model), "dtype": "bfloat16", "max_model_len": 256},
        "data": {"max_prompt_tokens": 64}, "actor": {"sampling": {"max_tokens": 16}},
        "learner": {"lr": 1e-6, "device": "cpu", "micro_batch_tokens": 64, "max_steps": 10},
    })
    trainer = Trainer(cfg)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    seqs = _batch(trainer)
    for _ in range(3):
        assert trainer.step(seqs).finite
    moved = changed = 0
    total = sum(q.numel() for q in trainer.model.parameters())
    for n, p in trainer.model.named_parameters():
        moved += int((p.detach() != before[n]).sum())
        changed += int((p.detach().bfloat16() != before[n].bfloat16()).sum())
    print(f"fp32 masters moved: {moved / total:.4f}; visible in bf16: {changed / total:.4f}")
    assert moved / total > 0.9  # as good as fp32 training
    assert changed / total < 0.5  # what bf16 parameters would have kept of those updates
    published = trainer.policy_state()
    assert {t.dtype for t in published.values() if t.is_floating_point()} == {torch.bfloat16}


def test_float16_is_refused_with_the_reason():
    with pytest.raises(Exception, match="model.dtype"):
        Config.model_validate({"model": {"dtype": "float16"}})


def test_cpu_offload_is_refused_where_there_is_nothing_to_offload(tiny_model):
    """FSDP2's CPU offload moves shards out of GPU memory: on CPU, or with one rank (no FSDP2),
    the setting would do nothing, so it is an error naming the key."""
    from lppo.core.errors import UserError

    cfg = Config.model_validate({
        "model": {"path": str(tiny_model), "dtype": "float32", "max_model_len": 256},
        "data": {"max_prompt_tokens": 64}, "actor": {"sampling": {"max_tokens": 16}},
        "learner": {"device": "cpu", "cpu_offload": True},
    })
    with pytest.raises(UserError, match=r"learner.cpu_offload: .* needs CUDA and several "
                                        r"learner ranks; this learner has 1 rank\(s\) on cpu"):
        Trainer(cfg)
