"""Scored results and the reward table (PipelineRL's `RewardTable`, as config).

A verdict (`lppo/core/vocab.py`) says what the verifier concluded about one completion; the
reward is a pure function of the verdict, the completion's finish reason and the optional
format check, read from `RewardConfig`. Keeping the two apart means a run can change how much a
truncated or unparsable answer is worth without touching the verifier, and the ledger records
both.
"""

from __future__ import annotations

from dataclasses import dataclass

from lppo.core.config.schema import RewardConfig
from lppo.core.vocab import FinishReason, Verdict

FINISHED = FinishReason.STOP
"""The finish reason of a completion that ended on its own (EOS or a stop string)."""


@dataclass(frozen=True, slots=True)
class Scored:
    """The verifier's result for one completion."""

    verdict: Verdict
    reward: float
    finish_reason: str
    """As given by the engine: `stop`, `length` (cut by max_tokens) or `abort`."""
    format_ok: bool
    """A closed, non-empty `\\boxed{}` answer is present (the optional format reward's test)."""
    truncated_input: bool
    """The output was longer than `max_output_chars` and only its tail was parsed."""
    detail: str = ""
    """Why, for `timeout`, `error` and `unparsable_gold`; empty otherwise."""
    seconds: float = 0.0
    """Worker time spent on this completion (0 when it never reached a worker)."""


def reward_for(cfg: RewardConfig, verdict: Verdict, finish_reason: str, format_ok: bool) -> float:
    """Reward of one completion: table value for (verdict, finished?) plus the format bonus.

    A judged completion that did not finish (`length` or `abort`) takes, in order of
    precedence, `truncated_overrides[verdict]`, then `truncated`, then the plain table value.
    """
    reward = cfg.value_of(verdict)
    if finish_reason != FINISHED and verdict != Verdict.UNFINISHED:
        if verdict in cfg.truncated_overrides:
            reward = cfg.truncated_overrides[verdict]
        elif cfg.truncated is not None:
            reward = cfg.truncated
    if format_ok:
        reward += cfg.format_weight
    return float(reward)
