"""Several learner ranks (FSDP2, gloo on CPU, real `torchrun` processes) compute the same
update as one process: after 3 steps on a batch of uneven groups, with TIS, the off-policy and
supervised prefix terms, and ranks that run different numbers of micro-batches."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open

from lppo.testing.postgres import free_ports
from tests.conftest import ROOT
from tests.integration.dist_train import batch, config

STEPS = 3


def _torchrun(nproc: int, model, out, device: str = "cpu", mode: str = "train",
              steps: int = STEPS) -> None:
    port = free_ports(1)[0]
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
         "--master_addr=127.0.0.1", f"--master_port={port}",
         str(ROOT / "tests" / "integration" / "dist_train.py"), str(model), str(out), str(steps),
         device, mode],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-4000:]


def _read(path):
    with safe_open(str(path), "pt") as f:
        names = f.keys()
        return {k: f.get_tensor(k) for k in names}, f.metadata()["losses"]


def _one_process(model, device: str = "cpu"):
    from learner.trainer import Trainer

    torch.manual_seed(0)
    trainer = Trainer(config(str(model), device))
    seqs = batch(trainer.vocab_size)
    losses = [trainer.step(seqs).loss for _ in range(STEPS)]
    return {k: v.cpu() for k, v in trainer.full_state().items()}, losses


@pytest.fixture(scope="module")
def one_process(tiny_model):
    return _one_process(tiny_model)


def test_two_ranks_match_one_process(tiny_model, tmp_path, one_process):
    from learner.distributed import shard_groups

    single, single_losses = one_process
    from learner.batch import pack

    shares = shard_groups(batch(100), 2)
    assert {s.group for s in shares[0]}.isdisjoint({s.group for s in shares[1]})
    budget = config("unused").learner.micro_batch_tokens
    assert [len(pack(s, budget)) for s in shares] == [5, 4]  # rank 1 pads one micro-batch
    _torchrun(2, tiny_model, tmp_path / "two.safetensors")
    two, losses = _read(tmp_path / "two.safetensors")
    assert set(two) == set(single)
    worst = max(float((two[k] - single[k]).abs().max()) for k in single)
    print(f"largest parameter difference, 2 ranks vs 1: {worst:.3g}")
    # AdamW moves every weight by up to lr (1e-3) per step whatever its gradient's size; the
    # ranks' different summation order leaves differences ~100x below that.
    assert worst < 3e-5, f"largest parameter difference {worst:g}"
    assert len(set(single_losses)) == STEPS  # the steps changed the model
    assert [float(x) for x in losses.split(",")] == pytest.approx(single_losses, rel=1e-4,
                                                                 abs=1e-6)


def test_several_updates_per_step_on_two_ranks(tiny_model, tmp_path, one_process):
    """Two passes of three mini-batches on two ranks: rank 1's two groups leave it one
    mini-batch with nothing to train, which it joins with an empty micro-batch (every
    collective is met); the steps train (losses change, parameters move off one update's)."""
    _torchrun(2, tiny_model, tmp_path / "updates.safetensors", mode="updates")
    params, losses = _read(tmp_path / "updates.safetensors")
    values = [float(x) for x in losses.split(",")]
    assert len(values) == STEPS and len(set(values)) == STEPS
    assert all(math.isfinite(v) for v in values)
    single, _ = one_process
    assert max(float((params[k] - single[k]).abs().max()) for k in single) > 1e-4


@pytest.mark.parametrize(("save_ranks", "resume_ranks"), [(2, 2), (2, 1), (1, 2)])
def test_a_checkpoint_resumes_to_the_same_parameters(tiny_model, tmp_path, save_ranks,
                                                     resume_ranks):
    """2 steps, checkpoint, a 3rd step. Resumed from that checkpoint, the 3rd step gives the
    same parameters: weights, AdamW moments and the LR schedule's position all came back.
    2 ranks write the optimizer sharded (DCP), read back on 2 ranks or resharded onto 1; one
    rank writes it whole, broadcast from rank 0 onto 2."""
    _torchrun(save_ranks, tiny_model, tmp_path / "continued.safetensors", mode="checkpoint")
    ckpt = tmp_path / "run" / "checkpoints" / "step_2"
    assert (ckpt / "optimizer").is_dir() == (save_ranks > 1)
    _torchrun(resume_ranks, tiny_model, tmp_path / "resumed.safetensors", mode="resume",
              steps=1)
    continued, losses = _read(tmp_path / "continued.safetensors")
    resumed, resumed_losses = _read(tmp_path / "resumed.safetensors")
    worst = max(float((continued[k] - resumed[k]).abs().max()) for k in continued)
    print(f"saved on {save_ranks}, resumed on {resume_ranks} rank(s): largest parameter "
          f"difference {worst:.3g}")
    assert worst < (1e-7 if resume_ranks == save_ranks else 3e-5)
    assert float(resumed_losses) == pytest.approx(float(losses.split(",")[-1]), rel=1e-4)


@pytest.mark.gpu
def test_two_gpu_ranks_over_nccl_match_one_gpu(tiny_model, tmp_path):
    """The same check on CUDA: NCCL between two GPUs, one process on one GPU (fp32)."""
    if torch.cuda.device_count() < 2:
        pytest.skip(f"needs 2 GPUs, found {torch.cuda.device_count()}")
    single, single_losses = _one_process(tiny_model, "cuda")
    _torchrun(2, tiny_model, tmp_path / "two.safetensors", device="cuda")
    two, losses = _read(tmp_path / "two.safetensors")
    worst = max(float((two[k] - single[k]).abs().max()) for k in single)
    assert worst < 3e-5, f"largest parameter difference {worst:g}"
    assert [float(x) for x in losses.split(",")] == pytest.approx(single_losses, rel=1e-4,
                                                                 abs=1e-6)


@pytest.mark.gpu
def test_cpu_offload_on_two_gpu_ranks_matches_one_gpu(tiny_model, tmp_path):
    """`learner.cpu_offload`: shards, gradients and AdamW state in host memory between uses;
    the update is the same as one GPU's (fp32)."""
    if torch.cuda.device_count() < 2:
        pytest.skip(f"needs 2 GPUs, found {torch.cuda.device_count()}")
    single, _ = _one_process(tiny_model, "cuda")
    _torchrun(2, tiny_model, tmp_path / "two.safetensors", device="cuda", mode="offload")
    two, _ = _read(tmp_path / "two.safetensors")
    worst = max(float((two[k] - single[k]).abs().max()) for k in single)
    assert worst < 3e-5, f"largest parameter difference {worst:g}"
