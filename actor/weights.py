"""vLLM worker extension that reloads policy weights in place, from a file or a process group.

Loaded into every vLLM worker with `LLM(worker_extension_cls="actor.weights.ReloadExtension")`
and called through `llm.collective_rpc`:

- `lppo_reload_weights(path)`: each worker opens the safetensors file itself (a path crosses
  the RPC boundary in every vLLM mode; lists of tensors do not);
- `lppo_pull_weights(host, port, key, world_size, timeout_s, backend)`: each worker joins the
  learner's weight group `key` as rank 1 + its own rank and receives one broadcast
  (lppo/core/weightsync.py), streamed bucket by bucket into the loader.

Either way the tensors go to the model runner's `reload_weights`, which maps checkpoint names
onto vLLM's fused layers (and shards them under tensor parallelism). No engine restart, no
re-allocation of the KV cache.

The file must contain `lm_head.weight` even for tied embeddings (lppo.core.weightfiles writes it):
without it vLLM silently keeps the old output layer.
"""

from __future__ import annotations

import logging

from lppo.core import weightsync

RELOAD_LOGGER = "vllm.model_executor.model_loader.reload.layerwise"
"""vLLM's layer-wise reloader, which warns "<Layer>: Failed to load weights" for every layer
that holds tensors but received none."""


class _ComputedBuffers(logging.Filter):
    """Drops the reloader's warning for rotary embeddings: their tensor is a cos/sin table
    computed from the config, never a weight, so "failed to load" on each reload is expected
    (the reload is exact: tests/integration compare log-probs after it). Every other layer's
    warning still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.WARNING and record.args
                    and str(record.args[0]).endswith("RotaryEmbedding"))


def quiet_computed_buffers() -> None:
    """Install `_ComputedBuffers` on the reloader's logger (once per process)."""
    logger = logging.getLogger(RELOAD_LOGGER)
    if not any(isinstance(f, _ComputedBuffers) for f in logger.filters):
        logger.addFilter(_ComputedBuffers())


class ReloadExtension:
    """Mixed into vLLM's worker class; `self.model_runner` is the worker's model runner."""

    def lppo_reload_weights(self, path: str) -> int:
        from safetensors import safe_open

        quiet_computed_buffers()  # in the worker process, where the reload logs
        with safe_open(path, framework="pt", device="cpu") as fh:
            names = list(fh.keys())
            if "lm_head.weight" not in names:
                raise ValueError(
                    f"{path}: no lm_head.weight; vLLM would keep the old output layer "
                    "(write weights with lppo.core.weightfiles.write_weights)"
                )
            items = [(name, fh.get_tensor(name)) for name in names]
        self.model_runner.reload_weights(weights_iterator=iter(items))
        return len(items)

    def lppo_pull_weights(self, host: str, port: int, key: str, world_size: int,
                          timeout_s: float, backend: str) -> list:
        """Receive one collective transfer; returns [version, digest, tensors]."""
        quiet_computed_buffers()
        rank = 1 + int(getattr(self, "rank", 0))
        device = "cpu" if backend == "gloo" else str(self.device)
        got = weightsync.receive(
            host, port, key, rank, world_size, timeout_s, backend, device,
            lambda items: self.model_runner.reload_weights(weights_iterator=items))
        return list(got)
