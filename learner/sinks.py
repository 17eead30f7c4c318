"""Optional extra destinations for per-step metrics: TensorBoard and Weights & Biases.

The ledger is where every step's metrics always go; these sinks are conveniences for users
whose tooling expects them, and are never required. Configured but not installed is an error
at start-up with the install command, not a silent no-op.

    learner.tensorboard = true        -> <run_dir>/tensorboard/ (SummaryWriter)
    learner.wandb_project = "name"    -> wandb.init(project=..., name=run.name, config=...)
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

from lppo.core.config import Config
from lppo.core.errors import UserError


class MetricSinks:
    """Fan-out of one step's scalar metrics to the configured sinks."""

    def __init__(self, cfg: Config):
        self._tb = None
        self._wandb = None
        if cfg.learner.tensorboard:
            if importlib.util.find_spec("tensorboard") is None:
                raise UserError("learner.tensorboard = true needs the tensorboard package: "
                                "pip install tensorboard")
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(cfg.run.run_dir / "tensorboard"))
        if cfg.learner.wandb_project:
            if importlib.util.find_spec("wandb") is None:
                raise UserError("learner.wandb_project is set but wandb is not installed: "
                                "pip install wandb")
            import wandb

            self._wandb = wandb.init(project=cfg.learner.wandb_project, name=cfg.run.name,
                                     config=cfg.model_dump(mode="json"), resume="allow")

    def log(self, step: int, metrics: Mapping[str, float | int | None]) -> None:
        scalars = {k: float(v) for k, v in metrics.items()
                   if isinstance(v, int | float) and not isinstance(v, bool)}
        if self._tb is not None:
            for key, value in scalars.items():
                self._tb.add_scalar(key, value, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
