"""vLLM worker extension that reloads policy weights in place from a safetensors file.

Loaded into every vLLM worker with `LLM(worker_extension_cls="actor.weights.ReloadExtension")`
and called with `llm.collective_rpc("lppo_reload_weights", args=(path,))`. Each worker opens
the file itself (a path crosses the RPC boundary in every vLLM mode; lists of tensors do not)
and hands the tensors to the model runner's `reload_weights`, which maps checkpoint names onto
vLLM's fused layers. No engine restart, no re-allocation of the KV cache.

The file must contain `lm_head.weight` even for tied embeddings (lppo.weightfiles writes it):
without it vLLM silently keeps the old output layer.
"""

from __future__ import annotations


class ReloadExtension:
    """Mixed into vLLM's worker class; `self.model_runner` is the worker's model runner."""

    def lppo_reload_weights(self, path: str) -> int:
        from safetensors import safe_open

        with safe_open(path, framework="pt", device="cpu") as fh:
            names = list(fh.keys())
            if "lm_head.weight" not in names:
                raise ValueError(
                    f"{path}: no lm_head.weight; vLLM would keep the old output layer "
                    "(write weights with lppo.weightfiles.write_weights)"
                )
            items = [(name, fh.get_tensor(name)) for name in names]
        self.model_runner.reload_weights(weights_iterator=iter(items))
        return len(items)
