"""The `actor` section: sampling for training rollouts, the reward table and the verifier pool
(actor/, and the learner where it shapes rewards: learner/assemble.py)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from lppo.core.config.section import Section
from lppo.core.vocab import Verdict


class SamplingConfig(Section):
    temperature: float = Field(1.0, ge=0.0)
    """Sampling temperature for training rollouts."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    """Nucleus sampling mass."""
    max_tokens: int = Field(1024, gt=0)
    """Most new tokens per completion (prefix tokens not counted)."""
    stop: list[str] = Field(default_factory=list)
    """Stop strings; the stop string itself is not part of the completion."""


MAX_REWARD = 1e3
"""Largest reward magnitude the table accepts: far above any useful reward, far below where
group statistics and the loss overflow."""
REWARD_KEYS = (*(v.value for v in Verdict), "truncated")


class RewardConfig(Section):
    """Verdict-to-reward table (PipelineRL's RewardTable) and the verifier pool's limits.

    A completion's reward is the value of its verdict; `format_weight` is added when the output
    holds a closed `\\boxed{}` answer. A completion that did not finish (finish reason `length`
    or `abort`) is by default not judged: its verdict is `unfinished`, never correct, whatever
    its last number. With `judge_unfinished` it is judged and takes
    `truncated_overrides[verdict]`, else `truncated`, else its verdict's value.
    """

    correct: float = 1.0
    """Reward of a verified-correct answer."""
    wrong: float = 0.0
    """Reward of a parsable but wrong answer."""
    no_answer: float = 0.0
    """Reward when nothing parsable is found in the output."""
    unparsable_gold: float = 0.0
    """Reward when the stored gold answer cannot be parsed (a data problem, logged)."""
    timeout: float = 0.0
    """Reward when verification ran past its deadline."""
    error: float = 0.0
    """Reward when the verifier failed."""
    unfinished: float = 0.0
    """Reward of a completion that did not finish when `judge_unfinished` is off."""
    judge_unfinished: bool = False
    """Judge completions cut by max_tokens (or aborted) like finished ones. Off: they are not
    verified and their verdict is `unfinished` (a cut-off completion's answer is rarely its
    own: a policy rewarded for it learns to ramble)."""
    truncated: float | None = None
    """With `judge_unfinished`: reward of any unfinished completion, whatever its verdict."""
    truncated_overrides: dict[Verdict, float] = Field(default_factory=dict)
    """With `judge_unfinished`: per-verdict rewards of unfinished completions, e.g.
    `{correct = 0.5, no_answer = -0.5}`; they take precedence over `truncated`."""

    def value_of(self, verdict: Verdict) -> float:
        """The table's reward for a finished completion with this verdict."""
        return {
            Verdict.CORRECT: self.correct, Verdict.WRONG: self.wrong,
            Verdict.NO_ANSWER: self.no_answer, Verdict.UNPARSABLE_GOLD: self.unparsable_gold,
            Verdict.TIMEOUT: self.timeout, Verdict.ERROR: self.error,
            Verdict.UNFINISHED: self.unfinished,
        }[verdict]

    @model_validator(mode="after")
    def _bounded_rewards(self) -> RewardConfig:
        values = {name: getattr(self, name) for name in REWARD_KEYS}
        values.update({f"truncated_overrides.{k}": v for k, v in self.truncated_overrides.items()})
        for name, value in values.items():
            if value is not None and not (math.isfinite(value) and abs(value) <= MAX_REWARD):
                raise ValueError(f"actor.reward.{name}: expected a finite reward within "
                                 f"+-{MAX_REWARD:g}, got {value}")
        if Verdict.UNFINISHED in self.truncated_overrides:
            raise ValueError("actor.reward.truncated_overrides: `unfinished` is the verdict of an "
                             "unjudged completion; set actor.reward.unfinished instead")
        if not self.judge_unfinished and (self.truncated is not None or self.truncated_overrides):
            raise ValueError("actor.reward.truncated and truncated_overrides reward judged "
                             "unfinished completions: set actor.reward.judge_unfinished = true, "
                             "or set actor.reward.unfinished (the reward of an unjudged one)")
        return self
    format_weight: float = Field(0.0, ge=0.0)
    """Weight of the optional format reward (answer in `\\boxed{}`); 0 turns it off."""
    overlong_buffer: int = Field(0, ge=0)
    """DAPO's soft overlong punishment (TRL `max_completion_length` with its overlong
    reward, verl `reward_model.overlong_buffer.len`): a completion longer than
    `actor.sampling.max_tokens - overlong_buffer` tokens gets a penalty growing linearly to
    `overlong_penalty` at `max_tokens`, added to its reward by the learner before advantages
    and recorded per completion (`rollouts.overlong_penalty`). 0: off."""
    overlong_penalty: float = Field(1.0, ge=0.0, le=MAX_REWARD)
    """With `overlong_buffer`: the penalty at `max_tokens` (verl's `penalty_factor`)."""
    require_anchor: bool = True
    """Only read the answer the output marks: the last `\\boxed{}`, else the rest of the line
    after the last `####`, "final answer ... is", "answer is" or "answer:"; an output that
    marks none has `no_answer`. Off: math-verify reads the whole output, and the last formula
    or number counts when nothing is marked (a reward a rambling policy can game)."""
    workers: int = Field(2, ge=1, le=64)
    """Verifier worker processes per actor (also the most groups verified at once)."""
    timeout_s: float = Field(5.0, ge=0.1, le=600.0)
    """Hard per-item deadline, enforced by killing the worker; each worker also stops itself
    at 80% of it so that most slow items never cost a restart."""
    max_output_chars: int = Field(20_000, ge=100)
    """Longer outputs are cut (keeping the tail, where answers are) before parsing; longer
    gold answers are `unparsable_gold`."""
    start_method: Literal["forkserver", "spawn"] = "forkserver"
    """How workers start. `forkserver` forks replacements from a clean server process that has
    math-verify loaded (milliseconds); `spawn` starts a fresh interpreter each time (about a
    second). Never `fork`: the actor process holds vLLM and torch threads."""
    start_timeout_s: float = Field(60.0, gt=0.0)
    """A worker must be ready (math-verify imported) within this; otherwise the pool fails."""
    worker_memory_mb: int = Field(2048, ge=0)
    """Address-space limit of each worker (RLIMIT_AS) so a huge expression raises MemoryError
    instead of exhausting the machine; 0: no limit."""


class ActorConfig(Section):
    count: int = Field(1, ge=1)
    """Actors started by `lppo run` on this machine."""
    engine: Literal["vllm", "transformers"] = "vllm"
    """Generation engine; `transformers` is for debugging and tests only."""
    slots: int = Field(32, ge=1)
    """Work items an actor keeps in flight to keep its engine busy."""
    enforce_eager: bool = True
    """Disable CUDA graphs / compilation (faster start, required on CPU)."""
    gpu_memory_utilization: float = Field(0.85, gt=0.0, le=1.0)
    """Share of GPU memory vLLM may use."""
    tensor_parallel_size: int = Field(1, ge=1)
    """vLLM tensor parallelism per actor."""
    kv_cache_gib: int = Field(1, ge=1)
    """KV cache size on CPU (`VLLM_CPU_KVCACHE_SPACE`)."""
    max_restarts: int = Field(3, ge=0)
    """`lppo run` restarts a crashed actor at most this many times (per actor slot)."""
    buffer_groups: int = Field(256, ge=1)
    """Finished groups kept while the learner is unreachable; oldest dropped beyond it."""
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    """Sampling parameters for training rollouts."""
    reward: RewardConfig = Field(default_factory=RewardConfig)
    """Verifier pool and reward table."""

