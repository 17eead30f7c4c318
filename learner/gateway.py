"""The learner's side of the actor protocol: registry, work serving, acks, weight notices.

    gateway = ActorGateway(sockets, work_source, peer_timeout_s)
    groups = gateway.poll(timeout_ms)      # answers control messages, returns new groups
    ... record groups in the ledger ...
    gateway.ack(groups)                    # only now may the actors forget them
    gateway.publish(WeightsReady(...))     # repeated until every live actor runs it

What it decides: nothing about *which* work to hand out (that is the scheduler's
`work_source(actor_id, slots) -> list[WorkItem]`), only the protocol:

- An actor is known from its Register, or from any message when the learner restarted and
  does not know it yet: it gets a Welcome with this learner's `epoch`, so it resends every
  group the previous learner never acknowledged.
- Heartbeats are answered (an empty Ack) so actors can tell a live learner from a dead one.
- Weight notices go out on PUB, which drops messages sent before a subscriber has joined;
  the gateway repeats the newest notice every `republish_s` until every live actor has
  answered WeightsLoaded for it (or refused it: a refusal is logged and counted, the actor
  keeps its old version).
- An actor silent for `peer_timeout_s` is dropped from the registry and reported by
  `take_lost()`, so the scheduler can release the work it held.
- `collective` weights (`weight_sync`, learner/collective.py): a WeightsPull is handed to it;
  a failed collective load is reported to it, and the file notices it falls back to are
  published here (never one older than the newest notice), refusals of that version cleared.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from lppo.core.transport import LearnerSockets
from lppo.core.wire import (
    Ack,
    Heartbeat,
    Register,
    RolloutGroup,
    Shutdown,
    WeightsLoaded,
    WeightsPull,
    WeightsReady,
    Welcome,
    Work,
    WorkItem,
    WorkRequest,
)

log = logging.getLogger(__name__)

WorkSource = Callable[[str, int], list[WorkItem]]
METRIC_PREFIXES = ("actor/", "reward/")
"""The metric names an actor may report; the learner's own (`train/`, `batch/`, ...) are not
an actor's to set."""


class WeightSync(Protocol):
    """What the gateway needs from an in-memory weight backend (learner/collective.py)."""

    def pull(self, actor_id: str, key: str, world_size: int) -> None: ...

    def failed(self, actor_id: str, version: int, reason: str) -> None: ...

    def take_fallbacks(self) -> list[WeightsReady]: ...


def actor_metrics(reported: dict[str, float]) -> dict[str, float]:
    """An actor's heartbeat metrics, keeping only its own namespaces and finite numbers."""
    return {k: float(v) for k, v in reported.items()
            if k.startswith(METRIC_PREFIXES) and math.isfinite(v)}


