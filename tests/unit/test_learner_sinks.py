"""Optional metric sinks: TensorBoard writes real event files; a missing package is a clear
error at start-up."""

from __future__ import annotations

import importlib.util

import pytest

from learner.sinks import MetricSinks
from lppo.core.config import Config
from lppo.core.errors import UserError


def test_tensorboard_events_are_written(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = Config.model_validate({"run": {"output_dir": str(tmp_path), "name": "tb"},
                                 "learner": {"tensorboard": True}})
    sinks = MetricSinks(cfg)
    sinks.log(1, {"train/loss": 0.5, "batch/pass_rate": 0.25, "skip": None, "flag": True})
    sinks.log(2, {"train/loss": 0.25})
    sinks.close()
    acc = EventAccumulator(str(tmp_path / "tb" / "tensorboard"))
    acc.Reload()
    assert [e.value for e in acc.Scalars("train/loss")] == [0.5, 0.25]
    assert "skip" not in acc.Tags()["scalars"] and "flag" not in acc.Tags()["scalars"]


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed")
def test_missing_wandb_is_a_clear_error(tmp_path):
    cfg = Config.model_validate({"run": {"output_dir": str(tmp_path)},
                                 "learner": {"wandb_project": "p"}})
    with pytest.raises(UserError, match="pip install wandb"):
        MetricSinks(cfg)


def test_no_sinks_by_default(tmp_path):
    sinks = MetricSinks(Config.model_validate({"run": {"output_dir": str(tmp_path)}}))
    sinks.log(1, {"x": 1.0})
    sinks.close()
    assert not (tmp_path / "lppo-run" / "tensorboard").exists()
