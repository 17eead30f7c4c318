"""An end-to-end check of the wire protocol between a learner side and an actor side.

The two sides run in separate processes and exchange every message kind over the real socket
pairs of `lppo.core.transport`, in the order a run uses them:

    actor                                   learner
    Register          --DEALER/ROUTER-->
                      <--                   Welcome
    WorkRequest       -->
                      <--                   Work (k items, token-id arrays)
    RolloutGroup x k  --PUSH/PULL-->        (checked: arrays intact, ids match the work)
                      <--                   Ack (the k attempt ids)
    Heartbeat         -->
                      <--PUB/SUB--          WeightsReady (repeated until acknowledged)
    WeightsLoaded     -->
                      <--                   Shutdown (on ROUTER and PUB)

The transport integration tests run it over tcp:// and ipc://. The payloads are deterministic
functions of the work so the learner side can check every array that crossed the process
boundary.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import numpy as np
import zmq

from lppo.core.config import TransportConfig
from lppo.core.transport import ActorSockets, Endpoints, LearnerSockets
from lppo.core.wire import (
    Ack,
    Array,
    Completion,
    Heartbeat,
    Register,
    RolloutGroup,
    Shutdown,
    WeightsLoaded,
    WeightsReady,
    Welcome,
    Work,
    WorkItem,
    WorkRequest,
)


class WireCheckError(RuntimeError):
    """The exchange did not complete or a payload arrived altered."""


@dataclass
class WireReport:
    """What the learner side saw."""

    received: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    seconds: float = 0.0

    def count(self, table: dict[str, int], kind: str) -> None:
        table[kind] = table.get(kind, 0) + 1


def _expected_tokens(prompt: np.ndarray, index: int) -> np.ndarray:
    return (prompt[::-1] + index).astype(np.int32)


def _item(i: int, n: int) -> WorkItem:
    prompt = np.arange(10 * i, 10 * i + 16, dtype=np.int32)
    return WorkItem(
        attempt_id=f"check-{i}", sample_id=i, prompt_ids=Array.of(prompt, "int32"),
        prefix_ids=Array.of(prompt[:4], "int32"), prefix_ratio=0.25, n=n, answer=str(i),
    )


def actor_side(ends: Endpoints, cfg: TransportConfig, actor_id: str, timeout_s: float = 30) -> None:
    """Play the actor until Shutdown. Raises `WireCheckError` on a timeout."""
    ctx = zmq.Context()
    socks = ActorSockets.connect(ctx, ends, cfg, actor_id)
    deadline = time.monotonic() + timeout_s
    try:
        socks.work.send(Register(actor_id=actor_id, engine="wirecheck", capacity=4))
        welcome = _expect(socks.work, Welcome, deadline)
        socks.work.send(WorkRequest(actor_id=actor_id, slots=4))
        work = _expect(socks.work, Work, deadline)
        for item in work.items:
            socks.rollouts.send(_answer(item, actor_id, welcome.policy_version))
        ack = _expect(socks.work, Ack, deadline)
        if sorted(ack.attempt_ids) != sorted(it.attempt_id for it in work.items):
            raise WireCheckError(f"ack for {ack.attempt_ids}, sent {len(work.items)} groups")
        socks.work.send(Heartbeat(actor_id=actor_id, policy_version=0, sent_at=time.time()))
        notice = _expect(socks.weights, WeightsReady, deadline)
        socks.work.send(WeightsLoaded(actor_id=actor_id, version=notice.version, ok=True))
        _expect(socks.work, Shutdown, deadline)
    finally:
        socks.close()
        ctx.term()


def _answer(item: WorkItem, actor_id: str, version: int) -> RolloutGroup:
    prompt = item.prompt_ids.numpy()
    completions = [
        Completion(
            token_ids=Array.of(_expected_tokens(prompt, j), "int32"),
            logprobs=Array.of(np.full(prompt.size, -0.5 - j, dtype=np.float32), "float32"),
            text=f"so the answer is \\boxed{{{item.answer}}}", finish_reason="stop",
            reward=1.0, verdict="correct",
        )
        for j in range(item.n)
    ]
    return RolloutGroup(
        attempt_id=item.attempt_id, sample_id=item.sample_id, actor_id=actor_id,
        policy_version=version, prompt_ids=item.prompt_ids, prefix_ids=item.prefix_ids,
        prefix_ratio=item.prefix_ratio, prefix_len=item.prefix_ids.numpy().size,
        completions=completions, gen_seconds=0.01,
    )


def learner_side(
    ends: Endpoints, cfg: TransportConfig, items: int = 3, n: int = 4, timeout_s: float = 30
) -> WireReport:
    """Serve one actor through the whole exchange and check every payload it sent back."""
    ctx = zmq.Context()
    socks = LearnerSockets.bind(ctx, ends, cfg)
    report = WireReport()
    start = time.monotonic()
    deadline = start + timeout_s
    try:
        reg = _expect_routed(socks.work, Register, deadline, report)
        peer = reg.peer
        welcome = Welcome(epoch="wirecheck", policy_version=0, heartbeat_s=cfg.heartbeat_s)
        _send(socks.work, welcome, report, peer)
        _expect_routed(socks.work, WorkRequest, deadline, report)
        work = Work(items=[_item(i, n) for i in range(items)], policy_version=0)
        _send(socks.work, work, report, peer)
        for _ in range(items):
            group = _expect(socks.rollouts, RolloutGroup, deadline)
            report.count(report.received, "rollout_group")
            _check_group(group, work)
        _send(socks.work, Ack(attempt_ids=[it.attempt_id for it in work.items]), report, peer)
        _expect_routed(socks.work, Heartbeat, deadline, report)
        _publish_weights_until_acked(socks, report, deadline)
        _send(socks.work, Shutdown(reason="wirecheck done"), report, peer)
        _send(socks.weights, Shutdown(reason="wirecheck done"), report)
    finally:
        report.rejected = sum(
            sum(ch.rejected.values()) for ch in (socks.work, socks.rollouts, socks.weights)
        )
        socks.close()
        ctx.term()
    report.seconds = time.monotonic() - start
    return report


def _publish_weights_until_acked(socks: LearnerSockets, report: WireReport, deadline: float):
    # PUB/SUB drops messages sent before the subscription has propagated ("slow joiner"):
    # a notice is repeated until the actor acknowledges it, as the learner does in a run.
    digest = hashlib.sha256(b"wirecheck").hexdigest()
    notice = WeightsReady(version=1, uri="file:///dev/null", sha256=digest)
    while time.monotonic() < deadline:
        _send(socks.weights, notice, report)
        got = socks.work.recv(timeout_ms=100)
        if got is not None:
            if not isinstance(got.msg, WeightsLoaded) or got.msg.version != 1 or not got.msg.ok:
                raise WireCheckError(f"expected WeightsLoaded(version=1), got {got.msg!r}")
            report.count(report.received, "weights_loaded")
            return
    raise WireCheckError("timed out waiting for WeightsLoaded")


def _check_group(group: RolloutGroup, work: Work) -> None:
    items = {it.attempt_id: it for it in work.items}
    item = items.get(group.attempt_id)
    if item is None:
        raise WireCheckError(f"group for unknown attempt {group.attempt_id!r}")
    prompt = item.prompt_ids.numpy()
    if not np.array_equal(group.prompt_ids.numpy(), prompt) or len(group.completions) != item.n:
        raise WireCheckError(f"group {group.attempt_id}: prompt or completion count altered")
    for j, comp in enumerate(group.completions):
        if not np.array_equal(comp.token_ids.numpy(), _expected_tokens(prompt, j)):
            raise WireCheckError(f"group {group.attempt_id}: completion {j} tokens altered")
        if not np.allclose(comp.logprobs.numpy(), -0.5 - j):
            raise WireCheckError(f"group {group.attempt_id}: completion {j} logprobs altered")


def _send(channel, msg, report: WireReport, peer: bytes | None = None) -> None:
    if not channel.send(msg, to=peer, timeout_ms=5000):
        raise WireCheckError(f"{channel.name}: could not send {type(msg).__name__}")
    report.count(report.sent, msg.__struct_config__.tag)


def _expect(channel, kind: type, deadline: float):
    got = channel.recv(timeout_ms=max(0, int((deadline - time.monotonic()) * 1000)))
    if got is None:
        raise WireCheckError(f"{channel.name}: timed out waiting for {kind.__name__}")
    if not isinstance(got.msg, kind):
        raise WireCheckError(f"{channel.name}: expected {kind.__name__}, got {type(got.msg).__name__}")
    return got.msg


def _expect_routed(channel, kind: type, deadline: float, report: WireReport):
    got = channel.recv(timeout_ms=max(0, int((deadline - time.monotonic()) * 1000)))
    if got is None or not isinstance(got.msg, kind):
        raise WireCheckError(f"{channel.name}: expected {kind.__name__}, got {got!r}")
    report.count(report.received, kind.__struct_config__.tag)
    return got
