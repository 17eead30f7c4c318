"""The policy model and one learner step over a batch of training sequences.

    trainer = Trainer(cfg)                        # AutoModelForCausalLM, AdamW, LR schedule
    stats = trainer.step(sequences)               # micro-batched forward/backward, clip, step
    state = trainer.policy_state()                # weights for the actors

One update: the loss normaliser is computed once for the whole (mini-)batch (token-mean:
its loss tokens; Dr.GRPO: completions x max_tokens), so micro-batch losses add up to the
batch loss whatever the packing. Each micro-batch: forward, token log-probs of the targets,
`learner.algo.loss.ppo_loss` against the actor's behaviour log-probs (prefix tokens masked;
LUFFY-style term on them when configured), backward. Then global gradient-norm clipping,
AdamW. A learner step is one such update by default; `learner.ppo_epochs` x
`learner.mini_batches` of them (each mini-batch whole groups, `split_groups`) at the step's
learning rate otherwise; the LR schedule (linear warm-up, then constant / linear / cosine decay)
advances once per learner step. An update whose loss or gradient norm is not finite changes
nothing and ends the step; a step whose first update is not finite changes nothing at all
(`StepStats.finite` is False): the learner skips it or fails, `learner.on_nonfinite`.

The PPO ratio's base is the behaviour log-probs for a single plain update. With `tis_cap`,
or several updates, it is the trainer's own log-probs before the step's first update
(`old_logp`, one no-grad pass per micro-batch), and the behaviour policy enters only through
the truncated importance weights (token or sequence level: learner/algo/offpolicy.py),
AReaL's decoupled loss. `learner.reject_band` leaves completions whose ratio is out of band
out of the loss (and its normaliser) before the first update. With `kl_coef > 0` a frozen
copy of the initial model gives the reference log-probs.

Precision. Parameters, gradients and AdamW's state are always fp32 (master weights): an
update of lr 1e-6 on a weight of 0.02 is below bf16's resolution there and would be lost.
Forward passes compute in `model.dtype` under `torch.autocast` (bf16 on CUDA where supported
with `auto`, fp32 on CPU); log-probs and the loss are fp32. Actors get the weights cast to the
compute dtype (`policy_state`); checkpoints keep the fp32 masters. The reference model (KL) is
frozen, so it is held in the compute dtype.

Device: CUDA when available and allowed (`learner.device`), else CPU. Several ranks: give the
trainer a `DistContext` (learner/distributed.py): the model is sharded with FSDP2, `step`
takes this rank's share of the batch, and the normaliser, metrics and gradient norm are the
whole batch's, so every rank leaves the step with the same numbers; `policy_state`,
`full_state` and `state_dict` gather to rank 0 and must be called on every rank.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from learner.algo.logprobs import token_logprobs_and_entropy
from learner.algo.loss import (
    COUNT_METRICS,
    LossInputs,
    LossSettings,
    aggregation_for,
    loss_normalizer,
    ppo_loss,
)
from learner.algo.offpolicy import reject_rows
from learner.batch import MicroBatch, TrainSequence, collate, pack
from learner.distributed import DistContext, shard_model
from learner.grouped import pack_units, shared_logprobs, unsupported
from lppo.core.config import Config
from lppo.core.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class StepStats:
    loss: float
    grad_norm: float
    lr: float
    tokens: int
    sequences: int
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)
    finite: bool = True
    """Loss and gradient norm were finite, so the optimizer stepped (else nothing changed)."""


def resolve_device(cfg: Config) -> torch.device:
    want = cfg.learner.device
    if want == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("learner.device = 'cuda' but torch.cuda.is_available() is false")
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(want)


def resolve_dtype(cfg: Config, device: torch.device) -> torch.dtype:
    """The compute dtype (`model.dtype`; `auto`: bf16 on a CUDA device that supports it)."""
    names = {"float32": torch.float32, "bfloat16": torch.bfloat16}
    if cfg.model.dtype != "auto":
        return names[cfg.model.dtype]
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def lr_factor(step: int, warmup: int, total: int, schedule: str) -> float:
    """Multiplier of the peak LR at optimizer step `step` (0-based)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class Trainer:
    """Owns the policy, its optimizer and LR schedule; see the module docstring."""

    def __init__(self, cfg: Config, model_path: str | None = None,
                 dist: DistContext | None = None):
        from transformers import AutoModelForCausalLM

        self.cfg = cfg
        self.dist = dist or DistContext()
        self.device = self.dist.device(resolve_device(cfg))
        self.dist.init(self.device)
        self.compute_dtype = resolve_dtype(cfg, self.device)
        if cfg.learner.cpu_offload and (self.device.type != "cuda" or not self.dist.enabled):
            raise UserError(
                f"learner.cpu_offload: offloads FSDP2 shards from GPU memory, so it needs CUDA "
                f"and several learner ranks; this learner has {self.dist.world_size} rank(s) "
                f"on {self.device.type}")
        path = model_path or cfg.model.path
        self.model = AutoModelForCausalLM.from_pretrained(  # fp32 masters, see the docstring
            path, dtype=torch.float32, trust_remote_code=cfg.model.trust_remote_code
        ).to(self.device)
        if cfg.learner.gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        self.shared_prefix = cfg.learner.shared_prefix
        if self.shared_prefix and (why := unsupported(self.model)) is not None:
            log.info("learner.shared_prefix: off, the plain forward instead: %s", why)
            self.shared_prefix = False
        if self.dist.enabled:
            shard_model(self.model, self.device, self.compute_dtype, cfg.learner.cpu_offload)
        self.model.train()
        self.reference = None
        if cfg.learner.kl_coef > 0:
            self.reference = AutoModelForCausalLM.from_pretrained(
                cfg.model.path, dtype=self.compute_dtype,
                trust_remote_code=cfg.model.trust_remote_code).to(self.device).eval()
            self.reference.requires_grad_(False)
        lc = cfg.learner
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=lc.lr, betas=lc.adam_betas, weight_decay=lc.weight_decay,
        )
        self.steps_done = 0
        """Optimizer steps taken: the LR schedule's position (`lr_factor`)."""
        self.settings = LossSettings.from_config(lc, cfg.lppo.pg)
        self.aggregation = aggregation_for(lc)
        self.vocab_size = self.model.get_input_embeddings().num_embeddings
        """Token ids the model takes: [0, vocab_size)."""
        pad = getattr(self.model.config, "pad_token_id", None)
        eos = getattr(self.model.config, "eos_token_id", None)
        self.pad_id = pad if pad is not None else (eos if isinstance(eos, int) else 0)

    # -- one optimizer step ------------------------------------------------------------------

    def step(self, seqs: Sequence[TrainSequence]) -> StepStats:
        """One learner step on `seqs`: the whole batch, or with several ranks this rank's share
        of it (`learner.distributed.shard_groups`); the stats are the whole batch's.

        `learner.ppo_epochs` x `learner.mini_batches` optimizer updates (one by default), at
        the step's learning rate; see `_prepare` for what is computed before the first."""
        if not seqs:
            raise ValueError("Trainer.step: empty batch")
        start = time.perf_counter()
        lc = self.cfg.learner
        lr = lc.lr * lr_factor(self.steps_done, lc.warmup_steps, lc.max_steps, lc.lr_schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        budget, shared = lc.micro_batch_tokens, self.shared_prefix
        minis = [[collate(b, self.pad_id, shared)
                  for b in (pack_units if shared else pack)(mini, budget)] if mini else []
                 for mini in split_groups(seqs, lc.mini_batches)]
        # A rank without a group in a mini-batch joins its updates with masked micro-batches
        # of its own (the same forward path as the other ranks': shared-prefix or plain).
        filler = _masked(next(m[-1] for m in minis if m))
        parts = [self._prepare(micro, filler) for micro in minis]
        updates: list[StepStats] = []
        for part in parts * lc.ppo_epochs:
            updates.append(self._update(part, lr))
            if not updates[-1].finite:
                break  # the weights keep the updates made so far; no more on this batch
        if any(u.finite for u in updates):
            self.steps_done += 1
        stats = updates[0] if len(updates) == 1 else _combine(updates, len(parts))
        if lc.reject_band is not None:
            rejected, checked = self.dist.all_sum(
                [sum(p.rejected for p in parts), sum(p.completions for p in parts)], self.device)
            stats.metrics["is/rejected_frac"] = rejected / max(1.0, checked)
        stats.seconds = time.perf_counter() - start
        return stats

    def _prepare(self, micro: list[MicroBatch], filler: MicroBatch) -> _Part:
        """One mini-batch's micro-batches, padded with `filler` to the busiest rank's count,
        with the trainer's log-probs before any update (`old_logp`) where the loss needs them
        (TIS, rejection, several updates), and `learner.reject_band` applied to the loss
        masks."""
        lc = self.cfg.learner
        count = self.dist.all_max(len(micro), self.device)
        # Every rank runs as many micro-batches as the busiest (see learner/distributed.py).
        padding = [filler] * (count - len(micro))
        # The PPO ratio's base: the behaviour log-probs for one plain update (as always), the
        # trainer's own before the first update with TIS or several updates (decoupled).
        proximal = lc.ppo_epochs * lc.mini_batches > 1 or self.settings.tis_cap is not None
        if not proximal and lc.reject_band is None:
            return _Part(micro, padding, [None] * count, rejected=0, completions=0)
        old = [self._old_logp(m) for m in micro + padding]
        rejected = completions = 0
        if lc.reject_band is not None:
            for i, (mb, old_logp) in enumerate(zip(micro, old, strict=False)):
                mask = torch.as_tensor(mb.loss_mask, device=self.device).bool()
                keep = reject_rows(old_logp, torch.as_tensor(mb.behaviour_logprobs,
                                                             device=self.device),
                                   mask, lc.reject_band).cpu().numpy()
                rows = mb.loss_mask.any(axis=1)
                completions += int(rows.sum())
                rejected += int((rows & ~keep).sum())
                micro[i] = dataclasses.replace(mb, loss_mask=mb.loss_mask * keep[:, None])
        base = old if proximal else [None] * count
        return _Part(micro, padding, base, rejected=rejected, completions=completions)

    def _update(self, part: _Part, lr: float) -> StepStats:
        """One optimizer update on a prepared mini-batch (every rank calls it together)."""
        micro = part.micro
        extra = sum(int(m.prefix_mask.sum()) for m in micro) if self.settings.prefix_terms else 0
        tokens, extra, n_seqs = (int(v) for v in self.dist.all_sum(
            [sum(m.loss_tokens for m in micro), extra, sum(m.input_ids.shape[0] for m in micro)],
            self.device))
        normalizer = loss_normalizer(self.aggregation, tokens + extra, n_seqs,
                                     self.cfg.actor.sampling.max_tokens)
        self.optimizer.zero_grad(set_to_none=True)
        total_loss, sums = 0.0, {}
        for i, (mb, old_logp) in enumerate(zip(micro + part.padding, part.old, strict=True)):
            loss, metrics = self._micro_step(mb, normalizer, old_logp)
            if i >= len(micro):  # padding: no numbers, but the same names on every rank
                for k in metrics:
                    sums.setdefault(k, 0.0)
                continue
            total_loss += loss
            weight = mb.loss_tokens / max(1, tokens)
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + (v if k in COUNT_METRICS else v * weight)
        names = sorted(sums)
        total_loss, *values = self.dist.all_sum([total_loss, *(sums[k] for k in names)],
                                                self.device)
        sums = dict(zip(names, values, strict=True))
        grad_norm = _full(torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                         self.cfg.learner.grad_clip))
        finite = math.isfinite(total_loss) and math.isfinite(float(grad_norm))
        if finite:
            self.optimizer.step()
        else:  # the weights and the optimizer state stay as they were
            self.optimizer.zero_grad(set_to_none=True)
        return StepStats(loss=total_loss, grad_norm=float(grad_norm), lr=lr, tokens=tokens,
                         sequences=n_seqs, seconds=0.0, metrics=sums, finite=finite)

    def _tensors(self, mb: MicroBatch) -> dict[str, torch.Tensor]:
        return {name: torch.as_tensor(getattr(mb, name), device=self.device) for name in (
            "input_ids", "attention_mask", "targets", "loss_mask", "prefix_mask",
            "behaviour_logprobs", "advantages", "sft_weights")}

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.compute_dtype,
                              enabled=self.compute_dtype != torch.float32)

    def _logp(self, model, t: dict[str, torch.Tensor],
              mb: MicroBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token log-probs of the targets (with grad) and entropies (without), through the
        `learner/algo/logprobs.py` (no full-vocabulary float32 copy): the functions its tests
        cover. Rows that share their context: the shared-prefix forward (learner/grouped.py)."""
        if mb.context_len:
            return shared_logprobs(model, t, mb.context_len, mb.prompt_len, self._autocast)
        with self._autocast():
            logits = model(input_ids=t["input_ids"], attention_mask=t["attention_mask"]).logits
        logits = logits[:, :-1]
        token_logp, entropy = token_logprobs_and_entropy(logits, t["targets"])
        return token_logp, entropy

    @torch.no_grad()
    def _old_logp(self, mb: MicroBatch) -> torch.Tensor:
        return self._logp(self.model, self._tensors(mb), mb)[0]

    def _micro_step(self, mb: MicroBatch, normalizer: float, old_logp) -> tuple[float, dict]:
        t = self._tensors(mb)
        logp, entropy = self._logp(self.model, t, mb)
        ref = None
        if self.reference is not None:
            with torch.no_grad():
                ref = self._logp(self.reference, t, mb)[0]
        loss, metrics = ppo_loss(LossInputs(
            logp=logp, behaviour_logp=t["behaviour_logprobs"], advantages=t["advantages"],
            loss_mask=t["loss_mask"], old_logp=old_logp, ref_logp=ref,
            prefix_mask=t["prefix_mask"], sft_weights=t["sft_weights"], entropy=entropy,
        ), self.settings, normalizer)
        # FSDP averages gradients over ranks; each rank's loss is already its part of the batch
        # loss, so scaling by the rank count makes that average the sum (1 for one process).
        (loss * self.dist.world_size).backward()
        return float(loss.detach()), metrics

    # -- weights and state -------------------------------------------------------------------

    def policy_state(self) -> dict[str, torch.Tensor]:
        """The policy's weights in checkpoint names and the compute dtype, for actors
        (`lppo.core.weightfiles`). With several ranks every rank must call it: the full
        weights are gathered to rank 0's host memory (the others get an empty dict)."""
        return {name: t.detach().to(self.compute_dtype) if t.is_floating_point() else t
                for name, t in self.full_state().items()}

    def full_state(self) -> dict[str, torch.Tensor]:
        """The fp32 master weights, whole (gathered to rank 0 on CPU with several ranks)."""
        if not self.dist.enabled:
            return self.model.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(self.model, options=StateDictOptions(
            full_state_dict=True, cpu_offload=True))

    def state_dict(self) -> dict:
        """Optimizer (keyed by parameter name, whole: a checkpoint resumes on any number of
        ranks) and LR schedule. With several ranks every rank must call it; the state is
        gathered to rank 0's host memory."""
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        optimizer = get_optimizer_state_dict(self.model, self.optimizer,
                                             options=self._full_options())
        return {"optimizer": optimizer, "steps_done": self.steps_done}

    def load_state_dict(self, state: dict | None) -> None:
        """The inverse of `state_dict`; with several ranks every rank calls it and only rank
        0's `state` is read (the others pass None)."""
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        leader = self.dist.rank == 0
        if (state is None) == leader:
            raise ValueError("Trainer.load_state_dict: rank 0, and only rank 0, passes a state")
        set_optimizer_state_dict(self.model, self.optimizer,
                                 {} if state is None else state["optimizer"],
                                 options=self._full_options(load=True))
        self.steps_done = self.dist.all_max(state["steps_done"] if leader else 0, self.device)

    def save_sharded(self, folder: Path) -> None:
        """Every rank writes its shard of the optimizer state into `folder` (DCP: one file per
        rank plus metadata; nothing is gathered). The step count goes with the checkpoint's
        state (`steps_done`)."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        dcp.save({"optimizer": get_optimizer_state_dict(self.model, self.optimizer)},
                 checkpoint_id=str(folder))

    def load_sharded(self, folder: Path, steps_done: int | None) -> None:
        """Every rank reads its shard from a `save_sharded` folder, whatever the rank count that
        wrote it (DCP reshards); rank 0 passes the step count."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import (
            get_optimizer_state_dict,
            set_optimizer_state_dict,
        )

        state = {"optimizer": get_optimizer_state_dict(self.model, self.optimizer)}
        dcp.load(state, checkpoint_id=str(folder))
        set_optimizer_state_dict(self.model, self.optimizer, state["optimizer"])
        leader = self.dist.rank == 0
        self.steps_done = self.dist.all_max(steps_done if leader else 0, self.device)

    def _full_options(self, load: bool = False):
        from torch.distributed.checkpoint.state_dict import StateDictOptions

        many = self.dist.enabled
        return StateDictOptions(full_state_dict=True, cpu_offload=many and not load,
                                broadcast_from_rank0=many and load)


