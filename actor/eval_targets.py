"""What an evaluation runs on: the model (from a checkpoint path) and the benchmarks (by name).

Both are resolved before anything heavy is imported, so a typo in `lppo eval` costs a second
and one clear `UserError`, not an engine start and a traceback.

Model (`resolve_model`), in order:

    <run>/checkpoints/step_N/           a learner checkpoint: weights in `model/`, step from
                                        `state.json` (the step the checkpoint belongs to)
    <run>/checkpoints/step_N/model/     the same checkpoint, named by its model folder
    <run>/ or <run>/checkpoints/        the newest complete checkpoint under it
    any folder with config.json         a plain model folder: step 0 unless given
    org/name                            a hub name (step 0 unless given); with HF_HUB_OFFLINE
                                        set it must already be in the local cache

A checkpoint's `model/` normally holds the tokenizer too; when it does not, the config's
tokenizer (`model.tokenizer`, else `model.path`) is used.

Benchmarks (`resolve_benchmarks`): a name is first looked up among the config's `data.eval`
entries (a run's own held-out sets, the demo's among them), then among the data sets shipped
under data/ (`lppo.core.resources.SHIPPED_DATA`; `gsm8k` means the GSM8K test split). Results are recorded
under the name asked for.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lppo.core.config.schema import DataConfig, DatasetSpec
from lppo.core.errors import UserError

STATE_FILE = "state.json"
"""The learner's checkpoint state (its `step` is the step the weights belong to)."""
MODEL_SUBDIR = "model"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
HUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")

BENCHMARK_ALIASES = {"gsm8k": "gsm8k_test"}
"""Benchmark names that mean a shipped data set of another name."""


class EvalTargetError(UserError):
    """A checkpoint, model or benchmark named for evaluation cannot be used."""


@dataclass(frozen=True)
class ModelRef:
    """A resolved model to evaluate."""

    path: str
    """Model folder or hub name handed to the engine."""
    step: int
    """Training step the weights belong to (recorded with the results)."""
    kind: str
    """`checkpoint`, `model` (a plain folder) or `hub`."""
    tokenizer: str | None = None
    """Tokenizer folder or hub name when the model folder has none (None: the model's own)."""
    checkpoint: Path | None = None
    """The checkpoint directory, for `checkpoint` models."""


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------


