"""`lppo run`: start the learner and `actor.count` actors on this machine and supervise them.

    runs/<name>/config.toml          the resolved config every child reads (overrides included)
    runs/<name>/logs/learner.log     one log file per process
    runs/<name>/logs/actor-<i>.log

Supervision rules:
- an actor that exits non-zero is restarted (same actor id, so the learner sees it rejoin)
  at most `actor.max_restarts` times; past that the run continues with fewer actors, and stops
  if none is left;
- the learner exiting non-zero ends the run: actors are stopped and the command exits non-zero
  naming the learner and printing the last lines of its log;
- Ctrl-C or SIGTERM: the learner gets SIGTERM (it checkpoints, then tells the actors to shut
  down), actors get SIGTERM after a grace period, and the command exits 130 (interrupt) or
  143 (terminate);
- the learner finishing normally ends the run once the actors have exited on its Shutdown;
- the supervisor itself killed (SIGKILL, OOM): every child gets SIGTERM from the kernel
  (Linux's parent-death signal), so none is left running without it.

GPUs (`gpu_plan`): on a machine with GPUs (those in CUDA_VISIBLE_DEVICES, else those
`nvidia-smi -L` lists), the learner's ranks take the first `learner.nproc` (unless
`learner.device = "cpu"`), then each actor the next `actor.tensor_parallel_size`; each child
sees only its own through CUDA_VISIBLE_DEVICES. Too few GPUs is an error before anything
starts.

Cores (`cpu_plan`), on a machine without GPUs and with `run.cpu_split`: the learner gets
`run.learner_cores` (0: half) of the cores this process may use, the actors share the rest,
each child pinned to its own (lppo/core/cpus.py) with its torch/OpenMP threads and vLLM's
thread binding set to match, so training and generation do not take each other's cores.

The live view polls the ledger read-only (the latest `train_steps` row) and never blocks the
children. Nothing here imports torch or vLLM.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from lppo.core.config import Config, save_config
from lppo.core.cpus import ENV, format_cores
from lppo.core.errors import UserError
from lppo.progress import ProgressView

log = logging.getLogger(__name__)

GRACE_S = 60.0
PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal a child gets when the thread that started it exits."""
"""How long the learner gets to checkpoint and exit after SIGTERM before it is killed."""


@dataclass
class Child:
    name: str
    args: list[str]
    log_path: Path
    proc: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0
    env: dict[str, str] = field(default_factory=dict)
    """Set for this child on top of the supervisor's environment (a learner rank's RANK...)."""

    def start(self, env: dict[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as fh:
            fh.write(f"\n==> starting {self.name} (restart {self.restarts})\n".encode())
            fh.flush()
            self.proc = spawn([sys.executable, "-m", "lppo.cli", *self.args], fh,
                              {**env, **self.env})
        self.started_at = time.monotonic()

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, errors="replace") as fh:
                return "".join(deque(fh, maxlen=lines))
        except FileNotFoundError:
            return "(no log)"


def spawn(argv: list[str], out, env: dict[str, str]) -> subprocess.Popen:
    """A child in a session of its own (the terminal's Ctrl-C reaches only the supervisor,
    which forwards it) that receives SIGTERM when the supervisor dies (Linux)."""
    return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True, preexec_fn=_term_when_parent_dies(os.getpid()))


def _term_when_parent_dies(parent: int):
    """`preexec_fn`: PR_SET_PDEATHSIG = SIGTERM; a parent already gone: SIGTERM at once. The
    supervisor starts children from its main thread only (the signal follows the thread)."""
    if not sys.platform.startswith("linux"):
        return None

    def arm() -> None:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def learner_rank_env(nproc: int, run_dir: Path) -> list[dict[str, str]]:
    """The environment of each learner rank on this machine: torchrun's rank variables, the
    rendezvous through a fresh file in the run directory (no listening socket: torch's TCP
    store would listen on every interface) and gloo's connections on loopback. One rank:
    nothing to add."""
    if nproc == 1:
        return [{}]
    store = run_dir / f"dist-{uuid.uuid4().hex[:12]}.store"
    env = {"LPPO_DIST_STORE": str(store), "WORLD_SIZE": str(nproc),
           "LOCAL_WORLD_SIZE": str(nproc)}
    if Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"
    return [{**env, "RANK": str(r), "LOCAL_RANK": str(r)} for r in range(nproc)]