@dataclass
class ActorInfo:
    actor_id: str
    peer: bytes
    engine: str = ""
    capacity: int = 0
    version: int = 0
    last_seen: float = field(default_factory=time.monotonic)
    inflight: int = 0
    refused: dict[int, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    """Latest cumulative counters from the actor's heartbeat."""


class ActorGateway:
    """Serves actors over the learner's sockets; see the module docstring."""

    def __init__(
        self,
        sockets: LearnerSockets,
        work_source: WorkSource,
        peer_timeout_s: float = 30.0,
        heartbeat_s: float = 5.0,
        republish_s: float = 1.0,
        policy_version: int = 0,
        max_slots: int = 32,
        weights: WeightsReady | None = None,
        weight_sync: WeightSync | None = None,
    ):
        self.socks = sockets
        self.weight_sync = weight_sync
        self.max_slots = max_slots
        """Most work items one actor may hold (`actor.slots`): a peer registering or asking
        for more gets this many, so no peer can take every admission slot."""
        self.work_source = work_source
        self.peer_timeout_s = peer_timeout_s
        self.heartbeat_s = heartbeat_s
        self.republish_s = republish_s
        self.epoch = uuid.uuid4().hex[:12]
        self.policy_version = policy_version
        self.actors: dict[str, ActorInfo] = {}
        self.latest: WeightsReady | None = weights
        """The newest weights: sent in every Welcome (an actor that outlived the previous
        learner loads them whatever their version) and republished until loaded."""
        self._last_publish = 0.0
        self._lost: list[str] = []
        self.weight_refusals = 0

    # -- receiving ---------------------------------------------------------------------------

    def poll(self, timeout_ms: int = 0) -> list[RolloutGroup]:
        """Handle pending control messages and return the rollout groups that arrived."""
        got = self.socks.work.recv(timeout_ms=timeout_ms)
        while got is not None:
            self._on_control(got.peer, got.msg)
            got = self.socks.work.recv(timeout_ms=0)
        groups = []
        received = self.socks.rollouts.recv(timeout_ms=0)
        while received is not None:
            if isinstance(received.msg, RolloutGroup):
                groups.append(received.msg)
                self._touch(received.msg.actor_id)
            else:
                log.warning("rollouts socket: ignoring %s", type(received.msg).__name__)
            received = self.socks.rollouts.recv(timeout_ms=0)
        if self.weight_sync is not None:
            for notice in self.weight_sync.take_fallbacks():
                self._publish_fallback(notice)
        now = time.monotonic()
        self._republish(now)
        self._expire(now)
        return groups

    def _on_control(self, peer: bytes, msg) -> None:
        actor_id = getattr(msg, "actor_id", None)
        if actor_id is None:
            log.warning("work socket: ignoring %s from %r", type(msg).__name__, peer)
            return
        if peer != actor_id.encode():
            log.warning("work socket: %s claims actor_id %r; ignored", peer, actor_id)
            return
        known = actor_id in self.actors
        if isinstance(msg, Register) or not known:
            self._register(peer, msg)
            if isinstance(msg, Register):
                return
        info = self.actors[actor_id]
        info.last_seen = time.monotonic()
        if isinstance(msg, WorkRequest):
            items = self.work_source(actor_id, min(msg.slots, info.capacity))
            info.inflight += len(items)
            self._send(info, Work(items=items, policy_version=self.policy_version))
        elif isinstance(msg, Heartbeat):
            info.inflight = msg.inflight
            info.metrics = actor_metrics(msg.metrics)
            self._send(info, Ack())
        elif isinstance(msg, WeightsLoaded):
            self._on_weights_loaded(info, msg)
        elif isinstance(msg, WeightsPull):
            if self.weight_sync is None:
                log.warning("actor %s pulled weights, but this learner has no collective "
                            "backend; ignored", actor_id)
            else:
                self.weight_sync.pull(actor_id, msg.key, msg.world_size)
        else:
            log.warning("work socket: unexpected %s from %s", type(msg).__name__, actor_id)

    def _register(self, peer: bytes, msg) -> None:
        actor_id = msg.actor_id
        info = ActorInfo(actor_id=actor_id, peer=peer, capacity=self.max_slots)
        if isinstance(msg, Register):  # else known from another message: the usual share
            info.engine, info.capacity = msg.engine, min(msg.capacity, self.max_slots)
        if actor_id in self.actors:
            log.info("actor %s registered again (restarted or reconnected)", actor_id)
            self._lost.append(actor_id)
        else:
            log.info("actor %s registered (%s, capacity %d)", actor_id, info.engine, info.capacity)
        self.actors[actor_id] = info
        self._send(info, Welcome(
            epoch=self.epoch, policy_version=self.policy_version, weights=self.latest,
            heartbeat_s=self.heartbeat_s,
        ))

    def _on_weights_loaded(self, info: ActorInfo, msg: WeightsLoaded) -> None:
        if msg.ok:
            info.version = max(info.version, msg.version)
            log.info("actor %s runs weights v%d (loaded in %.2f s)", info.actor_id, msg.version,
                     msg.seconds)
        elif msg.version not in info.refused:
            info.refused[msg.version] = msg.reason
            self.weight_refusals += 1
            log.error("actor %s refused weights v%d: %s", info.actor_id, msg.version, msg.reason)
            if self.weight_sync is not None:  # a file may still serve it
                self.weight_sync.failed(info.actor_id, msg.version, msg.reason)

    def _publish_fallback(self, notice: WeightsReady) -> None:
        if self.latest is not None and notice.version < self.latest.version:
            return  # newer weights are out: actors behind will load those
        for info in self.actors.values():
            info.refused.pop(notice.version, None)
        self.publish(notice)

    def _touch(self, actor_id: str) -> None:
        info = self.actors.get(actor_id)
        if info is not None:
            info.last_seen = time.monotonic()

    def _expire(self, now: float) -> None:
        for actor_id, info in list(self.actors.items()):
            if now - info.last_seen > self.peer_timeout_s:
                log.warning("actor %s silent for %.0f s: dropped", actor_id, now - info.last_seen)
                del self.actors[actor_id]
                self._lost.append(actor_id)

    def take_lost(self) -> list[str]:
        """Actors that went silent or re-registered since the last call (their work is void)."""
        lost, self._lost = self._lost, []
        return lost

    # -- sending -----------------------------------------------------------------------------

    def ack(self, groups: list[RolloutGroup]) -> None:
        """Acknowledge recorded groups to the actors that sent them."""
        by_actor: dict[str, list[str]] = {}
        for g in groups:
            by_actor.setdefault(g.actor_id, []).append(g.attempt_id)
        for actor_id, ids in by_actor.items():
            info = self.actors.get(actor_id)
            if info is not None:
                info.inflight = max(0, info.inflight - len(ids))
            peer = info.peer if info is not None else actor_id.encode()
            self.socks.work.send(Ack(attempt_ids=ids), to=peer, timeout_ms=0)

    def publish(self, notice: WeightsReady) -> None:
        """Announce a new policy version to every actor (repeated until loaded)."""
        self.latest = notice
        self.policy_version = notice.version
        self._last_publish = time.monotonic()
        self.socks.weights.send(notice, timeout_ms=0)

    def _republish(self, now: float) -> None:
        notice = self.latest
        if notice is None or now - self._last_publish < self.republish_s:
            return
        behind = [
            a for a in self.actors.values()
            if a.version < notice.version and notice.version not in a.refused
        ]
        if behind:
            self._last_publish = now
            self.socks.weights.send(notice, timeout_ms=0)

    def shutdown(self, reason: str = "") -> None:
        """Tell every actor to stop (directly, and on PUB for ones not yet registered)."""
        for info in self.actors.values():
            self._send(info, Shutdown(reason=reason))
        self.socks.weights.send(Shutdown(reason=reason), timeout_ms=0)

    def _send(self, info: ActorInfo, msg) -> None:
        if not self.socks.work.send(msg, to=info.peer, timeout_ms=0):
            log.warning("could not send %s to %s (gone or queue full)", type(msg).__name__,
                        info.actor_id)

    def versions(self) -> dict[str, int]:
        return {a.actor_id: a.version for a in self.actors.values()}
