"""Files for tests that run the real learner and actors: a small task, a tiny model, a config."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from lppo.core.config import Config, save_config
from lppo.demo import task
from lppo.testing.postgres import free_ports
from store.db import LedgerError
from store.queries import LedgerReader


def write_task(root: Path, train: dict[int, int], held_out: dict[int, int]) -> dict[str, Path]:
    return task.write_split(root / "data", seed=0, train=train, held_out=held_out)


def ledger_steps(run_dir: Path) -> list[int]:
    """The steps recorded in the run's SQLite ledger so far ([] before the learner made it)."""
    if not (run_dir / "ledger.db").exists():
        return []
    try:
        reader = LedgerReader(str(run_dir))
    except LedgerError:  # created by the learner, schema not written yet
        return []
    with reader:
        return [r[0] for r in reader.sql("SELECT step FROM train_steps ORDER BY step").rows]


def small_run_config(root: Path, model_dir: Path, train_path: Path, **sections) -> Path:
    """A config for a few quick steps on CPU, on free ports; `sections` override by section."""
    work, rollouts, weights, sync = free_ports(4)
    raw = {
        "run": {"name": "it", "output_dir": str(root / "runs")},
        "model": {"path": str(model_dir), "dtype": "float32", "max_model_len": 384},
        "data": {"prompt_format": "plain", "max_prompt_tokens": 96,
                 "train": [{"name": "arith", "path": str(train_path), "format": "generic",
                            "id_field": "id"}]},
        "actor": {"slots": 8, "sampling": {"max_tokens": 32}, "reward": {"workers": 1}},
        "learner": {"max_steps": 4, "batch_groups": 4, "group_size": 4, "lr": 1e-4,
                    "checkpoint_every": 2, "device": "cpu"},
        "lppo": {"curation": {"drop_all_wrong": False}},
        "transport": {"work_port": work, "rollout_port": rollouts, "weights_port": weights,
                      "sync_port": sync,
                      "heartbeat_s": 0.5, "peer_timeout_s": 5.0},
    }
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values}
    cfg = Config.model_validate(raw)
    return save_config(cfg, root / "config.toml")


def wait_for(cond, proc: subprocess.Popen, timeout: float, what: str) -> None:
    """Poll `cond` until true; fail if `proc` (an `lppo run`) exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, f"lppo run exited early ({proc.returncode}) waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)
