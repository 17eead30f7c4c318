"""A scripted learner for actor tests: the real `ActorGateway` on real sockets, with work
items the test chooses and acks the test controls (no scheduler, no trainer, no ledger)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import zmq

from learner.gateway import ActorGateway
from lppo.core.config import Config, save_config
from lppo.core.transport import Endpoints, LearnerSockets
from lppo.core.wire import Array, RolloutGroup, WeightsReady, WorkItem
from lppo.testing.postgres import free_ports


def actor_test_config(model_dir: Path, run_dir: Path, **overrides) -> Config:
    work, rollouts, weights, sync = free_ports(4)
    raw = {
        "run": {"name": "actor-test", "output_dir": str(run_dir), "log_level": "INFO"},
        "model": {"path": str(model_dir), "dtype": "float32", "max_model_len": 256},
        "data": {"prompt_format": "plain", "max_prompt_tokens": 64},
        "actor": {"slots": 8, "sampling": {"temperature": 1.0, "max_tokens": 12},
                  "reward": {"workers": 1, "timeout_s": 5.0}},
        "transport": {"work_port": work, "rollout_port": rollouts, "weights_port": weights,
                      "sync_port": sync,
                      "heartbeat_s": 0.5, "peer_timeout_s": 3.0},
    }
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    return Config.model_validate(raw)


class ScriptedLearner:
    """Binds the learner's sockets and serves queued work items to whoever asks."""

    def __init__(self, cfg: Config, weight_sync=None):
        self.cfg = cfg
        self.weight_sync = weight_sync
        """A `learner.collective.CollectiveWeights` for `collective` tests, or None."""
        self.ends = Endpoints.from_config(cfg.transport, cfg.run.run_dir)
        self.initial = initial_weights(cfg)
        """Version 0 (the model's own weights), announced as a real learner does."""
        self.items: deque[WorkItem] = deque()
        self.received: list[RolloutGroup] = []
        self.ctx = zmq.Context()
        self._bind()

    def _bind(self) -> None:
        self.socks = LearnerSockets.bind(self.ctx, self.ends, self.cfg.transport)
        self.gateway = ActorGateway(
            self.socks, self._serve, peer_timeout_s=self.cfg.transport.peer_timeout_s,
            heartbeat_s=self.cfg.transport.heartbeat_s, republish_s=0.5,
            max_slots=self.cfg.actor.slots, weights=self.initial,
            weight_sync=self.weight_sync,
        )

    def _serve(self, actor_id: str, slots: int) -> list[WorkItem]:
        return [self.items.popleft() for _ in range(min(slots, len(self.items)))]

    def add(self, *items: WorkItem) -> None:
        self.items.extend(items)

    def collect(self, count: int, timeout: float = 60, ack: bool = True,
                where=lambda g: True) -> list[RolloutGroup]:
        """Poll until `count` new matching groups arrived (acking them unless told not to)."""
        got: list[RolloutGroup] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"got {len(got)} of {count} groups in {timeout} s")
            groups = self.gateway.poll(timeout_ms=50)
            self.received.extend(groups)
            got.extend(g for g in groups if where(g))
            if ack and groups:
                self.gateway.ack(groups)
        return got

    def wait_for(self, predicate, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not reached")
            self.received.extend(self.gateway.poll(timeout_ms=50))

    def restart(self, down_s: float = 1.0) -> None:
        """Close every socket (as a crash does) and come back later with a new epoch."""
        self.socks.close()
        time.sleep(down_s)
        self._bind()

    def close(self) -> None:
        """Close the sockets and destroy the context (again: no-op)."""
        if not self.ctx.closed:
            self.socks.close()
            self.ctx.destroy(linger=0)

    def __enter__(self) -> ScriptedLearner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextmanager
def zmq_context() -> Iterator[zmq.Context]:
    """A ZeroMQ context destroyed on exit, its sockets closed with LINGER 0, even when the test
    fails. Why not leave it to the garbage collector: when a failed test leaves a context in a
    reference cycle with its sockets, the collector clears the context's weak references to
    them before its finaliser runs, so `Context.__del__`'s `term()` waits forever for sockets
    nobody will close, and a later test hangs (seen: the demo test, after a failure here)."""
    ctx = zmq.Context()
    try:
        yield ctx
    finally:
        ctx.destroy(linger=0)


def initial_weights(cfg: Config) -> WeightsReady:
    """The model's own weights written as version 0 (once per run directory)."""
    import torch
    from transformers import AutoModelForCausalLM

    from lppo.core.weightfiles import write_weights

    model = AutoModelForCausalLM.from_pretrained(cfg.model.path, dtype=torch.float32)
    return write_weights(model.state_dict(), cfg.run.run_dir / "stub", 0)


def item(attempt_id: str, prompt: str, answer: str, n: int = 4, prefix_ids=None,
         sample_id: int = 0, guided: int | None = None) -> WorkItem:
    prefix = Array.of(prefix_ids, "int32") if prefix_ids is not None else None
    return WorkItem(attempt_id=attempt_id, sample_id=sample_id, prompt=prompt, prefix_ids=prefix,
                    prefix_ratio=0.5 if prefix_ids else 0.0, n=n, guided=guided, answer=answer)


def start_actor(cfg_path: Path, actor_id: str, log_path: Path):
    """A real `lppo actor` process for `cfg_path`, its output in `log_path`."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    with open(log_path, "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "lppo.cli", "actor", str(cfg_path), "--actor-id", actor_id],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )


def write_config(cfg: Config, path: Path) -> Path:
    return save_config(cfg, path)
