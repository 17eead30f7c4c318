"""Lean log-probs and entropy (learner.algo.logprobs) against the plain full-vocabulary
computation: values and gradients, in float32 and bfloat16, whatever the chunking."""

from __future__ import annotations

import math

import pytest
import torch

from learner.algo.logprobs import token_entropy, token_logprobs, token_logprobs_and_entropy


def _plain(logits, targets):
    return torch.log_softmax(logits.float(), -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def test_by_hand():
    assert token_entropy(torch.zeros(1, 2, 4)) == pytest.approx(torch.full((1, 2), math.log(4)))
    logits = torch.tensor([[[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]])
    expected = [2.0 - math.log(math.e ** 2 + 1 + math.e ** -1), -math.log(2 + math.e)]
    assert token_logprobs(logits, torch.tensor([[0, 2]]))[0].tolist() == pytest.approx(expected)


@pytest.mark.parametrize("chunk", [1, 7 * 50, 1 << 24])  # one position, a few, everything
def test_values_and_gradients_equal_the_plain_computation(chunk):
    torch.manual_seed(0)
    logits = (torch.randn(3, 11, 50, dtype=torch.float64) * 4).requires_grad_(True)
    targets = torch.randint(0, 50, (3, 11))
    weights = torch.randn(3, 11, dtype=torch.float64)
    lean = token_logprobs(logits, targets, chunk_elements=chunk)
    (lean * weights).sum().backward()
    lean_grad, logits.grad = logits.grad.clone(), None
    plain = _plain(logits, targets)
    (plain * weights).sum().backward()
    torch.testing.assert_close(lean.double(), plain.double(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(lean_grad, logits.grad, rtol=1e-6, atol=1e-6)
    logp = torch.log_softmax(logits.detach().float(), -1)
    plain_entropy = -(logp.exp() * logp).sum(-1)
    torch.testing.assert_close(token_entropy(logits, chunk_elements=chunk), plain_entropy)
    both, entropy = token_logprobs_and_entropy(logits, targets, chunk_elements=chunk)
    torch.testing.assert_close(both, lean)
    torch.testing.assert_close(entropy, plain_entropy, rtol=1e-5, atol=1e-5)
    assert not entropy.requires_grad


def test_bfloat16_logits_get_float32_results_and_a_bfloat16_gradient():
    torch.manual_seed(1)
    logits = torch.randn(2, 5, 64).bfloat16().requires_grad_(True)
    targets = torch.randint(0, 64, (2, 5))
    lean = token_logprobs(logits, targets, chunk_elements=64 * 3)
    assert lean.dtype == torch.float32
    torch.testing.assert_close(lean, _plain(logits.detach(), targets))
    lean.sum().backward()
    assert logits.grad.dtype == torch.bfloat16
    reference = logits.detach().float().requires_grad_(True)
    _plain(reference, targets).sum().backward()
    torch.testing.assert_close(logits.grad.float(), reference.grad, rtol=2e-2, atol=1e-2)


def test_shape_mismatch_names_the_shapes():
    with pytest.raises(ValueError, match=r"expected shape \(2, 3\)"):
        token_logprobs(torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long))
