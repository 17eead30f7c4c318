"""Per-token log-probs of the targets and entropies from logits, without a full-vocabulary
float32 copy.

    token_logprobs(logits, targets)   log softmax(logits)[target], with gradient to the logits
    token_entropy(logits)             -sum p log p, without gradient (reported only)
    token_logprobs_and_entropy(...)   both in one pass over the logits (what the trainer calls)

The plain way, `logits.float().log_softmax(-1).gather(...)`, materialises one or more float32
tensors of the logits' full size ([positions, vocabulary]: ~10 GB for 16k positions and a
152k vocabulary) and autograd keeps them for the backward pass. Here positions are taken in
chunks of at most `CHUNK_ELEMENTS` logits: the forward keeps only the per-position
log-sum-exp, and the backward recomputes each chunk's softmax from the logits themselves
(which the model's output already holds), writing the gradient straight into one tensor of
the logits' dtype:

    d logp_t / d logits_t,v = [v == target_t] - softmax(logits_t)_v

Values equal the plain computation to float32 rounding (tests/unit/test_algo_logprobs.py,
which also checks gradients); the extra memory is one float32 chunk instead of several
full-size copies (measured in bench/logprobs.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

CHUNK_ELEMENTS = 1 << 24
"""Logits per chunk (64 MB in float32): positions per chunk = this // vocabulary size."""


def _chunks(rows: int, vocab: int, chunk_elements: int):
    step = max(1, chunk_elements // max(1, vocab))
    for start in range(0, rows, step):
        yield start, min(rows, start + step)


class _SelectedLogProbs(torch.autograd.Function):
    """log softmax(logits)[targets] with a chunked, recomputing backward (see the module)."""

    @staticmethod
    def forward(ctx, logits: Tensor, targets: Tensor, chunk_elements: int,
                entropy: bool) -> tuple[Tensor, Tensor]:
        vocab = logits.shape[-1]
        flat, flat_targets = logits.reshape(-1, vocab), targets.reshape(-1, 1).long()
        lse = torch.empty(flat.shape[0], dtype=torch.float32, device=logits.device)
        picked, ent = torch.empty_like(lse), torch.zeros_like(lse)
        for a, b in _chunks(flat.shape[0], vocab, chunk_elements):
            x = flat[a:b].float()
            lse[a:b] = torch.logsumexp(x, dim=-1)
            picked[a:b] = x.gather(-1, flat_targets[a:b]).squeeze(-1)
            if entropy:  # H = lse - sum_v p_v x_v
                ent[a:b] = lse[a:b] - (torch.exp(x - lse[a:b, None]) * x).sum(-1)
        ctx.save_for_backward(logits, targets, lse)
        ctx.chunk_elements = chunk_elements
        ent = ent.reshape(targets.shape)
        ctx.mark_non_differentiable(ent)
        return (picked - lse).reshape(targets.shape), ent

    @staticmethod
    def backward(ctx, grad_out: Tensor, _grad_entropy: Tensor | None):
        logits, targets, lse = ctx.saved_tensors
        vocab = logits.shape[-1]
        flat, flat_targets = logits.reshape(-1, vocab), targets.reshape(-1, 1).long()
        g = grad_out.reshape(-1, 1).float()
        grad = torch.empty_like(flat)
        for a, b in _chunks(flat.shape[0], vocab, ctx.chunk_elements):
            part = torch.exp(flat[a:b].float() - lse[a:b, None]).mul_(-g[a:b])
            part.scatter_add_(-1, flat_targets[a:b], g[a:b])
            grad[a:b] = part
        return grad.reshape(logits.shape), None, None, None


def token_logprobs(logits: Tensor, targets: Tensor,
                   chunk_elements: int = CHUNK_ELEMENTS) -> Tensor:
    """log softmax(logits)[target] per position, float32: logits [..., V], targets [...]."""
    return _apply(logits, targets, chunk_elements, entropy=False)[0]


def token_logprobs_and_entropy(logits: Tensor, targets: Tensor,
                               chunk_elements: int = CHUNK_ELEMENTS) -> tuple[Tensor, Tensor]:
    """(`token_logprobs`, `token_entropy`) in one pass; the entropy carries no gradient."""
    return _apply(logits, targets, chunk_elements, entropy=True)


def _apply(logits: Tensor, targets: Tensor, chunk_elements: int,
           entropy: bool) -> tuple[Tensor, Tensor]:
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"targets: expected shape {tuple(logits.shape[:-1])}, "
                         f"got {tuple(targets.shape)}")
    return _SelectedLogProbs.apply(logits, targets, chunk_elements, entropy)


@torch.no_grad()
def token_entropy(logits: Tensor, chunk_elements: int = CHUNK_ELEMENTS) -> Tensor:
    """Entropy of softmax(logits) per position, float32: [..., V] -> [...] (no gradient)."""
    vocab = logits.shape[-1]
    flat = logits.detach().reshape(-1, vocab)
    out = torch.empty(flat.shape[0], dtype=torch.float32, device=logits.device)
    for a, b in _chunks(flat.shape[0], vocab, chunk_elements):
        logp = torch.log_softmax(flat[a:b].float(), dim=-1)
        out[a:b] = -(logp.exp() * logp).sum(-1)
    return out.reshape(logits.shape[:-1])