def resolve_model(target: str | Path, step: int | None = None,
                  fallback_tokenizer: str | None = None) -> ModelRef:
    """The model behind `target` (see the module docstring); `step` is required to match a
    checkpoint's own step and names the step of a plain folder or hub model."""
    if step is not None and step < 0:
        raise EvalTargetError(f"--step: expected a step >= 0, got {step}")
    path = Path(target).expanduser()
    if path.exists():
        if not path.is_dir():
            raise EvalTargetError(f"checkpoint {str(target)!r} is a file; expected a checkpoint "
                                  "directory (checkpoints/step_N), a model folder or a hub name")
        checkpoint = _checkpoint_dir(path)
        if checkpoint is not None:
            return _from_checkpoint(checkpoint, step, fallback_tokenizer)
        if (path / "config.json").is_file():
            return ModelRef(str(path), step or 0, "model",
                            tokenizer=None if _has_tokenizer(path) else fallback_tokenizer)
        raise EvalTargetError(
            f"checkpoint {str(target)!r}: the folder holds no checkpoint ({STATE_FILE}), no "
            "model (config.json) and no checkpoints/step_N"
        )
    text = str(target)
    if HUB_NAME.match(text) and ".." not in text:
        _check_hub_cache(text)
        return ModelRef(text, step or 0, "hub")
    raise EvalTargetError(f"checkpoint {text!r}: no such checkpoint directory or model folder")


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete `step_N` directory (one with state.json) directly under `root`."""
    if not root.is_dir():
        return None
    steps = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_")
             and p.name[5:].isdigit() and (p / STATE_FILE).is_file()]
    return max(steps, key=lambda p: int(p.name[5:]), default=None)


def _checkpoint_dir(path: Path) -> Path | None:
    """The checkpoint directory `path` names: itself, its parent (a `model/` folder), or the
    newest one under it or under its `checkpoints/` folder."""
    if (path / STATE_FILE).is_file():
        return path
    if path.name == MODEL_SUBDIR and (path.parent / STATE_FILE).is_file():
        return path.parent
    if (path / "config.json").is_file():
        return None
    return latest_checkpoint(path / "checkpoints") or latest_checkpoint(path)


def _from_checkpoint(checkpoint: Path, step: int | None,
                     fallback_tokenizer: str | None) -> ModelRef:
    model = checkpoint / MODEL_SUBDIR
    if not (model / "config.json").is_file():
        raise EvalTargetError(f"checkpoint {checkpoint}: no {MODEL_SUBDIR}/config.json "
                              "(incomplete checkpoint?)")
    own = checkpoint_step(checkpoint)
    if step is not None and step != own:
        raise EvalTargetError(f"--step {step}: checkpoint {checkpoint} belongs to step {own}")
    return ModelRef(str(model), own, "checkpoint",
                    tokenizer=None if _has_tokenizer(model) else fallback_tokenizer,
                    checkpoint=checkpoint)


def checkpoint_step(checkpoint: Path) -> int:
    """The step recorded in a checkpoint's state.json."""
    file = checkpoint / STATE_FILE
    try:
        state = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvalTargetError(f"{file}: cannot read the checkpoint state: {exc}") from None
    step = state.get("step") if isinstance(state, dict) else None
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise EvalTargetError(f"{file}: expected an integer 'step' >= 0, got {step!r}")
    return step


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def hub_offline() -> bool:
    """HF_HUB_OFFLINE is set: hub models must already be in the local cache."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def in_hub_cache(name: str) -> bool:
    """The hub model `name` is in the local Hugging Face cache (its config.json is)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name, "config.json"), str)


def _check_hub_cache(name: str) -> None:
    """With HF_HUB_OFFLINE set, a hub model must be in the local cache already."""
    if hub_offline() and not in_hub_cache(name):
        raise EvalTargetError(
            f"checkpoint {name!r}: not a local folder, and not in the Hugging Face cache "
            "(HF_HUB_OFFLINE is set, so it cannot be downloaded)"
        )


# --------------------------------------------------------------------------------------------
# benchmarks
# --------------------------------------------------------------------------------------------


def parse_names(text: str) -> list[str]:
    """`"math500, aime24,"` -> `["math500", "aime24"]`."""
    return [name.strip() for name in text.split(",") if name.strip()]


def resolve_benchmarks(names: Sequence[str], data: DataConfig,
                       limit: int | None = None) -> list[DatasetSpec]:
    """The data sets to evaluate, named as asked; no names: every `data.eval` entry.

    `limit` caps each at its first `limit` problems (in file order)."""
    from lppo.core.resources import SHIPPED_DATA as SHIPPED
    from store.datasets import shipped

    configured = {spec.name: spec for spec in data.eval}
    if not names:
        if not configured:
            raise EvalTargetError("no benchmarks: pass --benchmarks NAME[,NAME...] or list "
                                  "held-out sets in data.eval")
        names = list(configured)
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        raise EvalTargetError(f"benchmark {repeated[0]!r} is named more than once")
    specs = []
    for name in names:
        if name in configured:
            spec = configured[name]
        elif BENCHMARK_ALIASES.get(name, name) in SHIPPED:
            spec = shipped(BENCHMARK_ALIASES.get(name, name)).model_copy(update={"name": name})
        else:
            known = sorted({*configured, *BENCHMARK_ALIASES,
                            *(s for s in SHIPPED if s not in BENCHMARK_ALIASES.values())})
            raise EvalTargetError(f"unknown benchmark {name!r}: not in data.eval and not a "
                                  f"shipped data set; choose from {', '.join(known)}")
        if limit is not None:
            spec = spec.model_copy(update={"limit": min(limit, spec.limit or limit)})
        specs.append(spec)
    return specs
