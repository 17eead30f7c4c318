"""`lppo run` as a user runs it: an actor killed mid-run is restarted, rejoins the learner's
weight group (`collective` weights) and the run continues; Ctrl-C leaves a checkpoint and a
consistent ledger; `--resume` finishes the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from store.check import check_run
from store.queries import LedgerReader
from tests.conftest import ROOT
from tests.integration.run_files import ledger_steps, small_run_config, wait_for, write_task

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def _actor_pid(config: Path) -> int:
    out = subprocess.run(["pgrep", "-f", f"actor {config} --actor-id actor-0"],
                         capture_output=True, text=True)
    pids = [int(p) for p in out.stdout.split()]
    assert pids, "actor-0 not running"
    return pids[0]


def _weight_groups(run_dir: Path) -> int:
    """Sessions in which actor-0 pulled weights over a group (a new one after each restart)."""
    text = (run_dir / "logs" / "learner.log").read_text()
    return sum(1 for line in text.splitlines()
               if "actor actor-0 joined the weight groups (session" in line)


def test_actor_restart_interrupt_and_resume(tiny_model, tmp_path):
    paths = write_task(tmp_path, train={1: 16, 2: 8}, held_out={1: 4})
    cfg = small_run_config(tmp_path, tiny_model, paths["train"], learner={
        "max_steps": 8, "batch_groups": 4, "group_size": 4, "lr": 1e-4, "checkpoint_every": 2,
        "device": "cpu", "weights_backend": "collective"}, actor={"slots": 8, "sampling": {"max_tokens": 32},
                                 "reward": {"workers": 1}, "max_restarts": 2})
    run_dir = tmp_path / "runs" / "it"
    out = open(tmp_path / "run.out", "w")  # noqa: SIM115 - the child writes to it; closed at the end
    proc = subprocess.Popen([sys.executable, "-m", "lppo.cli", "run", str(cfg)], cwd=ROOT,
                            env=ENV, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: len(ledger_steps(run_dir)) >= 2, proc, 300, "step 2")
        os.kill(_actor_pid(run_dir / "config.toml"), signal.SIGKILL)
        wait_for(lambda: "restarting (1/2)" in (tmp_path / "run.out").read_text(), proc, 60,
              "the actor restart")
        wait_for(lambda: len(ledger_steps(run_dir)) >= 4, proc, 300, "step 4 after the restart")
        wait_for(lambda: _weight_groups(run_dir) >= 2, proc, 60, "the restarted actor's group")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130, (tmp_path / "run.out").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    text = (tmp_path / "run.out").read_text()
    assert "stopped by SIGINT" in text
    ckpts = sorted(int(p.name[5:]) for p in (run_dir / "checkpoints").glob("step_*"))
    stopped_at = max(ledger_steps(run_dir))
    assert ckpts and ckpts[-1] == stopped_at  # the stop checkpointed the last step
    assert ledger_steps(run_dir) == list(range(1, stopped_at + 1))

    resumed = subprocess.run([sys.executable, "-m", "lppo.cli", "run", str(cfg), "--resume"],
                             cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=420)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert ledger_steps(run_dir) == list(range(1, 9))
    with LedgerReader(str(run_dir)) as reader:
        assert reader.sql("SELECT COUNT(*) FROM (SELECT attempt_id FROM rollout_groups "
                          "GROUP BY attempt_id HAVING COUNT(*) > 1) d").rows[0][0] == 0
        status = reader.sql("SELECT status FROM runs WHERE name = 'it'").rows[0][0]
        assert status == "finished"
        assert check_run(reader, "it") == []
