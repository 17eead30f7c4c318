"""The embedded demo's ingredients: a synthetic arithmetic task, a tiny Qwen2 model with a
locally trained tokenizer, its cached supervised warm start, and accuracy measurements.

Why a package of its own: the demo command, the end-to-end test and unit tests all need the
same task and model. Submodules import torch/transformers/tokenizers/vLLM only inside
functions, so `import lppo.demo.*` stays light.

- `lppo.demo.task`: problems, expert solutions, disjoint splits, JSONL files (pure Python).
- `lppo.demo.tiny`: tokenizer and random-init model folder (`build_tiny_model`).
- `lppo.demo.warmstart`: the SFT warm start, cached by recipe hash (`warm_start`).
- `lppo.demo.measure`: greedy accuracy per level, unguided and with a solution prefix.
"""
