"""One optimizer batch from accepted groups: advantages, LP weights, prefix terms, sequences.

    batch = assemble(decisions, cfg)
        advantages   GRPO / Dr.GRPO / REINFORCE++ over each group's rewards, plus DAPO's soft
                     overlong penalty when `actor.reward.overlong_buffer` is set (a mixed
                     group's guided and unguided completions share one baseline)
        LP weights   `progress.batch_weights` of each group's weighting progress
        prefix terms `guidance.prefix_signal` for each group with a prefix: the off-policy
                     advantage and the supervised weight on its prefix tokens
        sequences    one `TrainSequence` per completion: prompt + (its prefix, if it saw one)
                     + completion; the first completion that saw the prefix carries the
                     group's prefix terms (a prefix is shared, so it is counted once); a
                     truncated completion carries no loss under `learner.mask_truncated`
                     (learner/algo/overlong.py)

Pure (numpy and the config): the learner's loop and the ablation bench build batches with
this one function, and `tests/unit/test_learner_assemble.py` checks it by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from learner.algo.advantages import apply_weights, compute_advantages
from learner.algo.guidance import NONE, PrefixSignal, prefix_signal
from learner.algo.overlong import shaping
from learner.algo.progress import batch_weights
from learner.batch import TrainSequence
from learner.scheduler import Decision
from lppo.core.config import Config
from lppo.core.vocab import Verdict

NOT_ONE = 0.01
"""An applied LP weight further than this from 1 counts as re-weighting its group."""


@dataclass
class Batch:
    """What one optimizer step trains on, and what was applied to each group."""

    sequences: list[TrainSequence]
    weights: np.ndarray
    """LP weight applied to each group (after the batch renormalisation)."""
    signals: list[PrefixSignal]
    """Prefix terms of each group (`guidance.NONE` for an unguided group)."""
    guided: list[bool]
    """Each group had a prefix."""
    mixed: int = 0
    """Groups with completions both with and without the prefix."""
    metrics: dict[str, float] = field(default_factory=dict)

    def prefix_terms(self) -> list[str | None]:
        """What the ledger records per group: the term, None for an unguided group."""
        return [s.term if g else None for s, g in zip(self.signals, self.guided, strict=True)]

    def prefix_advantages(self) -> list[float | None]:
        return [s.advantage for s in self.signals]


def assemble(decisions: Sequence[Decision], cfg: Config) -> Batch:
    """The batch for `decisions` (accepted groups, each with its observation)."""
    lc = cfg.learner
    groups = [d.group for d in decisions]
    lengths = [[c.token_ids.numpy().size for c in g.completions] for g in groups]
    shaped = [shaping(n, [c.finish_reason for c in g.completions], cfg)
              for g, n in zip(groups, lengths, strict=True)]
    rewards = [[c.reward + p for c, p in zip(g.completions, penalty, strict=True)]
               for g, (penalty, _) in zip(groups, shaped, strict=True)]
    adv = compute_advantages(rewards, lc.advantage, lc.std_normalize, lengths=lengths)
    weights = batch_weights([d.observation.progress for d in decisions], cfg.lppo.lp)
    values = apply_weights(adv.values, weights)
    correct = cfg.actor.reward.correct
    seqs: list[TrainSequence] = []
    signals: list[PrefixSignal] = []
    guided: list[bool] = []
    mixed = 0
    for g, (d, a) in enumerate(zip(decisions, values, strict=True)):
        group = d.group
        saw = [group.prefix_len > 0 and not c.unguided for c in group.completions]
        signal = NONE
        if any(saw):
            signal = prefix_signal(
                cfg.lppo.pg, reward_correct=correct, baseline=d.observation.baseline,
                guided_correct=sum(c.verdict == Verdict.CORRECT for c, s in zip(group.completions, saw,
                                                                        strict=True) if s),
                group_advantage_of_correct=adv.of_reward(g, correct), lp_weight=float(weights[g]))
        signals.append(signal)
        guided.append(any(saw))
        mixed += any(saw) and not all(saw)
        prompt, prefix = group.prompt_ids.numpy(), group.prefix_ids.numpy()
        carrier = saw.index(True) if any(saw) and signal is not NONE else -1
        masked = shaped[g][1]
        for i, comp in enumerate(group.completions):
            seqs.append(TrainSequence(
                prompt_ids=prompt, prefix_ids=prefix if saw[i] else prefix[:0],
                completion_ids=comp.token_ids.numpy(), behaviour_logprobs=comp.logprobs.numpy(),
                advantage=float(a[i]), group=g, prefix_loss=i == carrier,
                prefix_advantage=signal.advantage or 0.0, sft_weight=signal.sft_weight,
                loss=not masked[i],
            ))
    batch = Batch(seqs, weights, signals, guided, mixed)
    batch.metrics = _metrics(batch)
    return batch


def _metrics(batch: Batch) -> dict[str, float]:
    """LP weight spread and prefix-term counts of one batch (per-step metrics)."""
    w = batch.weights
    taught = [s for s, g in zip(batch.signals, batch.guided, strict=True) if g and s is not NONE]
    advantages = [s.advantage for s in taught if s.advantage is not None]
    return {
        "batch/lp_weight_min": float(w.min()),
        "batch/lp_weight_max": float(w.max()),
        "batch/lp_weight_std": float(w.std()),
        "batch/lp_weight_not_one": float(np.mean(np.abs(w - 1.0) > NOT_ONE)),
        "batch/prefix_taught": float(len(taught)),
        "batch/prefix_advantage_mean": float(np.mean(advantages)) if advantages else 0.0,
        "batch/mixed_groups": float(batch.mixed),
    }
