"""transformers generation engine: the `Engine` interface without vLLM, for debugging and tests.

Each `step()` generates every pending request in batched, left-padded `generate` calls (no
continuous batching: a request added meanwhile waits for the next step). It exists so the actor
loop can be run and stepped through in a debugger or tested where starting vLLM is not wanted;
on CPU it is also the faster engine for very small models, where vLLM's per-step overhead
dominates (`bench/ablation.py` uses it for that reason).

Log-probs are those of the raw model distribution (log-softmax of the unprocessed logits, as
vLLM's default `raw_logprobs` mode), taken from `output_logits=True`. Sampling draws from
torch's global random generator (seed it with `torch.manual_seed` for a reproducible run).
Stop strings end a sample where they first occur; the stop string itself is not part of the
text.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from actor.engine import GenRequest, GenResult, GenSample
from lppo.core.errors import one_line
from lppo.core.weightfiles import WeightsError

if TYPE_CHECKING:
    from lppo.core.config import Config


MAX_ROWS = 512
"""Most completions one `generate` call samples (bounds its memory)."""


class HFEngine:
    """`actor.engine.Engine` on transformers `generate` (CPU or CUDA)."""

    def __init__(self, cfg: Config):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = {"auto": torch.float32, "float32": torch.float32,
                 "bfloat16": torch.bfloat16}[cfg.model.dtype]
        self._tok = AutoTokenizer.from_pretrained(cfg.model.tokenizer or cfg.model.path)
        self.model = AutoModelForCausalLM.from_pretrained(cfg.model.path, dtype=dtype)
        self.model.to(self.device).eval()
        self.sampling = cfg.actor.sampling
        self._pending: deque[GenRequest] = deque()

    def tokenizer(self):
        return self._tok

    def add(self, request: GenRequest) -> None:
        self._pending.append(request)

    def has_unfinished(self) -> bool:
        return bool(self._pending)

    def num_unfinished(self) -> int:
        return len(self._pending)

    def abort_all(self) -> None:
        self._pending.clear()

    def step(self) -> list[GenResult]:
        """Every pending request, in batched `generate` calls of at most `MAX_ROWS` rows."""
        if not self._pending:
            return []
        requests = list(self._pending)
        self._pending.clear()
        results, batch, rows = [], [], 0
        for request in requests:
            if batch and rows + request.n > MAX_ROWS:
                results += self._generate(batch)
                batch, rows = [], 0
            batch.append(request)
            rows += request.n
        return results + self._generate(batch)

    def _generate(self, requests: list[GenRequest]) -> list[GenResult]:
        """One `generate` call over the requests' rows, left-padded to the longest prompt."""
        torch = self._torch
        prompts = [r.prompt_ids for r in requests for _ in range(r.n)]
        eos = self._tok.eos_token_id
        pad = self._tok.pad_token_id if self._tok.pad_token_id is not None else eos
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad, dtype=torch.long, device=self.device)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(prompts):
            ids[i, width - len(p):] = torch.tensor(p, device=self.device)
            mask[i, width - len(p):] = 1
        with torch.no_grad():
            out = self.model.generate(
                ids, attention_mask=mask, do_sample=self.sampling.temperature > 0,
                temperature=self.sampling.temperature or None, top_p=self.sampling.top_p,
                top_k=0, max_new_tokens=self.sampling.max_tokens, eos_token_id=eos,
                pad_token_id=pad, output_logits=True, return_dict_in_generate=True,
            )
        new = out.sequences[:, width:]
        logprobs = torch.stack(out.logits, dim=1).float().log_softmax(-1)
        picked = logprobs.gather(-1, new.unsqueeze(-1)).squeeze(-1)
        samples = [self._sample(new[i].tolist(), picked[i].tolist(), eos)
                   for i in range(len(prompts))]
        results, at = [], 0
        for r in requests:
            results.append(GenResult(r.request_id, samples[at:at + r.n]))
            at += r.n
        return results

    def _sample(self, tokens: list[int], logprobs: list[float], eos: int | None) -> GenSample:
        if eos is not None and eos in tokens:  # keep the EOS token, drop the padding after it
            cut = tokens.index(eos) + 1
            tokens, logprobs = tokens[:cut], logprobs[:cut]
            text = self._tok.decode(tokens, skip_special_tokens=True)
            return GenSample(tokens, logprobs, text, "stop")
        text = self._tok.decode(tokens, skip_special_tokens=True)
        for stop in self.sampling.stop:
            at = text.find(stop)
            if at >= 0:
                kept = self._tokens_for_prefix(tokens, text[:at] + stop)
                return GenSample(tokens[:kept], logprobs[:kept], text[:at], "stop")
        return GenSample(tokens, logprobs, text, "length")

    def _tokens_for_prefix(self, tokens: list[int], text: str) -> int:
        """Fewest leading tokens whose decoded text covers `text` (the stop string included)."""
        for k in range(1, len(tokens) + 1):
            if len(self._tok.decode(tokens[:k], skip_special_tokens=True)) >= len(text):
                return k
        return len(tokens)

    def load_weights(self, path: str) -> None:
        from lppo.core.weightfiles import load_state

        self._load_state(load_state(path), path)

    def _load_state(self, state: dict, source: str) -> None:
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if unexpected or [m for m in missing if m != "lm_head.weight"]:
            raise ValueError(f"{source}: missing {missing[:5]}, unexpected {unexpected[:5]}")

    def pull_weights(self, host: str, port: int, key: str, backend: str,
                     timeout_s: float) -> tuple[int, str]:
        from lppo.core import weightsync

        mine = weightsync.backend_for(self.device)
        if backend != mine:
            raise WeightsError(f"the learner broadcasts weights over {backend}, this actor's "
                               f"engine needs {mine}: run both on the same kind of device")
        state: dict = {}
        try:
            version, digest, _ = weightsync.receive(
                host, port, key, 1, 2, timeout_s, backend, self.device,
                lambda items: state.update(items))
        except Exception as exc:  # gloo/NCCL/store errors, a digest mismatch: one kind here
            raise WeightsError(f"pulling weights over group {key}: {one_line(exc)}") from exc
        self._load_state(state, key)
        return version, digest

    def sync_world_size(self) -> int:
        return 2

    def close(self) -> None:
        self._pending.clear()
