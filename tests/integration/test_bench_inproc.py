"""The ablation bench's in-process run (bench/inproc.py) on a random tiny model: the learner's
scheduler, assembly and trainer with the transformers engine and the math-verify pool, its
groups and steps in a real ledger, and the engine reloaded with every new version."""

from __future__ import annotations

import random

import torch

from actor.hf_engine import HFEngine
from actor.reward import RewardPool
from bench.inproc import InProcessRun
from lppo.core.config import Config
from lppo.demo import task
from store.ledger import Ledger
from store.queries import LedgerReader


def _config(model, tmp_path) -> Config:
    rng = random.Random(3)
    task.write_jsonl([task.make_problem(3, rng) for _ in range(3)], tmp_path / "train.jsonl")
    return Config.model_validate({
        "run": {"name": "inproc", "output_dir": str(tmp_path / "runs")},
        "model": {"path": str(model), "dtype": "float32", "max_model_len": 256},
        "data": {"prompt_format": "plain", "max_prompt_tokens": 64, "train": [
            {"name": "arith", "path": str(tmp_path / "train.jsonl"), "format": "generic",
             "id_field": "id"}]},
        "actor": {"engine": "transformers", "slots": 8,
                  "sampling": {"temperature": 1.0, "max_tokens": 16},
                  "reward": {"workers": 1, "timeout_s": 5.0}},
        "learner": {"max_steps": 3, "batch_groups": 2, "group_size": 4, "max_staleness": 0,
                    "lr": 1e-3, "device": "cpu"},
        # a random model never passes: keep every group (no curation) so batches fill
        "lppo": {"curation": {"enabled": False}, "pg": {"off_policy_loss": True}},
    })


def test_in_process_run_trains_records_and_reloads(tiny_model, tmp_path):
    cfg = _config(tiny_model, tmp_path)
    torch.manual_seed(0)
    engine = HFEngine(cfg)
    with RewardPool(cfg.actor.reward) as pool, \
            Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger, \
            InProcessRun(cfg, engine, pool, ledger) as run:
        stats = run.train(keep_every=2)
        trained = {k: v.clone() for k, v in run.trainer.model.state_dict().items()}
    assert stats.steps == 3 and stats.kept == [2, 3] and stats.stopped == ""
    assert (cfg.run.run_dir / "weights" / "v2").is_dir()
    assert not (cfg.run.run_dir / "weights" / "v1").exists()       # not kept: pruned
    served = engine.model.state_dict()                            # the engine runs v3
    assert all(torch.equal(served[k], trained[k]) for k in trained)
    with LedgerReader(f"sqlite:///{tmp_path / 'ledger.db'}") as reader:
        steps = reader.steps("inproc")
        terms = reader.sql("SELECT prefix_len > 0, prefix_term, prefix_advantage FROM "
                           "rollout_groups WHERE used_in_step IS NOT NULL").rows
    assert [s["step"] for s in steps] == [1, 2, 3]
    assert "batch/lp_weight_std" in steps[0]["metrics"]
    # failed samples come back guided; their prefix is taught, against an unguided rate of 0
    guided = [(t, a) for g, t, a in terms if g]
    assert guided and all(t == "off_policy" and a == 1.0 for t, a in guided)
    assert all(t is None for g, t, _ in terms if not g)
