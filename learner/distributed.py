"""Training on several ranks: FSDP2 sharding, the batch split by group, and the batch sent from
rank 0 to the others as flat tensors.

    dist = DistContext.from_env()              # torchrun's RANK / WORLD_SIZE / LOCAL_RANK
    dist.init()                                # NCCL on CUDA, gloo on CPU
    shard_model(model, dist, compute_dtype)    # fully_shard each decoder layer, then the root
    seqs = broadcast_sequences(seqs if dist.rank == 0 else None, dist)
    mine = shard_groups(seqs, dist.world_size)[dist.rank]

Why split by group: a group's completions share their context, and the per-group rules
(advantages, LP weights, the one carrier of the prefix terms) were applied before the split, so
a rank needs nothing from another rank's groups; groups are dealt longest first to the rank
with the fewest tokens so far, which keeps the ranks' work close.

Equal to one process: every rank's loss is a sum over its own tokens divided by the *global*
normaliser (the loss tokens, or completions x max_tokens, of the whole batch: `all_reduce`),
and each rank backpropagates N times its loss, so FSDP's mean over ranks is the sum: N ranks
compute the gradient of the same batch loss as one process, and clip and step the same way
(tests/integration/test_distributed.py checks parameters after 3 steps against one process).
FSDP2 gathers each layer's parameters in every forward and backward: every rank must run the
same number of micro-batches, so a rank with fewer pads with masked copies of its own (loss
and gradient exactly 0).

Precision: parameters are sharded in fp32 (the masters); on CUDA a `MixedPrecisionPolicy`
gathers them in the compute dtype and reduces gradients in fp32. On CPU the trainer's autocast
does the same job.

Nothing here is pickled: the batch travels as int64/float32 tensors (`broadcast_sequences`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as tdist

from learner.batch import TrainSequence

STORE_ENV = "LPPO_DIST_STORE"
"""A file the ranks of one machine meet through (set by `lppo run`)."""


@dataclass(frozen=True)
class DistContext:
    """This process's place among the learner's ranks."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> DistContext:
        """From torchrun's environment; one rank when it is not set."""
        return cls(rank=int(os.environ.get("RANK", 0)),
                   world_size=int(os.environ.get("WORLD_SIZE", 1)),
                   local_rank=int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def device(self, want: torch.device) -> torch.device:
        """This rank's device: its local GPU when training on CUDA, else `want`."""
        if want.type == "cuda" and self.enabled:
            return torch.device("cuda", self.local_rank)
        return want

    def init(self, device: torch.device) -> None:
        """Join the process group (NCCL on CUDA, gloo on CPU); a no-op for one rank.

        The ranks meet through a file when `LPPO_DIST_STORE` names one (`lppo run` on one
        machine: nothing listens for the rendezvous), else through torchrun's TCP store at
        MASTER_ADDR:MASTER_PORT."""
        if self.enabled and not tdist.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)
            backend = "nccl" if device.type == "cuda" else "gloo"
            path = os.environ.get(STORE_ENV)
            store = tdist.FileStore(path, self.world_size) if path else None
            tdist.init_process_group(backend, store=store, rank=self.rank,
                                     world_size=self.world_size)

    def all_sum(self, values: Sequence[float], device: torch.device) -> list[float]:
        """Element-wise sum over ranks (float64); the values themselves for one rank."""
        if not self.enabled:
            return [float(v) for v in values]
        t = torch.tensor(list(values), dtype=torch.float64, device=device)
        tdist.all_reduce(t)
        return t.tolist()

    def all_max(self, value: int, device: torch.device) -> int:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.int64, device=device)
        tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
        return int(t.item())


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's repeated blocks (`model.model.layers` in Llama/Qwen2/Mistral and most
    causal LMs of transformers)."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__}: no `model.layers` to shard; FSDP2 sharding "
                         "supports decoder-only models laid out like Llama/Qwen2")
    return list(layers)


def shard_model(model: torch.nn.Module, device: torch.device, compute_dtype: torch.dtype,
                cpu_offload: bool = False) -> torch.nn.Module:
    """FSDP2: `fully_shard` on each decoder layer, then the root (embeddings, norm, head);
    with `cpu_offload`, shards, gradients and optimizer state stay in host memory."""
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard

    kwargs: dict = {}
    if device.type == "cuda" and compute_dtype != torch.float32:
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=compute_dtype,
                                                   reduce_dtype=torch.float32)
    if cpu_offload:
        kwargs["offload_policy"] = CPUOffloadPolicy()
    for layer in decoder_layers(model):
        fully_shard(layer, **kwargs)
    fully_shard(model, **kwargs)
    return model