def visible_gpus() -> list[str]:
    """The GPU ids children may use: CUDA_VISIBLE_DEVICES when set, else nvidia-smi's list
    (none when it is absent or fails)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g for g in (x.strip() for x in listed.split(",")) if g and g != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def gpu_plan(gpus: list[str], cfg: Config) -> tuple[list[str], list[list[str]]]:
    """(the learner's GPU ids, each actor's) on this machine; see the module docstring."""
    if not gpus:
        return [], [[] for _ in range(cfg.actor.count)]
    learner_n = 0 if cfg.learner.device == "cpu" else cfg.learner.nproc
    tp = cfg.actor.tensor_parallel_size
    need = learner_n + cfg.actor.count * tp
    if need > len(gpus):
        raise UserError(
            f"lppo run: {len(gpus)} GPU(s) visible ({','.join(gpus)}), the run needs {need}: "
            f"{learner_n} for the learner (learner.nproc, unless learner.device = \"cpu\") + "
            f"{cfg.actor.count} actor(s) x {tp} (actor.count x actor.tensor_parallel_size)")
    actors = [gpus[learner_n + i * tp: learner_n + (i + 1) * tp] for i in range(cfg.actor.count)]
    return gpus[:learner_n], actors


def cpu_plan(cores: list[int], cfg: Config) -> tuple[list[int], list[list[int]]]:
    """(the learner's cores, each actor's) when `run.cpu_split` applies, else ([], [])."""
    if not cfg.run.cpu_split or len(cores) < 2:
        return [], []
    n = min(cfg.run.learner_cores or max(1, len(cores) // 2), len(cores) - 1)
    rest = cores[n:]
    share = max(1, len(rest) // cfg.actor.count)
    actors = [rest[(i * share) % len(rest):][:share] for i in range(cfg.actor.count)]
    return cores[:n], actors


def _cpu_env(cores: list[int], threads: int, vllm: bool = False) -> dict[str, str]:
    if not cores:
        return {}
    env = {ENV: format_cores(cores), "OMP_NUM_THREADS": str(max(1, threads))}
    if vllm:
        env["VLLM_CPU_OMP_THREADS_BIND"] = format_cores(cores)
    return env


def _devices(ids: list[str], gpus: list[str]) -> dict[str, str]:
    return {"CUDA_VISIBLE_DEVICES": ",".join(ids)} if gpus else {}


@dataclass
class RunResult:
    exit_code: int
    reason: str
    restarts: dict[str, int] = field(default_factory=dict)


class Supervisor:
    """Runs one `lppo run`; see the module docstring."""

    def __init__(self, cfg: Config, resume: bool = False, view: bool = True):
        self.cfg = cfg
        self.run_dir = cfg.run.run_dir
        self.config_path = save_config(cfg, self.run_dir / "config.toml")
        logs = self.run_dir / "logs"
        resume_arg = ["--resume"] if resume else []
        args = ["learner", str(self.config_path), *resume_arg]
        gpus = visible_gpus()
        learner_gpus, actor_gpus = gpu_plan(gpus, cfg)
        learner_cores, actor_cores = ([], []) if gpus else cpu_plan(
            sorted(os.sched_getaffinity(0)), cfg)
        learner_cpu = _cpu_env(learner_cores, len(learner_cores) // cfg.learner.nproc)
        ranks = [{**env, **_devices(learner_gpus, gpus), **learner_cpu}
                 for env in learner_rank_env(cfg.learner.nproc, self.run_dir)]
        self.learner = Child("learner", args, logs / "learner.log", env=ranks[0])
        self.followers = [Child(f"learner-rank{r}", args, logs / f"learner-rank{r}.log",
                                env=ranks[r]) for r in range(1, len(ranks))]
        self.actors = [
            Child(f"actor-{i}", ["actor", str(self.config_path), "--actor-id", f"actor-{i}"],
                  logs / f"actor-{i}.log", env={
                      **_devices(actor_gpus[i], gpus),
                      **(_cpu_env(actor_cores[i], len(actor_cores[i]), vllm=True)
                         if actor_cores else {})})
            for i in range(cfg.actor.count)
        ]
        if learner_cores:
            log.info("cores: learner %s, actors %s (run.cpu_split)", learner_cores, actor_cores)
        self.view = ProgressView(cfg) if view else None
        self._signal: int | None = None
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def run(self) -> RunResult:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for child in [self.learner, *self.followers]:
                child.start(self.env)
            for actor in self.actors:
                actor.start(self.env)
            log.info("run %s: learner and %d actor(s) started; logs in %s", self.cfg.run.name,
                     len(self.actors), self.run_dir / "logs")
            return self._supervise()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            self._stop_all()
            if self.view is not None:
                self.view.close()

    def _on_signal(self, signum, frame) -> None:
        self._signal = signum

    def _supervise(self) -> RunResult:
        while True:
            if self._signal is not None:
                return self._interrupted()
            code = self.learner.poll()
            if code is not None:
                return self._learner_exited(code)
            if failed := self._failed_follower():
                return failed
            self._watch_actors()
            if self.actors and all(a.proc is None for a in self.actors):
                self._stop_learner()
                return RunResult(1, "every actor failed more than actor.max_restarts times",
                                 self._restarts())
            if self.view is not None:
                self.view.refresh(self._alive())
            time.sleep(0.5)

    def _watch_actors(self) -> None:
        for actor in self.actors:
            code = actor.poll()
            if code is None or actor.proc is None:
                continue
            if code == 0:
                continue  # exited on the learner's Shutdown; the learner ends the run
            if actor.restarts >= self.cfg.actor.max_restarts:
                log.error("%s exited with %d; restart budget (%d) spent, not restarting",
                          actor.name, code, self.cfg.actor.max_restarts)
                actor.proc = None
                continue
            actor.restarts += 1
            log.warning("%s exited with %d; restarting (%d/%d)", actor.name, code,
                        actor.restarts, self.cfg.actor.max_restarts)
            actor.start(self.env)

    def _failed_follower(self) -> RunResult | None:
        """A learner rank other than 0 that died ends the run: rank 0 cannot train without it."""
        for child in self.followers:
            code = child.poll()
            if code not in (None, 0):
                self.learner.signal(signal.SIGKILL)
                return RunResult(1, f"{child.name} exited with status {code}; last lines of "
                                    f"{child.log_path}:\n{child.tail()}", self._restarts())
        return None

    def _learner_exited(self, code: int) -> RunResult:
        if code == 0:
            self._wait_actors(timeout=60.0)
            return RunResult(0, "learner finished", self._restarts())
        reason = (f"learner exited with status {code}; last lines of "
                  f"{self.learner.log_path}:\n{self.learner.tail()}")
        return RunResult(code if code > 0 else 1, reason, self._restarts())

    def _interrupted(self) -> RunResult:
        name = signal.Signals(self._signal).name
        log.warning("%s: stopping the learner (it checkpoints first)", name)
        self._stop_learner()
        self._wait_actors(timeout=15.0)
        return RunResult(128 + self._signal, f"stopped by {name}", self._restarts())

    def _stop_learner(self) -> None:
        self.learner.signal(signal.SIGTERM)
        try:
            if self.learner.proc is not None:
                self.learner.proc.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            log.error("learner did not stop within %.0f s; killing it", GRACE_S)
            self.learner.signal(signal.SIGKILL)

    def _wait_actors(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for actor in self.actors:
            if actor.proc is None:
                continue
            try:
                actor.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                actor.signal(signal.SIGTERM)

    def _stop_all(self) -> None:
        for child in [*self.actors, self.learner]:
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + 15.0
        for child in [*self.actors, self.learner]:
            if child.proc is None:
                continue
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.signal(signal.SIGKILL)
                child.proc.wait(timeout=10)
        # The other learner ranks exit when rank 0 releases them; they ignore SIGTERM (rank 0
        # decides when to stop), so one still running once rank 0 is gone is killed.
        for child in self.followers:
            if child.proc is None:
                continue
            try:
                child.proc.wait(timeout=10.0)
            except subprocess.TimeoutExpired:
                child.signal(signal.SIGKILL)
                child.proc.wait(timeout=10)
        if store := self.learner.env.get("LPPO_DIST_STORE"):
            Path(store).unlink(missing_ok=True)

    def _alive(self) -> dict[str, bool]:
        return {c.name: c.poll() is None and c.proc is not None
                for c in [self.learner, *self.actors]}

    def _restarts(self) -> dict[str, int]:
        return {a.name: a.restarts for a in self.actors if a.restarts}
