"""Batches for trainer tests: groups of completions with the tiny model's own log-probs."""

from __future__ import annotations

import numpy as np
import torch

from learner.batch import TrainSequence


def on_policy_batch(trainer, groups: int = 2, noise: float = 0.0) -> list[TrainSequence]:
    """`groups` groups of 4 random completions (5-8 tokens) after a 6-token prompt, with the
    model's log-probs as behaviour (+-`noise` per token, alternating), advantages +-1."""
    rng = np.random.default_rng(0)
    vocab = trainer.model.config.vocab_size
    seqs = []
    for g in range(groups):
        prompt = tuple(int(t) for t in rng.integers(5, vocab, 6))
        for i in range(4):
            comp = tuple(int(t) for t in rng.integers(5, vocab, 5 + i))
            with torch.no_grad():
                ids = torch.tensor([prompt + comp])
                lp = trainer.model(ids).logits[0, :-1].log_softmax(-1)
                behaviour = lp[len(prompt) - 1:].gather(-1, ids[0, len(prompt):, None]).squeeze(-1)
            behaviour = behaviour + noise * (1 if i % 2 else -1)
            seqs.append(TrainSequence(prompt, (), comp, tuple(behaviour.tolist()),
                                      advantage=1.0 if i % 2 else -1.0, group=g))
    return seqs
