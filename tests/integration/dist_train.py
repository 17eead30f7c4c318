"""Run under torchrun by tests/integration/test_distributed.py: N ranks train the same batch as
one process would, and rank 0 writes the parameters.

    torchrun --nproc_per_node 2 tests/integration/dist_train.py MODEL_DIR OUT.safetensors STEPS [cuda]

Rank 0 builds the batch (`batch` below) and sends it to the others
(`learner.distributed.broadcast_sequences`); each rank trains its groups.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from learner import checkpoint
from learner.batch import TrainSequence
from learner.distributed import DistContext, broadcast_sequences, shard_groups
from learner.main import leave
from learner.trainer import Trainer
from lppo.core.config import Config


def config(model: str, device: str = "cpu", cpu_offload: bool = False,
           updates: bool = False) -> Config:
    """`updates`: two passes of three mini-batches, and a rejection band (a rank with fewer
    groups than mini-batches joins some updates with nothing to train)."""
    extra = {"ppo_epochs": 2, "mini_batches": 3, "reject_band": [0.2, 5.0]} if updates else {}
    return Config.model_validate({
        "model": {"path": model, "dtype": "float32", "max_model_len": 256},
        "data": {"max_prompt_tokens": 64}, "actor": {"sampling": {"max_tokens": 24}},
        "learner": {"lr": 1e-3, "device": device, "micro_batch_tokens": 64, "max_steps": 10,
                    "tis_cap": 2.0, "cpu_offload": cpu_offload, **extra},
        "lppo": {"pg": {"off_policy_loss": True, "sft_coef": 0.1}},
    })


def batch(vocab: int, groups: int = 5, n: int = 4) -> list[TrainSequence]:
    """Groups of uneven lengths, some with a prefix carried by their first completion."""
    rng = np.random.default_rng(0)
    seqs = []
    for g in range(groups):
        prompt = rng.integers(5, vocab, 3 + 2 * g)
        prefix = rng.integers(5, vocab, 4) if g % 2 else prompt[:0]
        for i in range(n):
            comp = rng.integers(5, vocab, 2 + (g * 3 + i * 5) % 19)
            seqs.append(TrainSequence(
                prompt, prefix, comp, -rng.uniform(1.0, 6.0, comp.size), group=g,
                advantage=float(rng.normal()), prefix_loss=bool(g % 2) and i == 0,
                prefix_advantage=0.5, sft_weight=0.1))
    return seqs


def _save(trainer: Trainer, dist: DistContext, out: str, losses: list[float]) -> None:
    state = trainer.full_state()
    if dist.rank == 0:
        from safetensors.torch import save_file

        save_file({k: v.detach().cpu().clone() for k, v in state.items()}, out,
                  metadata={"losses": ",".join(f"{x:.9g}" for x in losses)})


def _checkpoint_then_continue(trainer: Trainer, dist: DistContext, mine, out: str) -> None:
    """Two steps, a checkpoint as the learner writes it (gathered weights; the optimizer
    sharded by every rank, or whole from one rank; the step count), one more step."""
    losses = [trainer.step(mine).loss for _ in range(2)]
    run_dir = Path(out).parent / "run"
    if dist.rank == 0:
        checkpoint.begin(run_dir, 2)
    if dist.enabled:
        torch.distributed.barrier()
    weights = trainer.full_state()
    optimizer = None
    if dist.enabled:
        trainer.save_sharded(checkpoint.staging(run_dir, 2) / "optimizer")
    else:
        optimizer = trainer.state_dict()
    if dist.rank == 0:
        checkpoint.save(run_dir, 2, trainer.model, weights, None, optimizer,
                        {"version": 2, "steps_done": trainer.steps_done}, keep=1)
    losses.append(trainer.step(mine).loss)
    _save(trainer, dist, out, losses)


def main() -> None:
    """argv: MODEL_DIR OUT STEPS [DEVICE] [MODE]; MODE `train` (default), `offload` (train with
    `learner.cpu_offload`), `updates` (train with several updates per step, `config`),
    `checkpoint` (see `_checkpoint_then_continue`) or `resume` (from the checkpoint
    `checkpoint` wrote next to OUT, one step)."""
    model, out, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    device = sys.argv[4] if len(sys.argv) > 4 else "cpu"
    mode = sys.argv[5] if len(sys.argv) > 5 else "train"
    torch.manual_seed(0)
    dist = DistContext.from_env()
    ckpt = Path(out).parent / "run" / "checkpoints" / "step_2"
    trainer = Trainer(config(model, device, cpu_offload=mode == "offload",
                             updates=mode == "updates"), dist=dist,
                      model_path=str(ckpt / "model") if mode == "resume" else None)
    if mode == "resume" and checkpoint.is_sharded(ckpt):
        done = checkpoint.load(ckpt)[1]["steps_done"] if dist.rank == 0 else None
        trainer.load_sharded(ckpt / "optimizer", done)
    elif mode == "resume":
        trainer.load_state_dict(checkpoint.load(ckpt)[0] if dist.rank == 0 else None)
    seqs = batch(trainer.vocab_size) if dist.rank == 0 else None
    seqs = broadcast_sequences(seqs, dist, trainer.device)
    mine = shard_groups(seqs, dist.world_size)[dist.rank]
    if mode == "checkpoint":
        _checkpoint_then_continue(trainer, dist, mine, out)
    else:
        _save(trainer, dist, out, [trainer.step(mine).loss for _ in range(steps)])
    if dist.enabled:
        torch.distributed.destroy_process_group()
        leave(0)  # FSDP2 over gloo can abort at interpreter exit (learner/main.py)


if __name__ == "__main__":
    main()
