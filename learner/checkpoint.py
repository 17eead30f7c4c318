"""Checkpoints: everything `--resume` needs to continue a run exactly.

    <run_dir>/checkpoints/step_N/
        model/              save_pretrained (safetensors) + tokenizer files
        trainer.pt          optimizer and LR-schedule state (torch.save, weights_only load)
        state.json          step, policy version, RNG states, scheduler state (per-sample
                            statistics, staleness counters with the groups trained, attempt
                            ids already seen, the selection policy's state); a resume
                            publishes its weights anew

Written into `step_N.tmp/` and renamed, so a checkpoint directory is complete or absent; the
newest complete one is what `latest()` returns. Older ones beyond `keep` are deleted.

RNG: Python's `random`, NumPy's global generator and torch's CPU (and CUDA) generators are
saved and restored, so sampling decisions after a resume follow the same sequence.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "state.json"


def checkpoint_root(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def step_of(path: Path) -> int:
    """The step of a checkpoint directory (`step_N`)."""
    return int(path.name.removeprefix("step_"))


def latest(run_dir: Path) -> Path | None:
    """The newest complete checkpoint directory, or None."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return None
    done = [p for p in root.glob("step_*") if p.is_dir() and not p.name.endswith(".tmp")
            and (p / STATE_FILE).is_file() and p.name[5:].isdigit()]
    return max(done, key=lambda p: int(p.name[5:]), default=None)


def rng_state() -> dict[str, Any]:
    state = {
        "python": list(random.getstate()[1]) + [random.getstate()[2]],
        "python_version": random.getstate()[0],
        "numpy": _np_state(),
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((state["python_version"], tuple(py[:-1]), py[-1]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def _np_state() -> list:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)]


def staging(run_dir: Path, step: int) -> Path:
    """The folder checkpoint `step` is written into before `save` renames it (every learner
    rank writes its optimizer shards there)."""
    return checkpoint_root(run_dir) / f"step_{step}.tmp"


def begin(run_dir: Path, step: int) -> Path:
    """An empty staging folder for checkpoint `step` (rank 0, before the ranks write)."""
    tmp = staging(run_dir, step)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def save(run_dir: Path, step: int, model, weights: dict, tokenizer, trainer_state: dict | None,
         state: dict, keep: int) -> Path:
    """Finish checkpoint `step` atomically (rename of its staging folder) and prune old ones;
    returns its directory.

    `weights`: the model's whole fp32 state dict (`Trainer.full_state`, gathered from every
    rank), saved under `model`'s config as a transformers folder. `trainer_state`: the whole
    optimizer state (`trainer.pt`, one rank), or None where the ranks wrote it sharded into
    `optimizer/` (`Trainer.save_sharded`) after `begin`."""
    root = checkpoint_root(run_dir)
    final = root / f"step_{step}"
    tmp = staging(run_dir, step)
    if trainer_state is not None:
        begin(run_dir, step)
    model.save_pretrained(tmp / "model", state_dict=weights, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp / "model")
    if trainer_state is not None:
        torch.save(trainer_state, tmp / "trainer.pt")
    (tmp / STATE_FILE).write_text(json.dumps({**state, "step": step, "rng": rng_state()}))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    _prune(root, keep)
    return final


def load(path: Path) -> tuple[dict | None, dict]:
    """(trainer_state, state) of a checkpoint directory; RNG is restored by the caller.
    `trainer_state` is None for a sharded checkpoint (`is_sharded`)."""
    state = json.loads((path / STATE_FILE).read_text())
    if is_sharded(path):
        return None, state
    trainer_state = torch.load(path / "trainer.pt", map_location="cpu", weights_only=True)
    return trainer_state, state


def is_sharded(path: Path) -> bool:
    """The optimizer state was saved by every rank with torch.distributed.checkpoint."""
    return (path / "optimizer").is_dir()


def _prune(root: Path, keep: int) -> None:
    done = sorted((p for p in root.glob("step_*") if p.name[5:].isdigit()),
                  key=lambda p: int(p.name[5:]))
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
