"""Training sequences, micro-batches by token budget, and their padded tensors.

A rollout group becomes n `TrainSequence`s, one per completion:

    tokens  = prompt_ids + prefix_ids + completion_ids
    targets = tokens[1:]                     logits at position t predict tokens[t + 1]
    loss_mask[t]   = 1 where targets[t] is a completion token (the policy's own), unless the
                     sequence is masked (`TrainSequence.loss` False)
    prefix_mask[t] = 1 where targets[t] is a prefix token (the expert's hint), on the one
                     sequence per group that carries the group's prefix terms
    behaviour[t]   = the actor's log-prob of targets[t] (completion positions only)

Micro-batching packs sequences, longest first, into micro-batches whose padded size
(rows x longest row) stays within `learner.micro_batch_tokens`; a single sequence longer than
the budget gets a micro-batch of its own. Padding is on the right and masked out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class TrainSequence:
    """One completion ready for the loss. Token ids and log-probs are read-only numpy arrays
    (int64, float32), as the wire delivered them; a sequence given lists or tuples turns them
    into arrays."""

    prompt_ids: np.ndarray
    prefix_ids: np.ndarray
    completion_ids: np.ndarray
    behaviour_logprobs: np.ndarray
    advantage: float
    group: int
    """Index of the sequence's group in the optimizer batch."""
    prefix_advantage: float = 0.0
    """Advantage for the prefix tokens (LUFFY-style term); used on one sequence per group."""
    prefix_loss: bool = False
    """This sequence carries its group's prefix terms (set on one sequence per group)."""
    sft_weight: float = 0.0
    """Weight of the supervised term on the prefix tokens (with `prefix_loss`; 0: none)."""
    loss: bool = True
    """The completion's tokens carry the policy loss (False: masked, e.g. a truncated one under
    `learner.mask_truncated`; its prefix terms, if it carries them, stay)."""

    def __post_init__(self) -> None:
        for name, dtype in (("prompt_ids", np.int64), ("prefix_ids", np.int64),
                            ("completion_ids", np.int64), ("behaviour_logprobs", np.float32)):
            array = np.array(getattr(self, name), dtype=dtype).reshape(-1)
            array.flags.writeable = False
            object.__setattr__(self, name, array)
        if not self.prompt_ids.size:
            raise ValueError("a training sequence needs at least one prompt token")
        if len(self.completion_ids) != len(self.behaviour_logprobs):
            raise ValueError(
                f"{len(self.completion_ids)} completion tokens but "
                f"{len(self.behaviour_logprobs)} behaviour log-probs"
            )

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.prefix_ids) + len(self.completion_ids)


@dataclass
class MicroBatch:
    """Right-padded tensors (numpy; the trainer moves them to torch), all [rows, T-1] but
    `input_ids` / `attention_mask` [rows, T]."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    targets: np.ndarray
    loss_mask: np.ndarray
    prefix_mask: np.ndarray
    behaviour_logprobs: np.ndarray
    advantages: np.ndarray
    """Per token: the sequence's advantage on completion tokens, its prefix advantage on
    prefix tokens (when that sequence carries the group's prefix term), 0 elsewhere."""
    sft_weights: np.ndarray
    """Per token: the supervised term's weight on the prefix tokens of the sequence that
    carries its group's prefix terms, 0 elsewhere."""
    context_len: int = 0
    """When every row shares its prompt + prefix (`collate(..., shared=True)`): their length,
    for the shared-prefix forward (learner/grouped.py); 0 otherwise."""
    prompt_len: int = 0
    """With `context_len`: how many of those tokens are the prompt."""

    @property
    def loss_tokens(self) -> int:
        return int(self.loss_mask.sum())


def pack(seqs: Sequence[TrainSequence], token_budget: int) -> list[list[TrainSequence]]:
    """Group sequences into micro-batches of at most `token_budget` padded tokens."""
    ordered = sorted(seqs, key=lambda s: s.length, reverse=True)
    batches: list[list[TrainSequence]] = []
    current: list[TrainSequence] = []
    for seq in ordered:
        longest = current[0].length if current else seq.length
        if current and (len(current) + 1) * longest > token_budget:
            batches.append(current)
            current = []
        current.append(seq)
    if current:
        batches.append(current)
    return batches


def collate(seqs: Sequence[TrainSequence], pad_id: int, shared: bool = False) -> MicroBatch:
    """Padded arrays for one micro-batch (see the module docstring for the alignment). With
    `shared`, the rows must share their prompt and prefix, and `context_len` says how long."""
    rows, width = len(seqs), max(s.length for s in seqs)
    ids = np.full((rows, width), pad_id, dtype=np.int64)
    attn = np.zeros((rows, width), dtype=np.int64)
    shape = (rows, width - 1)
    loss_mask, prefix_mask = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    behaviour, adv = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    sft = np.zeros(shape, np.float32)
    for i, s in enumerate(seqs):
        tokens = np.concatenate((s.prompt_ids, s.prefix_ids, s.completion_ids))
        ids[i, : len(tokens)] = tokens
        attn[i, : len(tokens)] = 1
        p, q = len(s.prompt_ids), len(s.prefix_ids)
        start, end = p + q - 1, len(tokens) - 1  # target positions of the completion
        loss_mask[i, start:end] = 1.0 if s.loss else 0.0
        behaviour[i, start:end] = s.behaviour_logprobs
        adv[i, start:end] = s.advantage
        if s.prefix_loss and q:
            prefix_mask[i, p - 1 : p + q - 1] = 1.0
            adv[i, p - 1 : p + q - 1] = s.prefix_advantage
            sft[i, p - 1 : p + q - 1] = s.sft_weight
    context = prompt = 0
    if shared:
        first = seqs[0]
        if any(not (np.array_equal(s.prompt_ids, first.prompt_ids)
                    and np.array_equal(s.prefix_ids, first.prefix_ids)) for s in seqs):
            raise ValueError("collate(shared=True): the rows do not share prompt and prefix")
        prompt = len(first.prompt_ids)
        context = prompt + len(first.prefix_ids)
    return MicroBatch(
        input_ids=ids, attention_mask=attn, targets=ids[:, 1:].copy(), loss_mask=loss_mask,
        prefix_mask=prefix_mask, behaviour_logprobs=behaviour, advantages=adv, sft_weights=sft,
        context_len=context, prompt_len=prompt,
    )
