"""`lppo run`'s parts: which GPUs and cores each child gets, the learner ranks' environment,
and children that stop when the supervisor dies."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from lppo.core.config import Config
from lppo.core.errors import UserError
from lppo.launcher import cpu_plan, gpu_plan, learner_rank_env, visible_gpus
from tests.conftest import ROOT


def _cfg(**learner_actor) -> Config:
    learner = {k: v for k, v in learner_actor.items() if k in ("nproc", "device")}
    actor = {k: v for k, v in learner_actor.items() if k in ("count", "tensor_parallel_size")}
    return Config.model_validate({"learner": {"batch_groups": 8, **learner}, "actor": actor})


def test_learner_ranks_take_the_first_gpus_then_each_actor_its_own():
    gpus = [str(i) for i in range(8)]
    learner, actors = gpu_plan(gpus, _cfg(nproc=4, count=2, tensor_parallel_size=2))
    assert learner == ["0", "1", "2", "3"]
    assert actors == [["4", "5"], ["6", "7"]]


def test_a_cpu_learner_leaves_every_gpu_to_the_actors():
    learner, actors = gpu_plan(["3", "5"], _cfg(nproc=2, device="cpu", count=2))
    assert learner == [] and actors == [["3"], ["5"]]


def test_no_gpu_sets_nothing_and_too_few_is_an_error_before_anything_starts():
    assert gpu_plan([], _cfg(nproc=2, count=3)) == ([], [[], [], []])
    with pytest.raises(UserError, match=r"2 GPU\(s\) visible \(0,1\), the run needs 4: 2 for "
                                        r"the learner .* \+ 2 actor\(s\) x 1"):
        gpu_plan(["0", "1"], _cfg(nproc=2, count=2))


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 4,")
    assert visible_gpus() == ["2", "4"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert visible_gpus() == []


def test_learner_ranks_meet_through_a_file_on_loopback(tmp_path):
    assert learner_rank_env(1, tmp_path) == [{}]
    ranks = learner_rank_env(3, tmp_path)
    assert [r["RANK"] for r in ranks] == ["0", "1", "2"]
    assert len({r["LPPO_DIST_STORE"] for r in ranks}) == 1
    assert all(r["WORLD_SIZE"] == "3" for r in ranks)


def _split(**run_actor) -> Config:
    run = {k: v for k, v in run_actor.items() if k in ("cpu_split", "learner_cores")}
    actor = {k: v for k, v in run_actor.items() if k == "count"}
    return Config.model_validate({"run": run, "actor": actor})


def test_cores_split_between_the_learner_and_the_actors():
    assert cpu_plan([0, 1], _split()) == ([0], [[1]])
    assert cpu_plan(list(range(8)), _split(count=2)) == ([0, 1, 2, 3], [[4, 5], [6, 7]])
    assert cpu_plan(list(range(8)), _split(learner_cores=6)) == ([0, 1, 2, 3, 4, 5], [[6, 7]])
    # never every core to the learner; more actors than cores share them
    assert cpu_plan([4, 5, 6], _split(learner_cores=9, count=3)) == ([4, 5], [[6], [6], [6]])


def test_no_split_when_off_or_on_one_core():
    assert cpu_plan(list(range(8)), _split(cpu_split=False)) == ([], [])
    assert cpu_plan([0], _split()) == ([], [])


def test_a_pinned_process_runs_on_its_cores_only(monkeypatch):
    import os

    from lppo.core.cpus import ENV, parse_cores, pin_from_env

    before = os.sched_getaffinity(0)
    try:
        monkeypatch.delenv(ENV, raising=False)
        assert pin_from_env() is None and os.sched_getaffinity(0) == before
        core = min(before)
        monkeypatch.setenv(ENV, str(core))
        assert pin_from_env() == [core] and os.sched_getaffinity(0) == {core}
    finally:
        os.sched_setaffinity(0, before)
    assert parse_cores("2,3") == [2, 3]
    with pytest.raises(ValueError, match="LPPO_CPU_CORES='a-b': expected core ids"):
        parse_cores("a-b")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux")
def test_children_stop_when_the_supervisor_is_killed():
    """A supervisor killed outright (SIGKILL, the OOM killer, a test's timeout) leaves no
    learner or actor running on its own."""
    script = ("import subprocess, sys, time\n"
              "from lppo.launcher import spawn\n"
              "child = spawn([sys.executable, '-c', 'import time; time.sleep(120)'], "
              "subprocess.DEVNULL, {})\n"
              "print(child.pid, flush=True)\n"
              "time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT)
    try:
        child = int(parent.stdout.readline())
        os.kill(child, 0)  # running
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