@dataclass
class _Part:
    """One mini-batch, prepared for its updates (`Trainer._prepare`)."""

    micro: list[MicroBatch]
    padding: list[MicroBatch]
    """Fully masked micro-batches, so that every rank runs as many as the busiest."""
    old: list[torch.Tensor | None]
    """The trainer's log-probs before the step's first update, per micro-batch (padding
    included); None where the loss does not need them."""
    rejected: int = 0
    """Completions left out by `learner.reject_band` (this rank)."""
    completions: int = 0
    """Completions the band was checked on (this rank)."""


def split_groups(seqs: Sequence[TrainSequence], parts: int) -> list[list[TrainSequence]]:
    """`seqs` in `parts` mini-batches of whole groups, as even in group count as can be (in
    the order the groups come); one part is `seqs` itself."""
    if parts == 1:
        return [list(seqs)]
    order: dict[int, list[TrainSequence]] = {}
    for s in seqs:
        order.setdefault(s.group, []).append(s)
    groups = list(order.values())
    bounds = [round(i * len(groups) / parts) for i in range(parts + 1)]
    return [[s for g in groups[bounds[i]:bounds[i + 1]] for s in g] for i in range(parts)]


def _combine(updates: list[StepStats], per_epoch: int) -> StepStats:
    """The step's stats from its several updates: the first pass over the batch (the first
    `per_epoch` updates) gives loss, grad norm, tokens and the metrics (means weighted by each
    update's tokens); each update's loss, grad norm, clip fraction and approx-KL also come as
    `update/<i>/...`, so that a second epoch's clipping shows."""
    first = updates[:per_epoch]
    tokens = sum(u.tokens for u in first)
    share = [u.tokens / max(1, tokens) for u in first]
    metrics: dict[str, float] = {}
    for u, w in zip(first, share, strict=True):
        for k, v in u.metrics.items():
            metrics[k] = metrics.get(k, 0.0) + (v if k in COUNT_METRICS else v * w)
    for i, u in enumerate(updates):
        metrics[f"update/{i}/loss"] = u.loss
        metrics[f"update/{i}/grad_norm"] = u.grad_norm
        for k in ("clip_frac", "approx_kl"):
            if k in u.metrics:
                metrics[f"update/{i}/{k}"] = u.metrics[k]
    metrics["update/count"] = float(len(updates))
    metrics["update/nonfinite"] = float(sum(not u.finite for u in updates))
    return StepStats(
        loss=sum(u.loss * w for u, w in zip(first, share, strict=True)),
        grad_norm=float(np.mean([u.grad_norm for u in first])), lr=updates[0].lr,
        tokens=tokens, sequences=sum(u.sequences for u in first), seconds=0.0,
        metrics=metrics, finite=any(u.finite for u in updates))


def _masked(mb: MicroBatch) -> MicroBatch:
    """`mb` with every loss term masked out: its loss and gradient are exactly 0."""
    zero = np.zeros_like(mb.loss_mask)
    return dataclasses.replace(mb, loss_mask=zero, prefix_mask=zero, advantages=zero,
                               sft_weights=zero)


def _full(value: torch.Tensor) -> torch.Tensor:
    """A DTensor (FSDP2's gradient norm) as the plain tensor it stands for."""
    return value.full_tensor() if hasattr(value, "full_tensor") else value
