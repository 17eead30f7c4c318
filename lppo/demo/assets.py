"""Everything the embedded demo needs on disk, in one call: `prepare_demo(cache_root)`.

Why: `lppo demo` and the end-to-end test both need the warm-started tiny model and the task's
train / held-out files, built once and reused. This module puts them under one cache folder:

    cache_root/tiny-qwen2-<recipe hash>/     the warm-started model (lppo.demo.warmstart)
    cache_root/arith-<task hash>/            train.jsonl, trusted.jsonl (the subset the demo
                                             trains on), eval.jsonl (lppo.demo.task)
    cache_root/tiny-qwen2 -> tiny-qwen2-<h>  stable names (symlinks), so a config can say
    cache_root/arith -> arith-<h>            `model.path = "runs/_cache/tiny-qwen2"`

The hashed folders are never modified once written; the stable names are swapped atomically
to the current recipe's folders.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from lppo.demo import task
from lppo.demo.warmstart import CODE_VERSION, DemoRecipe, warm_start

MODEL_ALIAS = "tiny-qwen2"
DATA_ALIAS = "arith"


@dataclass(frozen=True)
class DemoAssets:
    """Paths of the demo's model and data (the stable names, resolved through the symlinks)."""

    model_dir: Path
    """The warm-started model folder (`model.path`)."""
    train: Path
    """The RL training problems, generic JSONL (`format="generic"`, `id_field="id"`)."""
    trusted: Path
    """The trusted set (`DemoRecipe.trusted`, a subset of `train`): what the demo trains on
    (`data.train`)."""
    eval: Path
    """Held-out problems, same format (`data.eval`)."""
    recipe_key: str
    """Hash of the recipe the model was built from."""


def data_key(recipe: DemoRecipe) -> str:
    """Hash of what determines the task files (seed and counts, not the model or SFT)."""
    blob = json.dumps({"code": CODE_VERSION, "seed": recipe.task_seed, "held_out":
                       recipe.held_out, "train": recipe.rl_train, "sft": recipe.sft_pool,
                       "trusted": recipe.trusted})
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def write_data(cache_root: Path, recipe: DemoRecipe) -> Path:
    """Write (once) `arith-<hash>/train.jsonl` and `eval.jsonl` for `recipe`; returns the folder."""
    folder = Path(cache_root) / f"{DATA_ALIAS}-{data_key(recipe)}"
    if all((folder / f"{name}.jsonl").is_file() for name in ("train", "eval", "trusted")):
        return folder
    held_out, train, _ = recipe.problem_sets()
    task.write_jsonl(held_out, folder / "eval.jsonl")
    task.write_jsonl(train, folder / "train.jsonl")
    task.write_jsonl(recipe.trusted_set(), folder / "trusted.jsonl")
    return folder


def link(alias: Path, target: Path) -> Path:
    """Point the symlink `alias` at `target` (a sibling folder), replacing it atomically."""
    if alias.exists() and not alias.is_symlink():
        raise FileExistsError(f"{alias} exists and is not a symlink; move it away")
    tmp = alias.with_name(f".{alias.name}.link-{os.getpid()}")
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(target.name, tmp)
    os.replace(tmp, alias)
    return alias


def prepare_demo(cache_root: Path, recipe: DemoRecipe = DemoRecipe()) -> DemoAssets:
    """Build what is missing (warm start: minutes the first time; data: a second) and return
    the stable paths. A second call with the same recipe only checks files."""
    cache_root = Path(cache_root)
    model = warm_start(cache_root, recipe)
    data = write_data(cache_root, recipe)
    model_alias = link(cache_root / MODEL_ALIAS, model)
    data_alias = link(cache_root / DATA_ALIAS, data)
    return DemoAssets(model_alias, data_alias / "train.jsonl", data_alias / "trusted.jsonl",
                      data_alias / "eval.jsonl", recipe.key())
