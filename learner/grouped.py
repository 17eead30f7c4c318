"""Shared-prefix forward: a group's context is encoded once, not once per completion.

Every completion of a group repeats its context: the prompt, and for guided rows the prompt
plus the expert prefix, which can be most of a solution. Prefix Grouper ("Efficient GRPO
Training through Shared-Prefix Forward") encodes that shared part once per group with the same
outputs and gradients. This module does it through the key/value cache:

    units = pack_units(seqs, token_budget)     # rows with the same prompt + prefix, chunked
    logp, entropy = shared_logprobs(model, t, context_len, autocast)

For one micro-batch of n rows sharing a context of C = p + q tokens (prompt + prefix):

1. the context once: `model(context, use_cache=True, logits_to_keep=q + 1)` gives every
   layer's keys and values (with gradients) and the logits of its last q + 1 positions: the
   prefix tokens' targets and the first completion token's;
2. the keys and values repeated n times (`repeat_interleave`: differentiable, so the rows'
   gradients add up in the context's);
3. the completions, right-padded to L: `model(completions, past_key_values=cache,
   attention_mask=[1] * C + completion mask, position_ids=C + arange(L))`;
4. per row, the log-prob (and entropy) of completion token 0 from the context's last logit,
   of tokens 1.. from the completion logits, of the prefix tokens from the context's logits,
   laid out as the plain path lays them out (`learner/batch.py`: [rows, T - 1]); prompt
   positions are 0, which no loss term reads.

Every position sees the same keys, values and positions as in the plain forward, so the
log-probs and gradients are the plain path's up to float rounding (tests/unit/test_grouped.py
checks both on a tiny Qwen2 and a tiny Llama, with and without prefixes, uneven lengths and
padding). The PPO loss, the KL reference, the prefix terms and truncated IS all read these
per-token log-probs and are unchanged.

Why the cache rather than one packed row per group with a block attention mask: it needs no
custom mask, so it runs with every attention kernel transformers' decoder models have (eager,
sdpa, flash), and it keeps one forward shape. Its cost: transformers drops the cache under
gradient checkpointing, so with `learner.gradient_checkpointing` the trainer uses the plain
forward (and says so once).

Micro-batches: one unit (rows sharing a context) per micro-batch, so every micro-batch is
exactly two forward calls. That keeps FSDP2's collectives in step across learner ranks (each
rank runs as many micro-batches as the busiest, learner/distributed.py). A unit larger than the
token budget (C + rows x longest completion) is split into chunks that each encode the context
again: still exact, since each chunk's context gradient is added.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch

from learner.algo.logprobs import token_logprobs_and_entropy
from learner.batch import TrainSequence


def context_key(seq: TrainSequence) -> tuple[int, bytes, bytes]:
    return seq.group, seq.prompt_ids.tobytes(), seq.prefix_ids.tobytes()


def pack_units(seqs: Sequence[TrainSequence], token_budget: int) -> list[list[TrainSequence]]:
    """Micro-batches of rows that share their context, each within `token_budget` padded
    tokens (context + rows x longest completion; one row at least), largest first."""
    units: dict[tuple, list[TrainSequence]] = {}
    for seq in seqs:
        units.setdefault(context_key(seq), []).append(seq)
    out: list[list[TrainSequence]] = []
    for rows in units.values():
        rows = sorted(rows, key=lambda s: len(s.completion_ids), reverse=True)
        context = len(rows[0].prompt_ids) + len(rows[0].prefix_ids)
        chunk: list[TrainSequence] = []
        for seq in rows:
            longest = len(chunk[0].completion_ids) if chunk else len(seq.completion_ids)
            if chunk and context + (len(chunk) + 1) * longest > token_budget:
                out.append(chunk)
                chunk = []
            chunk.append(seq)
        out.append(chunk)
    return sorted(out, key=lambda c: (len(c[0].prompt_ids) + len(c[0].prefix_ids)
                                      + len(c) * len(c[0].completion_ids)), reverse=True)


def unsupported(model) -> str | None:
    """Why `model` cannot run the shared-prefix forward, or None when it can."""
    params = inspect.signature(model.forward).parameters
    missing = [p for p in ("past_key_values", "position_ids", "logits_to_keep", "use_cache")
               if p not in params]
    if missing:
        return f"its forward() takes no {', '.join(missing)}"
    if getattr(model, "is_gradient_checkpointing", False):
        return "gradient checkpointing is on (transformers drops the KV cache under it)"
    return None


def shared_logprobs(model, t: dict[str, torch.Tensor], context_len: int, prompt_len: int,
                    autocast) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs (with grad) and entropies of a micro-batch whose rows share their
    first `context_len` tokens, of which `prompt_len` are the prompt; shapes [rows, T - 1]."""
    ids, mask = t["input_ids"], t["attention_mask"]
    rows, width = ids.shape
    c, q = context_len, context_len - prompt_len
    lengths = mask.sum(dim=1) - c  # completion tokens per row
    span = max(1, int(lengths.max()))
    completions = ids[:, c:c + span]
    comp_mask = mask[:, c:c + span]
    if completions.shape[1] < span:  # every row empty: one masked pad keeps two calls
        completions = ids.new_zeros(rows, span)
        comp_mask = mask.new_zeros(rows, span)
    with autocast():
        ctx = model(input_ids=ids[:1, :c], use_cache=True, logits_to_keep=q + 1)
        cache = ctx.past_key_values
        cache.batch_repeat_interleave(rows)
        positions = torch.arange(c, c + span, device=ids.device).expand(rows, span)
        comp = model(input_ids=completions, attention_mask=torch.cat(
            [mask.new_ones(rows, c), comp_mask], dim=1), position_ids=positions,
            past_key_values=cache, use_cache=True).logits
    ctx_logits = ctx.logits[0]  # [q + 1, V]: targets p .. c (prefix tokens, completion 0)
    prefix_lp, prefix_ent = token_logprobs_and_entropy(ctx_logits[:q][None], ids[:1, prompt_len:c])
    first_lp, first_ent = token_logprobs_and_entropy(
        ctx_logits[q:].expand(rows, 1, -1), completions[:, :1])
    rest_lp, rest_ent = token_logprobs_and_entropy(comp[:, :-1], completions[:, 1:])
    return (_layout(prefix_lp, first_lp, rest_lp, prompt_len, width),
            _layout(prefix_ent, first_ent, rest_ent, prompt_len, width))


def _layout(prefix: torch.Tensor, first: torch.Tensor, rest: torch.Tensor, prompt_len: int,
            width: int) -> torch.Tensor:
    """[rows, width - 1] in the plain layout: position i holds the value for target i + 1."""
    rows = first.shape[0]
    head = prefix.new_zeros(rows, prompt_len - 1)
    body = torch.cat([head, prefix.expand(rows, -1), first, rest], dim=1)
    pad = width - 1 - body.shape[1]
    if pad > 0:
        body = torch.cat([body, body.new_zeros(rows, pad)], dim=1)
    return body[:, :width - 1]
