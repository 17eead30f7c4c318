"""learner/grouped.py: the shared-prefix forward gives the plain forward's log-probs and every
parameter's gradient, on a tiny Qwen2 and a tiny Llama built here, through the whole trainer
step (PPO loss, KL reference, prefix terms, truncated IS), with guided, unguided and mixed
groups, uneven completion lengths, padding, and a unit split across micro-batches."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from learner.algo.logprobs import token_logprobs_and_entropy
from learner.batch import TrainSequence, collate
from learner.grouped import pack_units, shared_logprobs, unsupported
from learner.trainer import Trainer
from lppo.core.config import Config

VOCAB = 97


def _build(kind: str, out) -> str:
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config, cls = {"qwen2": (Qwen2Config, Qwen2ForCausalLM),
                   "llama": (LlamaConfig, LlamaForCausalLM)}[kind]
    model = cls(config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=256, tie_word_embeddings=kind == "qwen2",
                       pad_token_id=0))
    model.save_pretrained(out)
    return str(out)


def _groups(seed: int = 0) -> list[TrainSequence]:
    """A guided group (one row carries the prefix terms), an unguided one, and a mixed one
    (two rows guided, two not: two contexts in one group); completions of uneven lengths."""
    rng = np.random.default_rng(seed)

    def row(prompt, prefix, length, group, carrier=False):
        return TrainSequence(prompt, prefix, rng.integers(1, VOCAB, length),
                             rng.normal(-2.0, 0.3, length), float(rng.normal()), group,
                             prefix_advantage=0.7 if carrier else 0.0, prefix_loss=carrier,
                             sft_weight=0.1 if carrier else 0.0)

    p0, p1, p2 = (rng.integers(1, VOCAB, n) for n in (9, 5, 7))
    prefix0, prefix2 = rng.integers(1, VOCAB, 12), rng.integers(1, VOCAB, 4)
    guided = [row(p0, prefix0, n, 0, carrier=i == 0) for i, n in enumerate((6, 14, 3, 9))]
    plain = [row(p1, [], n, 1) for n in (4, 10, 7, 1)]
    mixed = ([row(p2, prefix2, n, 2, carrier=i == 0) for i, n in enumerate((5, 8))]
             + [row(p2, [], n, 2) for n in (11, 2)])
    return guided + plain + mixed


def test_units_keep_shared_contexts_together_and_split_by_budget():
    seqs = _groups()
    units = pack_units(seqs, token_budget=10_000)
    assert sorted(len(u) for u in units) == [2, 2, 4, 4]  # the mixed group: two contexts
    assert sorted(id(s) for u in units for s in u) == sorted(id(s) for s in seqs)
    for unit in units:
        assert len({(s.group, s.prompt_ids.tobytes(), s.prefix_ids.tobytes())
                    for s in unit}) == 1
        collate(unit, 0, shared=True)  # accepted: one context
    small = pack_units(seqs, token_budget=40)  # guided unit: 21 + k x 14 > 40 for k >= 2
    for unit in small:
        context = len(unit[0].prompt_ids) + len(unit[0].prefix_ids)
        assert len(unit) == 1 or context + len(unit) * len(unit[0].completion_ids) <= 40
    assert len(small) > len(units)
    with pytest.raises(ValueError, match="do not share prompt and prefix"):
        collate(seqs[:5], 0, shared=True)


@pytest.mark.parametrize("kind", ["qwen2", "llama"])
def test_log_probs_and_entropy_match_the_plain_forward(kind, tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(_build(kind, tmp_path / kind),
                                                 dtype=torch.float32)
    for unit in pack_units(_groups(), 10_000):
        mb = collate(unit, 0, shared=True)
        t = {k: torch.as_tensor(getattr(mb, k)) for k in ("input_ids", "attention_mask",
                                                          "targets")}
        logits = model(input_ids=t["input_ids"], attention_mask=t["attention_mask"]).logits
        plain_lp, plain_ent = token_logprobs_and_entropy(logits[:, :-1], t["targets"])
        lp, ent = shared_logprobs(model, t, mb.context_len, mb.prompt_len,
                                  contextlib.nullcontext)
        read = torch.as_tensor(mb.loss_mask + mb.prefix_mask) > 0
        read[:, mb.prompt_len - 1: mb.context_len - 1] = True  # every row's prefix targets
        assert lp.shape == plain_lp.shape
        assert (lp - plain_lp)[read].abs().max() < 1e-5
        assert (ent - plain_ent)[read].abs().max() < 1e-5


def _trainer(model: str, shared: bool, **learner) -> Trainer:
    torch.manual_seed(0)
    return Trainer(Config.model_validate({
        "model": {"path": model, "dtype": "float32", "max_model_len": 256},
        "data": {"max_prompt_tokens": 64}, "actor": {"sampling": {"max_tokens": 24}},
        "learner": {"lr": 1e-3, "device": "cpu", "max_steps": 10, "grad_clip": 1e9,
                    "shared_prefix": shared, **learner},
        "lppo": {"pg": {"off_policy_loss": True, "sft_coef": 0.1}},
    }))


@pytest.mark.parametrize("kind", ["qwen2", "llama"])
@pytest.mark.parametrize("budget", [16_384, 40])
def test_a_trainer_step_has_the_plain_gradients(kind, budget, tmp_path):
    """Loss and every parameter's gradient of one step, shared vs plain: PPO loss with the
    KL reference, truncated IS and both prefix terms; budget 40 splits units into chunks."""
    path = _build(kind, tmp_path / kind)
    settings = {"micro_batch_tokens": budget, "kl_coef": 0.05, "tis_cap": 2.0}
    plain, shared = _trainer(path, False, **settings), _trainer(path, True, **settings)
    assert shared.shared_prefix and not plain.shared_prefix
    a, b = plain.step(_groups()), shared.step(_groups())
    assert b.loss == pytest.approx(a.loss, rel=1e-5, abs=1e-7)
    assert b.tokens == a.tokens
    worst = max(float((p.grad - q.grad).abs().max())
                for p, q in zip(plain.model.parameters(), shared.model.parameters(), strict=True))
    scale = max(float(p.grad.abs().max()) for p in plain.model.parameters())
    assert worst < 1e-5 * max(1.0, scale), f"largest gradient difference {worst:g}"


def test_gradient_checkpointing_falls_back_to_the_plain_forward(tmp_path, caplog):
    path = _build("qwen2", tmp_path / "qwen2")
    with caplog.at_level("INFO", logger="learner.trainer"):
        trainer = _trainer(path, True, gradient_checkpointing=True)
    assert not trainer.shared_prefix
    assert unsupported(trainer.model).startswith("gradient checkpointing is on")
    assert "learner.shared_prefix: off, the plain forward instead: gradient checkpointing" \
        in caplog.text
