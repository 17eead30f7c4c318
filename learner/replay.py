"""`lppo replay RUN_DIR --step N`: re-run one learner step from its rollout dump.

For debugging a divergence: the batch step N trained on (`learner/dump.py`) goes through a
fresh `Trainer` holding the weights the step started from, and the loss and gradient norm it
gets are set beside those the run recorded (`train_steps`). Equal numbers say the step is
reproducible and the problem lies in the data or later; different ones point at the trainer.

- The weights: checkpoint `step_{N-1}` of the run (its optimizer state too, where it was saved
  whole), or the initial model for N = 1, or `--checkpoint PATH`.
- The config: the run's own `config.toml` (with `--set` overrides, e.g. another
  `learner.micro_batch_tokens` or `learner.tis_cap`, to see what changes the numbers).
- One process on this machine's device, whatever `learner.nproc` the run had.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from learner.dump import dump_path, read_dump
from learner.trainer import StepStats, Trainer
from lppo.core.config import Config
from lppo.core.errors import UserError


@dataclass(frozen=True)
class Replay:
    step: int
    weights: str
    stats: StepStats
    recorded: dict[str, float | None]
    """The run's `train_steps` row: loss and grad_norm (None where the ledger has no row)."""


def weights_for(cfg: Config, step: int, checkpoint: Path | None) -> tuple[str, Path | None]:
    """(model folder, checkpoint folder or None) holding the policy step `step` started from."""
    from learner.checkpoint import checkpoint_root

    if checkpoint is not None:
        folder = checkpoint / "model" if (checkpoint / "model").is_dir() else checkpoint
        return str(folder), checkpoint if (checkpoint / "model").is_dir() else None
    if step == 1:
        return cfg.model.path, None
    ckpt = checkpoint_root(cfg.run.run_dir) / f"step_{step - 1}"
    if not (ckpt / "model").is_dir():
        have = sorted(p.name for p in checkpoint_root(cfg.run.run_dir).glob("step_*"))
        raise UserError(f"step {step} started from the weights of step {step - 1}, and the run "
                        f"has no checkpoint of it (it has: {', '.join(have) or 'none'}); keep "
                        "one with learner.checkpoint_every, or pass --checkpoint PATH")
    return str(ckpt / "model"), ckpt


def replay_step(cfg: Config, step: int, checkpoint: Path | None = None) -> Replay:
    """Re-run step `step` of the run `cfg` describes (see the module docstring)."""
    from learner import checkpoint as ckpts

    dump = read_dump(dump_path(cfg.run.run_dir, step))
    model, ckpt = weights_for(cfg, step, checkpoint)
    trainer = Trainer(cfg, model_path=model)
    if ckpt is not None and not ckpts.is_sharded(ckpt):
        trainer.load_state_dict(ckpts.load(ckpt)[0])
    trainer.steps_done = dump.steps_done  # the step's learning rate
    stats = trainer.step(dump.sequences)
    return Replay(step=step, weights=model, stats=stats, recorded=_recorded(cfg, step))


def _recorded(cfg: Config, step: int) -> dict[str, float | None]:
    from store.queries import LedgerReader

    with LedgerReader(cfg.ledger_url) as reader:
        rows = [r for r in reader.steps(cfg.run.name) if r["step"] == step]
    return {k: rows[0][k] if rows else None for k in ("loss", "grad_norm")}
