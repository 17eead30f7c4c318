"""transformers generation engine: the `Engine` interface without vLLM, for debugging and tests.

Each `step()` generates one pending request (all n samples in one `generate` call), so it is
far slower than vLLM and has no continuous batching; it exists so the actor loop can be run
and stepped through in a debugger, or tested where starting vLLM is not wanted.

Log-probs are those of the raw model distribution (log-softmax of the unprocessed logits, as
vLLM's default `raw_logprobs` mode), taken from `output_logits=True`. Stop strings end a
sample where they first occur; the stop string itself is not part of the text.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from actor.engine import GenRequest, GenResult, GenSample

if TYPE_CHECKING:
    from lppo.config import Config


class HFEngine:
    """`actor.engine.Engine` on transformers `generate` (CPU or CUDA)."""

    def __init__(self, cfg: Config):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = {"auto": torch.float32, "float32": torch.float32, "bfloat16": torch.bfloat16,
                 "float16": torch.float16}[cfg.model.dtype]
        self._tok = AutoTokenizer.from_pretrained(cfg.model.tokenizer or cfg.model.path)
        self.model = AutoModelForCausalLM.from_pretrained(cfg.model.path, dtype=dtype)
        self.model.to(self.device).eval()
        self.sampling = cfg.actor.sampling
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.run.seed)
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
        if not self._pending:
            return []
        request = self._pending.popleft()
        return [GenResult(request.request_id, self._generate(request))]

    def _generate(self, request: GenRequest) -> list[GenSample]:
        torch = self._torch
        prompt = torch.tensor([request.prompt_ids] * request.n, device=self.device)
        eos = self._tok.eos_token_id
        with torch.no_grad():
            out = self.model.generate(
                prompt, attention_mask=torch.ones_like(prompt), do_sample=self.sampling.temperature > 0,
                temperature=self.sampling.temperature or None, top_p=self.sampling.top_p,
                top_k=0, max_new_tokens=self.sampling.max_tokens, eos_token_id=eos,
                pad_token_id=self._tok.pad_token_id or eos, output_logits=True,
                return_dict_in_generate=True,
            )
        new = out.sequences[:, prompt.shape[1]:]
        logprobs = torch.stack(out.logits, dim=1).float().log_softmax(-1)
        picked = logprobs.gather(-1, new.unsqueeze(-1)).squeeze(-1)
        return [self._sample(new[i].tolist(), picked[i].tolist(), eos) for i in range(request.n)]

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
        from lppo.weightfiles import load_state

        state = load_state(path)
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if unexpected or [m for m in missing if m != "lm_head.weight"]:
            raise ValueError(f"{path}: missing {missing[:5]}, unexpected {unexpected[:5]}")

    def close(self) -> None:
        self._pending.clear()
