"""vLLM worker extension that reloads policy weights in place from a safetensors file.

Loaded into every vLLM worker with `LLM(worker_extension_cls="actor.weights.ReloadExtension")`
and called with `llm.collective_rpc("lppo_reload_weights", args=(path,))`. Each worker opens
the file itself (a path crosses the RPC boundary in every vLLM mode; lists of tensors do not)
and hands the tensors to the model runner's `reload_weights`, which maps checkpoint names onto
vLLM's fused layers. No engine restart, no re-allocation of the KV cache.

The file must contain `lm_head.weight` even for tied embeddings (lppo.core.weightfiles writes it):
without it vLLM silently keeps the old output layer.
"""

from __future__ import annotations

import logging

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
