"""The shipped GPU configs: their data files exist and read, their eval sets resolve by name for
`lppo eval`, and they hold the starting values they advertise (parsing itself is checked for
every config in test_config.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from actor.eval_targets import HUB_NAME, resolve_benchmarks
from lppo.core.config import load_config
from store.datasets import read_dataset

ROOT = Path(__file__).resolve().parents[2]
GPU_CONFIGS = {
    "gsm8k-qwen2.5-1.5b.toml": (["gsm8k_train"], ["gsm8k"]),
    "math-qwen2.5-math-7b.toml": (["math_train"], ["math500", "aime24", "aime25", "amc23"]),
}


@pytest.mark.parametrize("name", sorted(GPU_CONFIGS))
def test_gpu_config_data_and_starting_values(name, monkeypatch):
    monkeypatch.chdir(ROOT)  # data paths are relative to the repository root
    cfg = load_config(ROOT / "configs" / name)
    train, evals = GPU_CONFIGS[name]
    assert [s.name for s in cfg.data.train] == train
    assert [s.name for s in resolve_benchmarks([], cfg.data)] == evals
    for spec in [*cfg.data.train, *cfg.data.eval]:
        assert read_dataset(spec), spec.name
    assert HUB_NAME.match(cfg.model.path) and not Path(cfg.model.path).exists()
    assert cfg.learner.device == "cuda" and cfg.actor.engine == "vllm"
    assert cfg.data.prompt_format == "chat" and "boxed" in (cfg.data.system_prompt or "")
    assert cfg.actor.sampling.temperature == 1.0 and cfg.learner.group_size == 8
    assert cfg.learner.lr == 1e-6 and cfg.learner.kl_coef == 0.0
    assert cfg.learner.clip_high > cfg.learner.clip_low  # clip-higher
    assert 1 <= cfg.learner.max_staleness <= 2
    assert cfg.learner.eval_every > 0 and cfg.learner.checkpoint_every > 0
