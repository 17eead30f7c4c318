"""Pure parts of the actor: outbox bookkeeping, backoff, prompt building, weight files."""

from __future__ import annotations

import pytest

from actor.engine import normalize_finish_reason
from actor.outbox import Outbox, backoff_delay
from actor.prompts import PromptBuilder, PromptError
from lppo.core.config import DataConfig
from lppo.core.weightfiles import WeightsError, prune_weights, verified_path, write_weights
from lppo.core.wire import Array, WorkItem


def test_outbox_sends_once_resends_after_timeout_and_forgets_acked():
    box: Outbox[str] = Outbox(capacity=10, resend_after=5.0)
    box.add("a", "A")
    box.add("b", "B")
    assert [k for k, _ in box.due(now=0.0)] == ["a", "b"]
    box.mark_sent("a", 0.0)
    box.mark_sent("b", 0.0)
    assert box.due(now=4.9) == []
    assert box.ack(["a", "zzz"]) == 1
    assert [k for k, _ in box.due(now=5.0)] == ["b"]
    box.mark_sent("b", 5.0)
    assert (box.sent, box.resent, box.acked, len(box)) == (2, 1, 1, 1)


def test_outbox_new_epoch_resends_everything_at_once():
    box: Outbox[int] = Outbox(capacity=10, resend_after=100.0)
    for i in range(3):
        box.add(str(i), i)
        box.mark_sent(str(i), 0.0)
    assert box.due(now=1.0) == []
    box.mark_all_unsent()
    assert [v for _, v in box.due(now=1.0)] == [0, 1, 2]


def test_outbox_is_bounded_dropping_oldest():
    box: Outbox[int] = Outbox(capacity=2, resend_after=1.0)
    assert box.add("a", 1) == [] and box.add("b", 2) == []
    assert box.add("c", 3) == ["a"]
    assert "a" not in box and len(box) == 2 and box.dropped == 1
    with pytest.raises(ValueError):
        Outbox(capacity=0, resend_after=1.0)


def test_backoff_doubles_and_caps():
    assert [backoff_delay(i, base=0.5, cap=3.0) for i in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize(("raw", "norm"), [("stop", "stop"), ("length", "length"),
                                           ("abort", "abort"), (None, "abort"), ("eos", "stop")])
def test_finish_reasons(raw, norm):
    assert normalize_finish_reason(raw) == norm


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def _item(**kw) -> WorkItem:
    base = dict(attempt_id="a", sample_id=1, prompt="What is 2 + 3?", n=2, answer="5")
    base.update(kw)
    return WorkItem(**base)


def test_plain_prompt_then_prefix_tokens_unchanged(tokenizer):
    builder = PromptBuilder(tokenizer, DataConfig(prompt_format="plain"), max_model_len=256)
    prefix = tokenizer.encode("2 + 3 = 5.\n", add_special_tokens=False)
    prompt, got_prefix = builder.context(_item(prefix_ids=Array.of(prefix, "int32")))
    assert tokenizer.decode(prompt) == "Question: What is 2 + 3?\nAnswer: "
    assert got_prefix == prefix


def test_chat_prompt_opens_assistant_turn(tokenizer):
    data = DataConfig(prompt_format="chat", system_prompt="Be brief.")
    prompt = PromptBuilder(tokenizer, data, max_model_len=256).prompt_ids("What is 1 + 1?")
    text = tokenizer.decode(prompt)
    assert "Be brief." in text and "What is 1 + 1?" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_prompt_ids_given_by_learner_are_used_as_is(tokenizer):
    builder = PromptBuilder(tokenizer, DataConfig(prompt_format="plain"), max_model_len=256)
    prompt, prefix = builder.context(_item(prompt=None, prompt_ids=Array.of([5, 6, 7], "int32")))
    assert prompt == [5, 6, 7] and prefix == []


def test_prompt_errors_name_the_limit(tokenizer):
    builder = PromptBuilder(tokenizer, DataConfig(prompt_format="plain", max_prompt_tokens=16),
                            max_model_len=40)
    with pytest.raises(PromptError, match="max_prompt_tokens=16"):
        builder.context(_item(prompt="What is " + "1 + " * 30 + "1?"))
    with pytest.raises(PromptError, match="max_model_len=40"):
        builder.context(_item(prefix_ids=Array.of([5] * 40, "int32")))
    with pytest.raises(PromptError, match="empty problem"):
        builder.context(_item(prompt="  "))


def test_weight_files_are_atomic_verified_and_carry_lm_head(tmp_path):
    import torch

    emb = torch.randn(10, 4)
    state = {"model.embed_tokens.weight": emb, "model.norm.weight": torch.ones(4)}
    notice = write_weights(state, tmp_path, 3)
    path = verified_path(notice)
    assert path == tmp_path / "weights" / "v3" / "model.safetensors"
    assert not (tmp_path / "weights" / "v3.tmp").exists()
    from safetensors.torch import load_file

    loaded = load_file(str(path))
    assert torch.equal(loaded["lm_head.weight"], emb)  # tied: written explicitly
    path.write_bytes(path.read_bytes()[:-10] + b"0" * 10)
    with pytest.raises(WeightsError, match="sha256"):
        verified_path(notice)
    path.unlink()
    with pytest.raises(WeightsError, match="does not exist"):
        verified_path(notice)


def test_prune_keeps_recent_versions(tmp_path):
    import torch

    for v in range(4):
        write_weights({"w": torch.zeros(2)}, tmp_path, v)
    prune_weights(tmp_path, keep_from=2)
    assert sorted(p.name for p in (tmp_path / "weights").iterdir()) == ["v2", "v3"]


def test_prune_keeps_every_nth_version_when_asked(tmp_path):
    import torch

    for v in range(7):
        write_weights({"w": torch.zeros(2)}, tmp_path, v)
    prune_weights(tmp_path, keep_from=5, keep_every=2)
    assert sorted(p.name for p in (tmp_path / "weights").iterdir()) == ["v0", "v2", "v4", "v5", "v6"]


def test_the_reload_warning_for_computed_rotary_tables_is_dropped_and_no_other():
    import logging

    from actor.weights import RELOAD_LOGGER, quiet_computed_buffers

    logger = logging.getLogger(RELOAD_LOGGER)
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    try:
        quiet_computed_buffers()
        quiet_computed_buffers()  # once per process, however often a reload runs
        logger.warning("%s: Failed to load weights", "RotaryEmbedding")
        logger.warning("%s: Failed to load weights", "Llama3RotaryEmbedding")
        logger.warning("%s: Failed to load weights", "QKVParallelLinear")
    finally:
        logger.removeHandler(handler)
    assert seen == ["QKVParallelLinear: Failed to load weights"]
    assert len(logger.filters) == 1
