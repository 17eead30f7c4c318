"""Two real processes exchange every message kind over real ZeroMQ sockets (tcp and ipc);
garbage sent to the learner's sockets is rejected, counted, and does not stop it."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import msgspec
import pytest
import zmq

from lppo.core.config import TransportConfig
from lppo.core.transport import Channel, Endpoints, LearnerSockets
from lppo.core.wire import Heartbeat, Register, Shutdown, encode
from lppo.testing.postgres import free_ports
from lppo.testing.wirecheck import actor_side, learner_side


def _tcp() -> TransportConfig:
    work, rollouts, weights = free_ports(3)
    return TransportConfig(work_port=work, rollout_port=rollouts, weights_port=weights)


def _exchange(cfg: TransportConfig, run_dir: Path) -> None:
    ends = Endpoints.from_config(cfg, run_dir)
    child = mp.get_context("spawn").Process(target=actor_side, args=(ends, cfg, "actor-7"))
    child.start()
    try:
        report = learner_side(ends, cfg, items=4, n=3)
    finally:
        child.join(timeout=20)
    assert child.exitcode == 0
    assert report.received == {
        "register": 1, "work_request": 1, "rollout_group": 4, "heartbeat": 1, "weights_loaded": 1,
    }
    assert report.sent["welcome"] == 1 and report.sent["work"] == 1
    assert report.sent["ack"] == 1 and report.sent["shutdown"] == 2
    assert report.sent["weights_ready"] >= 1
    assert report.rejected == 0


def test_every_message_kind_between_processes_over_tcp_loopback(tmp_path):
    _exchange(_tcp(), tmp_path)


def test_every_message_kind_between_processes_over_ipc(tmp_path):
    cfg = TransportConfig(scheme="ipc", ipc_dir=tmp_path / "sock")
    ends = Endpoints.from_config(cfg, tmp_path)
    assert ends.work.startswith("ipc://")
    _exchange(cfg, tmp_path)


def test_endpoints_bind_loopback_by_default(tmp_path):
    ends = Endpoints.from_config(TransportConfig(), tmp_path)
    assert ends.work == "tcp://127.0.0.1:5555"
    remote = Endpoints.for_learner("tcp://10.1.2.3:6000", TransportConfig())
    assert remote.work == "tcp://10.1.2.3:6000" and remote.rollouts == "tcp://10.1.2.3:5556"
    with pytest.raises(ValueError, match="expected tcp://HOST"):
        Endpoints.for_learner("http://x", TransportConfig())


def test_ipc_path_length_is_checked(tmp_path):
    cfg = TransportConfig(scheme="ipc", ipc_dir=tmp_path / ("d" * 120))
    with pytest.raises(ValueError, match="longer than 107 bytes"):
        Endpoints.from_config(cfg, tmp_path)


def _garbage_sender(ends: Endpoints) -> None:
    """A hostile peer: raw sockets sending junk, then one valid message on each."""
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(ends.work)
    push = ctx.socket(zmq.PUSH)
    push.connect(ends.rollouts)
    junk = [b"", b"\xc1", os.urandom(64), msgspec.msgpack.encode({"kind": "exec", "v": 1}),
            msgspec.msgpack.encode({"kind": "heartbeat", "v": 9, "actor_id": "x",
                                    "policy_version": 0}), b"x" * 5000]
    for frame in junk:
        dealer.send(frame)
        push.send(frame)
    dealer.send_multipart([b"two", b"frames"])
    dealer.send(encode(Register(actor_id="late", engine="test", capacity=1)))
    push.send(encode(Heartbeat(actor_id="late", policy_version=0)))
    time.sleep(0.5)
    dealer.close(linger=0)
    push.close(linger=0)
    ctx.term()


def test_learner_sockets_survive_garbage_and_count_it(tmp_path):
    cfg = _tcp().model_copy(update={"max_frame_mb": 0.004})  # ~4 KiB: the 5000-byte frame is too big
    ends = Endpoints.from_config(cfg, tmp_path)
    ctx = zmq.Context()
    socks = LearnerSockets.bind(ctx, ends, cfg)
    child = mp.get_context("spawn").Process(target=_garbage_sender, args=(ends,))
    child.start()
    try:
        got_work = socks.work.recv(timeout_ms=20_000)
        got_rollout = socks.rollouts.recv(timeout_ms=20_000)
    finally:
        child.join(timeout=20)
        socks.close()
        ctx.term()
    assert isinstance(got_work.msg, Register) and got_work.peer
    assert isinstance(got_rollout.msg, Heartbeat)
    assert sum(socks.work.rejected.values()) == 7
    assert sum(socks.rollouts.rejected.values()) == 6
    assert {"syntax", "kind", "version", "size", "framing"} <= set(socks.work.rejected)


def test_router_send_to_unknown_peer_reports_failure(tmp_path):
    ctx = zmq.Context()
    with Channel(ctx, zmq.ROUTER, bind="tcp://127.0.0.1:*") as router:
        assert router.address.startswith("tcp://127.0.0.1:")
        assert router.send(Shutdown(), to=b"nobody") is False
        with pytest.raises(ValueError, match="needs the peer identity"):
            router.send(Shutdown())
    ctx.term()


def test_recv_times_out_without_peers():
    ctx = zmq.Context()
    with Channel(ctx, zmq.PULL, bind="tcp://127.0.0.1:*") as pull:
        start = time.monotonic()
        assert pull.recv(timeout_ms=200) is None
        assert 0.15 < time.monotonic() - start < 2
    ctx.term()


def test_a_message_larger_than_a_frame_is_refused_by_the_socket():
    """ZMQ_MAXMSGSIZE: an oversized message is cut off before it is buffered whole (the
    decoder's frame check alone came after a 400 MiB frame had been received)."""
    (port,) = free_ports(1)
    ctx = zmq.Context()
    limit = 1 << 20
    pull = Channel(ctx, zmq.PULL, bind=f"tcp://127.0.0.1:{port}", max_frame_bytes=limit,
                   name="pull")
    try:
        assert pull.sock.getsockopt(zmq.MAXMSGSIZE) > limit
        big = ctx.socket(zmq.PUSH)
        big.connect(f"tcp://127.0.0.1:{port}")
        big.send(b"x" * (4 * limit))
        assert pull.recv(timeout_ms=1500) is None
        big.close(linger=0)
        small = ctx.socket(zmq.PUSH)
        small.connect(f"tcp://127.0.0.1:{port}")
        small.send(encode(Heartbeat(actor_id="a", policy_version=0)))
        got = pull.recv(timeout_ms=5000)
        assert got is not None and isinstance(got.msg, Heartbeat)  # the socket still serves
        small.close(linger=0)
    finally:
        pull.close()
        ctx.term()
