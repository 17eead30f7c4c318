"""Rank 0 leads, the other learner ranks follow.

With `learner.nproc` > 1 (or `lppo learner` under torchrun) the learner is N processes. Rank
0 is the learner of one process: I/O thread, scheduler, ledger, checkpoints' files. Every
other rank only trains: it holds a shard of the model (`learner/distributed.py`) and does what
rank 0 tells it, one command at a time, so that all ranks enter the same collectives in the
same order:

    rank 0 (Leader)                          ranks 1..N-1 (follow)
    build(checkpoint step or -1)     ----->  Trainer from the model or that checkpoint's
    load(...)                        ----->  optimizer state: each rank reads its shard of a
                                             sharded checkpoint, or rank 0's whole one is
                                             broadcast
    step(batch)                      ----->  the batch as tensors; each rank trains its groups
    policy_state()                   ----->  full weights gathered to rank 0
    checkpoint(step)                 ----->  full weights gathered to rank 0; every rank writes
                                             its optimizer shard (DCP) into the staging folder
    stop()                           ----->  exit 0

The staging folder is in the run directory, which every rank must see (one machine, or a
shared filesystem across nodes).

A command is two int64 values broadcast from rank 0 (kind, argument); nothing is pickled. A
follower ignores SIGINT and SIGTERM: rank 0 decides when to stop (after its checkpoint), and
a follower that left early would leave rank 0 waiting in a collective. With one rank, the
Leader calls the trainer directly.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Sequence
from enum import IntEnum
from pathlib import Path

import torch
import torch.distributed as tdist

from learner import checkpoint
from learner.batch import TrainSequence
from learner.distributed import DistContext, broadcast_sequences, shard_groups
from learner.trainer import StepStats, Trainer, resolve_device
from lppo.core.config import Config

log = logging.getLogger(__name__)


class Command(IntEnum):
    BUILD = 1
    LOAD = 2
    STEP = 3
    PUBLISH = 4
    CHECKPOINT = 5
    STOP = 6


def _send(dist: DistContext, device: torch.device, command: Command, arg: int = 0) -> None:
    if dist.enabled:
        tdist.broadcast(torch.tensor([int(command), arg], dtype=torch.int64, device=device), 0)


def _receive(device: torch.device) -> tuple[Command, int]:
    t = torch.zeros(2, dtype=torch.int64, device=device)
    tdist.broadcast(t, 0)
    return Command(int(t[0])), int(t[1])


def build_trainer(cfg: Config, dist: DistContext, ckpt: Path | None) -> Trainer:
    """Rank 0: tell the followers which model to build, then build its own."""
    device = dist.device(resolve_device(cfg))
    dist.init(device)
    step = checkpoint.step_of(ckpt) if ckpt is not None else -1
    _send(dist, device, Command.BUILD, step)
    return Trainer(cfg, model_path=str(ckpt / "model") if ckpt is not None else None, dist=dist)


class Leader:
    """Rank 0's handle on training: each call runs on every rank."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.dist = trainer.dist

    def _tell(self, command: Command, arg: int = 0) -> None:
        _send(self.dist, self.trainer.device, command, arg)

    def load(self, ckpt: Path, trainer_state: dict | None, steps_done: int | None) -> None:
        """Optimizer state of checkpoint `ckpt`: sharded (`trainer_state` None, every rank
        reads its part) or whole (rank 0's `trainer_state`, broadcast)."""
        sharded = trainer_state is None
        self._tell(Command.LOAD, int(sharded))
        if sharded:
            self.trainer.load_sharded(ckpt / "optimizer", steps_done)
        else:
            self.trainer.load_state_dict(trainer_state)

    def step(self, seqs: Sequence[TrainSequence]) -> StepStats:
        if not self.dist.enabled:
            return self.trainer.step(seqs)
        self._tell(Command.STEP)
        seqs = broadcast_sequences(seqs, self.dist, self.trainer.device)
        return self.trainer.step(shard_groups(seqs, self.dist.world_size)[0])

    def policy_state(self) -> dict[str, torch.Tensor]:
        self._tell(Command.PUBLISH)
        return self.trainer.policy_state()

    def checkpoint_state(self, run_dir: Path, step: int) -> tuple[dict[str, torch.Tensor],
                                                                   dict | None]:
        """(fp32 weights on rank 0, whole optimizer state) with one rank; with several, the
        optimizer is written sharded into checkpoint `step`'s staging folder by every rank,
        and None stands for it."""
        if not self.dist.enabled:
            return self.trainer.full_state(), self.trainer.state_dict()
        staging = checkpoint.begin(run_dir, step)
        self._tell(Command.CHECKPOINT, step)
        weights = self.trainer.full_state()
        self.trainer.save_sharded(staging / "optimizer")
        return weights, None

    def stop(self) -> None:
        """Release the followers (they exit); safe to call more than once."""
        if self.dist.enabled and tdist.is_initialized():
            self._tell(Command.STOP)
            tdist.destroy_process_group()


def follow(cfg: Config, dist: DistContext) -> int:
    """A rank other than 0: build the trainer rank 0 names, then obey until STOP."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    device = dist.device(resolve_device(cfg))
    dist.init(device)
    command, step = _receive(device)
    if command is not Command.BUILD:
        raise RuntimeError(f"rank {dist.rank}: expected BUILD from rank 0, got {command.name}")
    ckpt = checkpoint.checkpoint_root(cfg.run.run_dir) / f"step_{step}" if step >= 0 else None
    trainer = Trainer(cfg, model_path=str(ckpt / "model") if ckpt else None, dist=dist)
    log.info("rank %d of %d: following rank 0", dist.rank, dist.world_size)
    while True:
        command, arg = _receive(trainer.device)
        if command is Command.STOP:
            tdist.destroy_process_group()
            return 0
        if command is Command.LOAD and arg:
            trainer.load_sharded(ckpt / "optimizer", None)
        elif command is Command.LOAD:
            trainer.load_state_dict(None)
        elif command is Command.STEP:
            seqs = broadcast_sequences(None, dist, trainer.device)
            trainer.step(shard_groups(seqs, dist.world_size)[dist.rank])
        elif command is Command.PUBLISH:
            trainer.policy_state()
        elif command is Command.CHECKPOINT:
            trainer.full_state()
            trainer.save_sharded(checkpoint.staging(cfg.run.run_dir, arg) / "optimizer")
        else:
            raise RuntimeError(f"rank {dist.rank}: unexpected {command.name} from rank 0")
