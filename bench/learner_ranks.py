"""Learner step time and memory at 1 vs 2 ranks (FSDP2; gloo on CPU, NCCL on CUDA).

    python bench/learner_ranks.py [--model runs/_cache/smollm2-135m-instruct] [--steps 4]
                                  [--groups 8] [--group-size 8] [--completion 128] [--json]

Each rank count runs as real `torchrun` processes on the same batch (random tokens: shared
context of 64 tokens, completions of `--completion` tokens) for `--steps` optimizer steps; the
first step is excluded from the timing (allocation, first gathers). Reported per rank count:
median step seconds, the fp32 parameter + AdamW bytes each rank holds (its shards), and each
rank's peak resident memory (`ru_maxrss`, which includes the Python, torch and transformers
baseline). On a 2-core CPU machine two ranks share the cores: the step-time ratio shows the
cost of sharding's communication there, not a speed-up; the memory column shows what the
ranks hold.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _worker(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from learner.batch import TrainSequence
    from learner.distributed import DistContext, broadcast_sequences, shard_groups
    from learner.trainer import Trainer
    from lppo.core.config import Config

    cfg = Config.model_validate({
        "model": {"path": args.model, "dtype": "float32", "max_model_len": 2048},
        "data": {"max_prompt_tokens": 512},
        "actor": {"sampling": {"max_tokens": args.completion}},
        "learner": {"lr": 1e-5, "device": "auto", "micro_batch_tokens": 4096,
                    "batch_groups": args.groups, "max_steps": 100},
    })
    torch.manual_seed(0)
    dist = DistContext.from_env()
    trainer = Trainer(cfg, dist=dist)
    seqs = None
    if dist.rank == 0:
        rng = np.random.default_rng(0)
        seqs = []
        for g in range(args.groups):
            prompt = rng.integers(5, trainer.vocab_size, 64)
            for _ in range(args.group_size):
                comp = rng.integers(5, trainer.vocab_size, args.completion)
                seqs.append(TrainSequence(prompt, prompt[:0], comp, -np.ones(comp.size) * 5,
                                          advantage=float(rng.normal()), group=g))
    seqs = broadcast_sequences(seqs, dist, trainer.device)
    mine = shard_groups(seqs, dist.world_size)[dist.rank]
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        trainer.step(mine)
        times.append(time.perf_counter() - t0)
    held = sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel()
               for p in trainer.model.parameters()) * 4 * 3  # fp32 weights + AdamW m and v
    out = {"rank": dist.rank, "step_s": statistics.median(times[1:]), "held_bytes": held,
           "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    Path(args.out).with_suffix(f".{dist.rank}.json").write_text(json.dumps(out))
    if dist.enabled:
        from learner.main import leave

        torch.distributed.destroy_process_group()
        leave(0)  # FSDP2 over gloo can abort at interpreter exit (learner/main.py)


def _measure(args: argparse.Namespace, nproc: int, folder: Path) -> list[dict]:
    out = folder / f"n{nproc}"
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
           "--master_addr=127.0.0.1", f"--master_port={29400 + nproc}", __file__, "--worker",
           "--out", str(out), "--model", args.model, "--steps", str(args.steps),
           "--groups", str(args.groups), "--group-size", str(args.group_size),
           "--completion", str(args.completion)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(max(1, 2 // nproc))}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)
    return [json.loads(out.with_suffix(f".{r}.json").read_text()) for r in range(nproc)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "runs" / "_cache" / "smollm2-135m-instruct"))
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--groups", type=int, default=8)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--completion", type=int, default=128)
    p.add_argument("--json", action="store_true")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return _worker(args)
    with tempfile.TemporaryDirectory() as tmp:
        results = {n: _measure(args, n, Path(tmp)) for n in (1, 2)}
    one, two = results[1][0], results[2]
    report = {
        "model": args.model, "batch": f"{args.groups} groups x {args.group_size} x "
                                      f"(64 + {args.completion}) tokens",
        "step_s": {1: one["step_s"], 2: max(r["step_s"] for r in two)},
        "held_mb_per_rank": {1: one["held_bytes"] / 2**20,
                             2: max(r["held_bytes"] for r in two) / 2**20},
        "peak_rss_mb_per_rank": {1: one["peak_rss_bytes"] / 2**20,
                                 2: max(r["peak_rss_bytes"] for r in two) / 2**20},
    }
    report["step_ratio_2_over_1"] = report["step_s"][2] / report["step_s"][1]
    if args.json:
        print(json.dumps(report, indent=2))
        return None
    print(f"{report['model']}: {report['batch']}")
    for n in (1, 2):
        print(f"  {n} rank(s): step {report['step_s'][n]:.2f} s; per rank: weights+AdamW "
              f"{report['held_mb_per_rank'][n]:.0f} MB, peak RSS "
              f"{report['peak_rss_mb_per_rank'][n]:.0f} MB")
    print(f"  step time, 2 ranks / 1 rank: {report['step_ratio_2_over_1']:.2f}")
    return None


if __name__ == "__main__":
    main()