def shard_groups(seqs: Sequence[TrainSequence], world_size: int) -> list[list[TrainSequence]]:
    """Each rank's sequences: whole groups, longest group first to the least-loaded rank."""
    groups: dict[int, list[TrainSequence]] = {}
    for s in seqs:
        groups.setdefault(s.group, []).append(s)
    if len(groups) < world_size:
        raise ValueError(f"{len(groups)} groups cannot keep {world_size} ranks busy: set "
                         "learner.batch_groups >= learner.nproc")
    load = [0] * world_size
    shares: list[list[TrainSequence]] = [[] for _ in range(world_size)]
    for gid in sorted(groups, key=lambda g: (-sum(s.length for s in groups[g]), g)):
        rank = min(range(world_size), key=lambda r: (load[r], r))
        shares[rank].extend(groups[gid])
        load[rank] += sum(s.length for s in groups[gid])
    return shares


# -- the batch as tensors ---------------------------------------------------------------------

_INT_FIELDS = 6    # prompt, prefix, completion lengths; group; prefix_loss; loss
_FLOAT_FIELDS = 3  # advantage, prefix_advantage, sft_weight


def encode_sequences(seqs: Sequence[TrainSequence]) -> tuple[torch.Tensor, torch.Tensor,
                                                              torch.Tensor, torch.Tensor]:
    """(header int64 [n, 6], scalars float32 [n, 3], token ids int64, log-probs float32)."""
    header = torch.tensor([[len(s.prompt_ids), len(s.prefix_ids), len(s.completion_ids), s.group,
                            int(s.prefix_loss), int(s.loss)] for s in seqs], dtype=torch.int64)
    scalars = torch.tensor([[s.advantage, s.prefix_advantage, s.sft_weight] for s in seqs],
                           dtype=torch.float32)
    ids = torch.from_numpy(np.concatenate(
        [np.concatenate((s.prompt_ids, s.prefix_ids, s.completion_ids)) for s in seqs]))
    logps = torch.from_numpy(np.concatenate([s.behaviour_logprobs for s in seqs]))
    return header.reshape(-1, _INT_FIELDS), scalars.reshape(-1, _FLOAT_FIELDS), ids, logps


def decode_sequences(header: torch.Tensor, scalars: torch.Tensor, ids: torch.Tensor,
                     logps: torch.Tensor) -> list[TrainSequence]:
    """The inverse of `encode_sequences`."""
    seqs, at, lat = [], 0, 0
    ids_np, logps_np = ids.cpu().numpy(), logps.cpu().numpy()
    for (p, q, c, group, carrier, loss), (adv, padv, sft) in zip(header.tolist(),
                                                                 scalars.tolist(), strict=True):
        seqs.append(TrainSequence(
            prompt_ids=ids_np[at:at + p], prefix_ids=ids_np[at + p:at + p + q],
            completion_ids=ids_np[at + p + q:at + p + q + c],
            behaviour_logprobs=logps_np[lat:lat + c], advantage=adv, group=group,
            prefix_advantage=padv, prefix_loss=bool(carrier), sft_weight=sft, loss=bool(loss)))
        at, lat = at + p + q + c, lat + c
    return seqs


def broadcast_sequences(seqs: Sequence[TrainSequence] | None, dist: DistContext,
                        device: torch.device, src: int = 0) -> list[TrainSequence]:
    """Rank `src`'s batch on every rank (the others pass None): sizes first, then four
    tensors."""
    if not dist.enabled:
        return list(seqs or [])
    parts = encode_sequences(seqs) if dist.rank == src else None
    sizes = torch.tensor([p.shape[0] for p in parts] if parts else [0, 0, 0, 0],
                         dtype=torch.int64, device=device)
    tdist.broadcast(sizes, src)
    n, _, n_ids, n_logps = sizes.tolist()
    shapes = [((n, _INT_FIELDS), torch.int64), ((n, _FLOAT_FIELDS), torch.float32),
              ((n_ids,), torch.int64), ((n_logps,), torch.float32)]
    out = []
    for i, (shape, dtype) in enumerate(shapes):
        t = parts[i].to(device) if parts else torch.empty(shape, dtype=dtype, device=device)
        tdist.broadcast(t, src)
        out.append(t)
    return decode_sequences(*out) if dist.rank != src else list(seqs)
