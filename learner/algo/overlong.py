"""Overlong completions: DAPO's soft punishment and the truncation mask (pure rules).

Soft overlong punishment (DAPO, Yu et al. 2025, eq. 13): with `L_max = actor.sampling.max_tokens`
and a buffer of `L_cache = actor.reward.overlong_buffer` tokens, a completion of `L` tokens gets

    0                                      L <= L_max - L_cache
    (L_max - L_cache - L) / L_cache * P    L_max - L_cache < L <= L_max
    -P                                     L > L_max

(`P = actor.reward.overlong_penalty`) added to its reward before advantages, so that among
otherwise equal answers the one that needed the last tokens of the budget scores lower. It
needs no verifier and no finish reason: only the length.

Truncation mask (`learner.mask_truncated`, TRL's `mask_truncated_completions`): a completion
whose finish reason is `length` carries no loss; it still counts in its group's baseline, so
the other completions' advantages are those of the full group.
"""

from __future__ import annotations

from lppo.core.config.actor import RewardConfig
from lppo.core.config.schema import Config
from lppo.core.vocab import FinishReason


def overlong_penalty(length: int, max_tokens: int, buffer: int, penalty: float) -> float:
    """DAPO's soft overlong punishment of a `length`-token completion (<= 0; 0 when off)."""
    if buffer <= 0 or penalty == 0.0:
        return 0.0
    start = max_tokens - buffer
    if length <= start:
        return 0.0
    if length > max_tokens:
        return -penalty
    return (start - length) / buffer * penalty


def penalties(lengths: list[int], max_tokens: int, reward: RewardConfig) -> list[float]:
    """`overlong_penalty` of each length under `actor.reward`'s settings."""
    return [overlong_penalty(n, max_tokens, reward.overlong_buffer, reward.overlong_penalty)
            for n in lengths]


def loss_masked(finish_reasons: list[str], mask_truncated: bool) -> list[bool]:
    """Which completions carry no loss: the truncated ones, when `mask_truncated`."""
    return [mask_truncated and reason == FinishReason.LENGTH for reason in finish_reasons]


def shaping(lengths: list[int], finish_reasons: list[str], cfg: Config
            ) -> tuple[list[float], list[bool]]:
    """A group's completions' (overlong penalties, loss masks) under `cfg`: what
    `learner.assemble` applies and what the ledger records (`learner/io.py`)."""
    return (penalties(lengths, cfg.actor.sampling.max_tokens, cfg.actor.reward),
            loss_masked(finish_reasons, cfg.learner.mask_truncated))
