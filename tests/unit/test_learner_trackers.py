"""Experiment trackers (learner/trackers.py) with the real packages: TensorBoard event files,
W&B offline runs (read back from their .wandb file), MLflow runs in a SQLite store. Each gets
step metrics and evaluation results, a restarted run continues the same tracker run, and no
secret reaches a tracker."""

from __future__ import annotations

import glob
import json
import struct
import time
from pathlib import Path

import pytest

from learner import trackers
from learner.trackers import Trackers
from lppo.core.config import Config
from lppo.core.errors import UserError
from store.records import EvalRecord

PASSWORD = "hunter2-secret"


def config(tmp_path, loggers, **learner) -> Config:
    return Config.model_validate({
        "run": {"output_dir": str(tmp_path), "name": "trk"},
        "store": {"url": f"postgresql+psycopg://bob:{PASSWORD}@db.example:5432/ledger"},
        "learner": {"loggers": loggers, **learner}})


def run_once(cfg: Config, steps: range, status: str = "stopped") -> None:
    t = Trackers(cfg, code_version="0.1.0+gabc")
    for step in steps:
        t.log(step, {"train/loss": 1.0 / step, "skip": None, "flag": True})
    t.log_evals([EvalRecord(steps[0], "math500", "pass@1", 0.25, 500),
                 EvalRecord(steps[0], "aime24", "pass@1", 0.1, 30)])
    t.close(status)


def test_tensorboard_gets_steps_and_evaluations(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_once(config(tmp_path, ["tensorboard"]), range(1, 3))
    acc = EventAccumulator(str(tmp_path / "trk" / "tensorboard"))
    acc.Reload()
    assert [e.value for e in acc.Scalars("train/loss")] == [1.0, 0.5]
    assert [(e.step, e.value) for e in acc.Scalars("eval/math500/pass@1")] == [(1, 0.25)]
    assert "skip" not in acc.Tags()["scalars"] and "flag" not in acc.Tags()["scalars"]


def wandb_records(run_dir) -> list:
    """Every record of the offline runs' .wandb files (LevelDB log format: a 7-byte file
    header, then 32 KiB blocks of records with a 7-byte header each)."""
    from wandb.proto import wandb_internal_pb2 as pb

    out = []
    for path in sorted(glob.glob(str(run_dir / "wandb" / "offline-run-*" / "*.wandb"))):
        data, pos, chunks = Path(path).read_bytes(), 7, b""
        while pos + 7 <= len(data):
            if (pos % 32768) + 7 > 32768:  # block trailer
                pos += 32768 - pos % 32768
                continue
            length, kind = struct.unpack("<H", data[pos + 4:pos + 6])[0], data[pos + 6]
            if length == 0 and kind == 0:
                break
            chunks += data[pos + 7:pos + 7 + length]
            pos += 7 + length
            if kind in (1, 4):  # a full record, or the last piece of one
                record = pb.Record()
                record.ParseFromString(chunks)
                out.append(record)
                chunks = b""
    return out


def test_wandb_offline_run_gets_steps_evaluations_and_keeps_its_id(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = config(tmp_path, ["wandb"], wandb_project="proj")
    run_once(cfg, range(1, 3))
    run_once(cfg, range(3, 5), status="finished")  # a resumed learner
    run_dir = tmp_path / "trk"
    run_id = json.loads((run_dir / "trackers.json").read_text())["wandb"]
    folders = glob.glob(str(run_dir / "wandb" / "offline-run-*"))
    # two W&B runs in one second: W&B suffixes the second folder (`...-ID-1`)
    assert len(folders) == 2 and all(f"-{run_id}" in Path(f).name for f in folders)
    # W&B's service process writes a run's file on its own after `finish` returns: wait for
    # both runs' exit records (a loaded machine took more than a moment).
    deadline = time.monotonic() + 60
    while sum(r.WhichOneof("record_type") == "exit" for r in wandb_records(run_dir)) < 2:
        assert time.monotonic() < deadline, "the W&B runs' files never got their exit records"
        time.sleep(0.2)
    records = wandb_records(run_dir)
    history = [{"/".join(i.nested_key) or i.key: json.loads(i.value_json)
                for i in r.history.item} for r in records if r.WhichOneof("record_type") == "history"]
    steps = [h["train/loss"] for h in history if "train/loss" in h]
    evals = [(h["eval/step"], h["eval/math500/pass@1"]) for h in history if "eval/step" in h]
    # (the two runs' folders are named by their start second and W&B's suffix, so their order
    # on disk is not always the runs' order: compare the sets of values)
    assert sorted(steps) == sorted([1.0, 0.5, 1 / 3, 0.25])
    assert sorted(evals) == [(1, 0.25), (3, 0.25)]
    runs = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert {r.run_id for r in runs} == {run_id} and runs[0].project == "proj"
    for folder in folders:  # the password never reaches W&B
        for path in glob.glob(f"{folder}/**/*", recursive=True):
            if path.endswith((".wandb", ".yaml", ".json", ".log")):
                assert PASSWORD.encode() not in Path(path).read_bytes(), path


def test_mlflow_run_gets_steps_evaluations_params_and_keeps_its_id(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    cfg = config(tmp_path, ["mlflow"], mlflow_experiment="exp")
    run_once(cfg, range(1, 3))
    run_once(cfg, range(3, 5), status="finished")
    run_dir = tmp_path / "trk"
    run_id = json.loads((run_dir / "trackers.json").read_text())["mlflow"]
    client = MlflowClient(f"sqlite:///{run_dir / 'mlflow.db'}")
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "trk"
    assert client.get_experiment(run.info.experiment_id).name == "exp"
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "train/loss")] == [
        (1, 1.0), (2, 0.5), (3, 1 / 3), (4, 0.25)]
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "eval/aime24/pass_at_1")
            ] == [(1, 0.1), (3, 0.1)]
    assert run.data.params["learner.mlflow_experiment"] == "exp"
    assert run.data.params["store.url"] == "postgresql+psycopg://bob:***@db.example:5432/ledger"
    assert run.data.tags["lppo.code_version"] == "0.1.0+gabc"
    assert all(PASSWORD not in v for v in run.data.params.values())
    assert len(client.search_runs([run.info.experiment_id])) == 1


def test_a_missing_tracker_package_is_a_clear_error_before_any_starts(tmp_path, monkeypatch):
    monkeypatch.setitem(trackers.PACKAGES, "mlflow", "no_such_package_for_lppo_tests")
    with pytest.raises(UserError, match=r"learner.loggers has 'mlflow', but the "
                                        r"no_such_package_for_lppo_tests package is not "
                                        r"installed: pip install 'lppo\[trackers\]'"):
        Trackers(config(tmp_path, ["tensorboard", "mlflow"]))
    assert not (tmp_path / "trk" / "tensorboard").exists()


def test_no_trackers_by_default(tmp_path):
    t = Trackers(Config.model_validate({"run": {"output_dir": str(tmp_path)}}))
    t.log(1, {"x": 1.0})
    t.close()
    assert not (tmp_path / "lppo-run").exists()
