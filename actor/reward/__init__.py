"""Verifiable rewards: answer extraction, verdicts, the reward table and the verifier pool.

    from actor.reward import RewardPool
    with RewardPool(cfg.actor.reward) as pool:
        scored = pool.verify_group(gold, texts, finish_reasons)   # list[Scored]

Importing this package is light (no math-verify, no sympy): those load in the pool's worker
processes only (`actor.reward.verify`). `extract_boxed` / `extract_hash_answer` are the gold
answer extractors shared with the store's dataset importer.
"""

from actor.reward.pool import RewardPool, RewardPoolError
from actor.reward.verdict import Scored, Verdict, reward_for
from lppo.core.answers import (
    clean_output,
    extract_boxed,
    extract_hash_answer,
    gold_to_latex,
    has_boxed_answer,
)

__all__ = [
    "RewardPool",
    "RewardPoolError",
    "Scored",
    "Verdict",
    "clean_output",
    "extract_boxed",
    "extract_hash_answer",
    "gold_to_latex",
    "has_boxed_answer",
    "reward_for",
]
