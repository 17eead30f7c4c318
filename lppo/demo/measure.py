"""Greedy accuracy per level of a demo model, unguided or with an expert-solution prefix.

Why: the demo is tuned for a regime (level 1 mostly solved, the hardest level rarely solved
unguided but often with a prefix), and this is how that regime is measured: greedy decoding of
held-out problems in the `plain` prompt format, with vLLM (the engine the actors use) or
transformers (no vLLM needed), scored by the task's strict final-answer reader.

vLLM runs in-process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`) with a small CPU KV cache unless the
caller's environment already says otherwise; these are set just before vLLM is imported.

Held-out accuracy without sampling noise: `expert_solution_probability`. The task's solutions
are deterministic (one right way to write each), so almost every correct sample at temperature
1 is the expert solution verbatim, and the probability that the policy writes it, then stops,

    P_i = prod_t p(y_t | prompt_i, y_<t),   y = expert solution tokens + EOS

is computed exactly with one teacher-forced forward pass per problem. Its mean over problems
is a lower bound on pass@1 at temperature 1 with no sampling noise at all, so two models are
compared on it with only the problems' spread as noise (`PairedGain.of`). Checked on this
machine against sampling (300 held-out problems x 4 samples, vLLM, temperature 1): the warm
start wrote the expert solution verbatim in 55.5% of samples (P mean 55.8%) and answered
correctly in 58.3%; a policy after 20 RL steps 57.8% (P 57.0%) and 60.8%.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lppo.demo import task
from lppo.demo.warmstart import PLAIN_TEMPLATE

STOP = ["\nQuestion:"]


@dataclass(frozen=True)
class LevelScore:
    """Correct answers out of `n` for one level."""

    level: int
    correct: int
    n: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0


def prompts_for(problems: list[task.Problem], prefix_ratio: float = 0.0,
                template: str = PLAIN_TEMPLATE) -> tuple[list[str], list[str]]:
    """(prompts, prefixes): the prompt of each problem with its expert prefix appended."""
    prefixes = [task.solution_prefix(p.solution, prefix_ratio) if prefix_ratio else ""
                for p in problems]
    prompts = [template.format(problem=p.problem) + pre
               for p, pre in zip(problems, prefixes, strict=True)]
    return prompts, prefixes


def score(problems: list[task.Problem], completions: list[str]) -> dict[int, LevelScore]:
    """Per-level exact final-answer accuracy of `completions` (prefix included)."""
    right: dict[int, int] = defaultdict(int)
    total: dict[int, int] = defaultdict(int)
    for p, text in zip(problems, completions, strict=True):
        total[p.level] += 1
        right[p.level] += int(task.final_answer(text) == p.answer)
    return {lv: LevelScore(lv, right[lv], total[lv]) for lv in sorted(total)}


def generate_vllm(model_dir: Path, prompts: list[str], max_tokens: int = 160,
                  max_model_len: int = 512, seed: int = 0) -> list[str]:
    """Greedy completions of `prompts` with an in-process vLLM engine on `model_dir`."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from vllm import LLM, SamplingParams

    llm = LLM(model=str(model_dir), dtype="float32", enforce_eager=True,
              max_model_len=max_model_len, seed=seed)
    try:
        params = SamplingParams(temperature=0.0, max_tokens=max_tokens, stop=STOP)
        outs = llm.generate(prompts, params, use_tqdm=False)
        return [o.outputs[0].text for o in outs]
    finally:
        del llm


