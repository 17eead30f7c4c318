"""Run under torchrun by tests/integration/test_distributed.py: N ranks train the same batch as
one process would, and rank 0 writes the parameters.

    torchrun --nproc_per_node 2 tests/integration/dist_train.py MODEL_DIR OUT.safetensors STEPS [cuda]

Rank 0 builds the batch (`batch` below) and sends it to the others
(`learner.distributed.broadcast_sequences`); each rank trains its groups.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from learner.batch import TrainSequence
from learner.distributed import DistContext, broadcast_sequences, shard_groups
from learner.trainer import Trainer
from lppo.core.config import Config


def config(model: str, device: str = "cpu") -> Config:
    return Config.model_validate({
        "model": {"path": model, "dtype": "float32", "max_model_len": 256},
        "data": {"max_prompt_tokens": 64}, "actor": {"sampling": {"max_tokens": 24}},
        "learner": {"lr": 1e-3, "device": device, "micro_batch_tokens": 64, "max_steps": 10,
                    "tis_cap": 2.0},
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


def main() -> None:
    model, out, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    device = sys.argv[4] if len(sys.argv) > 4 else "cpu"
    torch.manual_seed(0)
    dist = DistContext.from_env()
    trainer = Trainer(config(model, device), dist=dist)
    seqs = batch(trainer.vocab_size) if dist.rank == 0 else None
    seqs = broadcast_sequences(seqs, dist, trainer.device)
    mine = shard_groups(seqs, dist.world_size)[dist.rank]
    losses = [trainer.step(mine).loss for _ in range(steps)]
    state = trainer.full_state()
    if dist.rank == 0:
        from safetensors.torch import save_file

        save_file({k: v.contiguous().cpu() for k, v in state.items()}, out,
                  metadata={"losses": ",".join(f"{x:.9g}" for x in losses)})
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
