"""Fault injection on the wire: 10,000 random and mutated frames to each learner socket during
a real training run (learner + vLLM actor). The learner neither crashes nor stalls; the frames
are rejected and counted (reported in the train-step metrics); the run's ledger stays right."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import subprocess
import sys
import time

import msgspec
import zmq

from lppo.core.config import load_config
from lppo.core.transport import Endpoints
from lppo.core.wire import Array, Heartbeat, RolloutGroup, WorkRequest, encode
from store.check import check_run
from store.queries import LedgerReader
from tests.conftest import ROOT
from tests.integration.run_files import small_run_config, write_task

FRAMES = 10_000
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def _frames(seed: int, n: int) -> list[bytes]:
    rng = random.Random(seed)
    valid = [
        encode(Heartbeat(actor_id="fuzz", policy_version=0)),
        encode(WorkRequest(actor_id="fuzz", slots=1)),
        encode(RolloutGroup(attempt_id="x", sample_id=1, actor_id="fuzz", policy_version=0,
                            prompt_ids=Array.of([1, 2], "int32"), prefix_ids=Array.of([], "int32"),
                            prefix_ratio=0.0, prefix_len=0, completions=[], gen_seconds=0.0)),
        msgspec.msgpack.encode({"kind": "register", "v": 1, "actor_id": "fuzz"}),
    ]
    out = []
    for i in range(n):
        if i % 2 == 0:
            out.append(rng.randbytes(rng.randint(0, 300)))
            continue
        frame = bytearray(rng.choice(valid))
        for _ in range(rng.randint(1, 6)):
            pos = rng.randrange(len(frame)) if frame else 0
            op = rng.random()
            if op < 0.5 and frame:
                frame[pos] ^= rng.randint(1, 255)
            elif op < 0.75:
                del frame[pos:]
            else:
                frame[pos:pos] = rng.randbytes(rng.randint(1, 8))
        out.append(bytes(frame))
    return out


def fuzz(ends: Endpoints, n: int) -> None:
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.IDENTITY, b"fuzz")
    dealer.connect(ends.work)
    push = ctx.socket(zmq.PUSH)
    push.connect(ends.rollouts)
    for i, frame in enumerate(_frames(0, n)):
        dealer.send(frame)
        push.send(frame)
        if i % 500 == 0:
            dealer.send_multipart([b"a", b"b", b"c"])  # wrong frame count
        while dealer.poll(0):  # the learner answers what decodes; a peer that never reads
            dealer.recv()      # its replies loses its own queued frames when it closes
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        if dealer.poll(100):
            dealer.recv()
    dealer.close(linger=-1)  # deliver everything before exiting
    push.close(linger=-1)
    ctx.term()


def test_learner_survives_garbage_on_every_socket_while_training(tiny_model, tmp_path):
    paths = write_task(tmp_path, train={1: 16, 2: 8}, held_out={1: 4})
    cfg_path = small_run_config(tmp_path, tiny_model, paths["train"], learner={
        "max_steps": 4, "batch_groups": 4, "group_size": 4, "lr": 1e-4, "checkpoint_every": 4,
        "device": "cpu"})
    cfg = load_config(cfg_path)
    ends = Endpoints.from_config(cfg.transport, cfg.run.run_dir)
    log = open(tmp_path / "learner.log", "w")  # noqa: SIM115 - the child writes to it; closed at the end
    learner = subprocess.Popen([sys.executable, "-m", "lppo.cli", "learner", str(cfg_path)],
                               cwd=ROOT, env=ENV, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while "learner listening" not in (tmp_path / "learner.log").read_text():
        assert time.monotonic() < deadline and learner.poll() is None, \
            (tmp_path / "learner.log").read_text()[-3000:]
        time.sleep(0.2)
    fuzzer = mp.get_context("spawn").Process(target=fuzz, args=(ends, FRAMES))
    fuzzer.start()
    fuzzer.join(timeout=300)
    assert fuzzer.exitcode == 0
    # Training starts after the flood, so the last step's counters include every frame.
    actor = subprocess.Popen([sys.executable, "-m", "lppo.cli", "actor", str(cfg_path),
                              "--actor-id", "a0"], cwd=ROOT, env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert learner.wait(timeout=420) == 0, (tmp_path / "learner.log").read_text()[-3000:]
        actor.wait(timeout=60)
    finally:
        for p in (learner, actor):
            if p.poll() is None:
                p.kill()
    with LedgerReader(str(cfg.run.run_dir)) as reader:
        steps = reader.steps("it")
        assert [s["step"] for s in steps] == [1, 2, 3, 4]
        rejected = {k: v for k, v in steps[-1]["metrics"].items() if k.startswith("wire/")}
        assert sum(rejected.values()) >= 0.9 * 2 * FRAMES, rejected
        assert {"wire/rejected_syntax", "wire/rejected_framing"} <= set(rejected)
        trained = reader.sql("SELECT COUNT(*) FROM rollout_groups WHERE used_in_step IS NOT NULL "
                             "AND actor_id = 'fuzz'").rows[0][0]
        assert trained == 0
        assert check_run(reader, "it") == []
