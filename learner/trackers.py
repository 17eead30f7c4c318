"""Experiment trackers: per-step metrics and evaluation results to TensorBoard, W&B, MLflow.

The ledger is where every step's metrics and every evaluation result always go; trackers are
for users whose tooling expects them (`learner.loggers`), and are never required. A tracker
configured but not installed is an error at start-up with the install command, not a no-op.

    tensorboard  <run_dir>/tensorboard/ (torch's SummaryWriter)
    wandb        wandb.init(project=wandb_project or run.name, id=<stable id>, resume="allow")
    mlflow       MlflowClient(mlflow_tracking_uri or MLFLOW_TRACKING_URI or
                 sqlite:///<run_dir>/mlflow.db), experiment mlflow_experiment or run.name

- Stable run ids: the W&B id and the MLflow run id are kept in `<run_dir>/trackers.json`, so a
  learner started again on the same run directory (`--resume`) continues the same tracker run.
- Evaluation results go in as `eval/<benchmark>/<metric>` at the step they evaluated. W&B
  wants steps in order, and results arrive after later steps, so they are logged against their
  own step axis (`eval/step`, W&B's `define_metric`); TensorBoard and MLflow take them as they
  are (MLflow's names spell `@` as `_at_`: `eval/math500/pass_at_1`).
- What is sent: the config as dumped with secrets redacted (lppo/core/secrets.py), the code
  version, and numbers. Nothing else of the ledger.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from lppo.core.config import Config
from lppo.core.errors import UserError
from store.records import EvalRecord

PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
"""The module each tracker imports (`mlflow` comes with `mlflow-skinny` or `mlflow`)."""
IDS_FILE = "trackers.json"


class Tracker(Protocol):
    def log(self, step: int, scalars: Mapping[str, float]) -> None: ...
    def log_eval(self, step: int, scalars: Mapping[str, float]) -> None: ...
    def close(self, status: str) -> None: ...


class Trackers:
    """Fan-out of step metrics and evaluation results to the configured trackers."""

    def __init__(self, cfg: Config, code_version: str | None = None):
        for name in cfg.learner.loggers:  # all checked before any is started
            if importlib.util.find_spec(PACKAGES[name]) is None:
                raise UserError(f"learner.loggers has {name!r}, but the {PACKAGES[name]} "
                                "package is not installed: pip install 'lppo[trackers]'")
        self.trackers: list[Tracker] = []
        if not cfg.learner.loggers:
            return
        self.ids = RunIds(cfg.run.run_dir / IDS_FILE)
        config = cfg.model_dump(mode="json")  # secrets redacted
        for name in cfg.learner.loggers:
            start = {"tensorboard": TensorBoardTracker, "wandb": WandbTracker,
                     "mlflow": MLflowTracker}[name]
            self.trackers.append(start(cfg, self.ids, config, code_version))

    def log(self, step: int, metrics: Mapping[str, float | int | None]) -> None:
        scalars = _numbers(metrics)
        for tracker in self.trackers:
            tracker.log(step, scalars)

    def log_evals(self, records: Sequence[EvalRecord]) -> None:
        """Evaluation results, grouped by the step they evaluated."""
        by_step: dict[int, dict[str, float]] = {}
        for r in records:
            by_step.setdefault(r.step, {})[f"eval/{r.benchmark}/{r.metric}"] = float(r.value)
        for step, scalars in sorted(by_step.items()):
            for tracker in self.trackers:
                tracker.log_eval(step, scalars)

    def close(self, status: str = "finished") -> None:
        for tracker in self.trackers:
            tracker.close(status)
        self.trackers = []


def _numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


class RunIds:
    """`<run_dir>/trackers.json`: each tracker's run id, kept across restarts of the run."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.ids: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self.ids = {}
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: unreadable tracker run ids ({exc}); remove the file to "
                            "start new tracker runs") from None

    def get(self, tracker: str) -> str | None:
        return self.ids.get(tracker)

    def set(self, tracker: str, run_id: str) -> None:
        self.ids[tracker] = run_id
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.ids, indent=1) + "\n", encoding="utf-8")
        tmp.replace(self.path)


class TensorBoardTracker:
    def __init__(self, cfg: Config, ids: RunIds, config: dict, code_version: str | None):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(cfg.run.run_dir / "tensorboard"))

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    log_eval = log

    def close(self, status: str) -> None:
        self.writer.close()


class WandbTracker:
    def __init__(self, cfg: Config, ids: RunIds, config: dict, code_version: str | None):
        import wandb

        run_id = ids.get("wandb")
        if run_id is None:
            run_id = f"{cfg.run.name}-{os.urandom(4).hex()}"
            ids.set("wandb", run_id)
        self.run = wandb.init(project=cfg.learner.wandb_project or cfg.run.name,
                              name=cfg.run.name, id=run_id, resume="allow",
                              dir=str(cfg.run.run_dir), config=config,
                              tags=[f"code:{code_version}"] if code_version else None)
        self.run.define_metric("eval/step")
        self.run.define_metric("eval/*", step_metric="eval/step")

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        self.run.log(dict(scalars), step=step)

    def log_eval(self, step: int, scalars: Mapping[str, float]) -> None:
        self.run.log({"eval/step": step, **scalars})

    def close(self, status: str) -> None:
        self.run.finish(exit_code=0 if status in ("finished", "stopped") else 1)


class MLflowTracker:
    STATUS = {"finished": "FINISHED", "stopped": "KILLED", "failed": "FAILED"}

    def __init__(self, cfg: Config, ids: RunIds, config: dict, code_version: str | None):
        from mlflow.tracking import MlflowClient

        uri = (cfg.learner.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
               or f"sqlite:///{(cfg.run.run_dir / 'mlflow.db').resolve()}")
        self.client = MlflowClient(tracking_uri=uri)
        self.run_id = ids.get("mlflow")
        if self.run_id is None:
            name = cfg.learner.mlflow_experiment or cfg.run.name
            found = self.client.get_experiment_by_name(name)
            experiment = found.experiment_id if found else self.client.create_experiment(name)
            tags = {"lppo.code_version": code_version} if code_version else {}
            run = self.client.create_run(experiment, run_name=cfg.run.name, tags=tags)
            self.run_id = run.info.run_id
            ids.set("mlflow", self.run_id)
            self._log_params(config)
        else:
            self.client.update_run(self.run_id, status="RUNNING")

    def _log_params(self, config: dict) -> None:
        from mlflow.entities import Param

        params = [Param(k, str(v)[:6000]) for k, v in _flatten(config).items()]
        for start in range(0, len(params), 100):  # MLflow's most params per batch
            self.client.log_batch(self.run_id, params=params[start:start + 100])

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(mlflow_key(k), v, now, step) for k, v in scalars.items()]
        for start in range(0, len(metrics), 1000):  # MLflow's most metrics per batch
            self.client.log_batch(self.run_id, metrics=metrics[start:start + 1000])

    log_eval = log

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status=self.STATUS.get(status, "FAILED"))


def mlflow_key(key: str) -> str:
    """A metric name MLflow accepts: `pass@1` -> `pass_at_1`, other characters it refuses
    (outside letters, digits, `_ - . : /` and space) -> `_`."""
    return re.sub(r"[^\w\-. :/]", "_", key.replace("@", "_at_"))


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}` (lists kept whole, as their JSON text)."""
    if not isinstance(tree, dict):
        return {prefix: json.dumps(tree) if isinstance(tree, list) else tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else key))
    return out