def generate_transformers(model_dir: Path, prompts: list[str], max_tokens: int = 160,
                          batch_size: int = 64) -> list[str]:
    """Greedy completions of `prompts` with transformers `generate` (left-padded batches)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    out: list[str] = []
    for i in range(0, len(prompts), batch_size):
        enc = tok(prompts[i:i + batch_size], return_tensors="pt", padding=True,
                  add_special_tokens=False)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        texts = tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        out.extend(t.split(STOP[0])[0] for t in texts)
    return out


def accuracy_by_level(model_dir: Path, problems: list[task.Problem],
                      ratios: tuple[float, ...] = (0.0, 0.5), engine: str = "vllm",
                      max_tokens: int = 160) -> dict[float, dict[int, LevelScore]]:
    """{prefix ratio: {level: score}} of greedy decoding, one engine load for all ratios."""
    batches = {r: prompts_for(problems, r) for r in ratios}
    flat = [p for prompts, _ in batches.values() for p in prompts]
    if engine == "vllm":
        texts = generate_vllm(model_dir, flat, max_tokens=max_tokens)
    elif engine == "transformers":
        texts = generate_transformers(model_dir, flat, max_tokens=max_tokens)
    else:
        raise ValueError(f"engine: expected 'vllm' or 'transformers', got {engine!r}")
    result, at = {}, 0
    for r, (prompts, prefixes) in batches.items():
        chunk = texts[at:at + len(prompts)]
        at += len(prompts)
        result[r] = score(problems, [pre + t for pre, t in zip(prefixes, chunk, strict=True)])
    return result


def format_table(result: dict[float, dict[int, LevelScore]]) -> str:
    """A plain-text table: one row per level, one column per prefix ratio."""
    ratios = sorted(result)
    levels = sorted({lv for scores in result.values() for lv in scores})
    head = "level | " + " | ".join(f"prefix {r:.0%}" for r in ratios)
    rows = [head, "-" * len(head)]
    for lv in levels:
        cells = [f"{result[r][lv].correct}/{result[r][lv].n} ({result[r][lv].accuracy:.0%})"
                 for r in ratios]
        rows.append(f"{lv:>5} | " + " | ".join(cells))
    return "\n".join(rows)


def expert_solution_probability(model_dir: Path, problems: list[task.Problem],
                                weights: Sequence[Path | None] = (None,)) -> list[list[float]]:
    """P(the model writes problem i's expert solution verbatim, then EOS), per problem, for
    each entry of `weights` (`expert_solution_logprobs`, exponentiated)."""
    return [[math.exp(x) for x in row]
            for row in expert_solution_logprobs(model_dir, problems, weights)]


def expert_solution_logprobs(model_dir: Path, problems: list[task.Problem],
                             weights: Sequence[Path | None] = (None,), batch_size: int = 100,
                             template: str = PLAIN_TEMPLATE,
                             part: float | None = None) -> list[list[float]]:
    """log P(expert solution tokens + EOS | prompt) per problem, teacher-forced, once for each
    entry of `weights`: None for the weights in `model_dir`, else a `weights/vN` folder or its
    `model.safetensors`, as the learner publishes them. The model and the examples are loaded
    once for all of them. With `part`, only the solution's first whole lines up to that share
    (`task.solution_prefix`, no EOS): e.g. 0.5, the hard half of a level-3 solution.

    `model_dir` holds the config and tokenizer. Prompt and solution are encoded separately, as
    the actor sees them (prompt ids, then generated ids) and as the warm start trained them.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lppo.core.weightfiles import FILENAME, LM_HEAD_KEY, load_state
    from lppo.demo.warmstart import encode_example, padded

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    own = {name: t.clone() for name, t in model.state_dict().items()}
    examples = [encode_example(tok, template.format(problem=p.problem), p.solution)
                for p in problems]
    if part is not None:  # the head of each solution only: its tokens, without the EOS
        examples = [_head(tok, ids, labels, task.solution_prefix(p.solution, part))
                    for (ids, labels), p in zip(examples, problems, strict=True)]
    batches = [padded(chunk, tok.eos_token_id) for chunk in _chunks(examples, batch_size)]
    out: list[list[float]] = []
    for w in weights:
        state = own if w is None else load_state(Path(w) / FILENAME if Path(w).is_dir() else w)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {LM_HEAD_KEY}:
            raise ValueError(f"weights {w}: do not fit {model_dir} (missing {missing}, "
                             f"unexpected {unexpected})")
        row: list[float] = []
        with torch.no_grad():
            for ids, labels, mask in batches:
                logp = model(input_ids=ids, attention_mask=mask).logits[:, :-1].log_softmax(-1)
                target = labels[:, 1:]
                taken = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
                row.extend((taken * (target != -100)).sum(dim=1).tolist())
        out.append(row)
    return out


def _chunks(items: list, size: int) -> list[list]:
    return [items[at:at + size] for at in range(0, len(items), size)]


def _head(tok, ids: list[int], labels: list[int], head: str) -> tuple[list[int], list[int]]:
    """An `encode_example` pair cut to the prompt and the tokens of `head` (a solution's first
    lines): the solution is tokenized on its own, so its first tokens are `head`'s when `head`
    ends a line (newlines are tokens of their own in the demo's tokenizer)."""
    n = len(tok(head, add_special_tokens=False)["input_ids"])
    prompt = sum(1 for x in labels if x == -100)
    if ids[prompt:prompt + n] != tok(head, add_special_tokens=False)["input_ids"]:
        raise ValueError(f"the solution's first tokens are not those of {head!r}")
    return ids[:prompt + n], labels[:prompt + n]
