"""The actor process: turn work items into verified rollout groups, keep the engine busy.

One thread runs this loop; verification runs on the reward pool's threads (each call is one
round trip to a math-verify worker process), so the engine keeps stepping while groups are
verified:

    loop:
        read control messages        Welcome, Work, Ack, Shutdown (DEALER); WeightsReady (SUB)
        keep `actor.slots` items in flight: ask for work (WorkRequest) when slots are free
        add queued items to the engine, unless a weight update is draining it
        engine.step()                 finished requests -> reward pool (async)
        verified groups -> outbox -> PUSH to the learner; resend what was not acked in time
        weight update: once the engine is drained, load vN in place, reply WeightsLoaded
        heartbeat; if the learner is silent past `transport.peer_timeout_s`, register again
        with backoff, and on a new learner epoch resend every unacknowledged group, drop work
        queued for the old learner and load the new one's weights whatever their version

A mixed group (`WorkItem.guided` < n) is two engine requests, the prompt with the prefix for
the guided completions and without it for the rest; the group is verified once both are done,
each completion marked `unguided` or not. Every group carries the policy version it was
sampled with. A weight update drains the engine
first (in-flight requests finish on the old weights, no new ones start), so a group never mixes
versions. Work handed out for newer weights than the actor runs (`Work.policy_version`: the
learner announces weights before it admits work for them, and the notice travels on another
socket) waits in the queue until they are loaded, so it is not sampled with an older policy
and then dropped as stale; if the actor refused those weights (bad digest), it goes on with
its own. Exit is clean on `Shutdown` (either socket) or SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

from actor.engine import Engine, GenResult
from actor.groups import engine_requests, rollout_group, samples_of
from actor.outbox import Outbox, backoff_delay
from actor.prompts import PromptBuilder, PromptError
from lppo.core import weightsync
from lppo.core.config import Config
from lppo.core.transport import ActorSockets
from lppo.core.weightfiles import WeightsError, verified_path
from lppo.core.wire import (
    Ack,
    Array,
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


@dataclass
class _InFlight:
    """A work item from the moment the engine got it until its group is verified."""

    item: WorkItem
    prompt_ids: list[int]
    prefix_ids: list[int]
    version: int
    started: float
    parts: dict[str, GenResult | None] = field(default_factory=dict)
    """Engine request id -> its result (None until finished): `actor.groups.engine_requests`."""
    gen_seconds: float = 0.0
    verify: Future | None = None
    verify_started: float = 0.0


@dataclass
class ActorStats:
    groups_sent: int = 0
    completions: int = 0
    tokens: int = 0
    invalid_items: int = 0
    weight_loads: int = 0
    weight_refusals: int = 0
    reconnects: int = 0
    started: float = field(default_factory=time.monotonic)


class Actor:
    """The actor loop over an engine, a reward pool and the actor's sockets."""

    def __init__(self, cfg: Config, actor_id: str, engine: Engine, pool, sockets: ActorSockets,
                 learner_host: str = "127.0.0.1"):
        self.cfg = cfg
        self.learner_host = learner_host
        """Where this actor reaches the learner (`collective` weights: its store)."""
        self.actor_id = actor_id
        self.engine = engine
        self.pool = pool
        self.socks = sockets
        self.prompts = PromptBuilder(engine.tokenizer(), cfg.data, cfg.model.max_model_len)
        self.outbox: Outbox[RolloutGroup] = Outbox(cfg.actor.buffer_groups, cfg.transport.peer_timeout_s)
        self.stats = ActorStats()
        self.version = 0
        self.epoch: str | None = None
        self.queue: deque[WorkItem] = deque()
        self.inflight: dict[str, _InFlight] = {}
        self._requests: dict[str, str] = {}
        """Engine request id -> attempt id (a mixed group has two requests)."""
        self.pending_weights: WeightsReady | None = None
        self.session = uuid.uuid4().hex[:8]
        self._pulls = 0
        """`collective` weights: pulls so far; each pull's group is `actor/session/n`."""
        self.required_version = 0
        """Newest policy version work was handed out for (see the module docstring)."""
        self.refused_version = -1
        self.foreign_weights = False
        """The running weights are a previous learner's: this learner's next notice is loaded
        whatever its version (set on a new epoch, cleared once its weights are loaded)."""
        self.stop = threading.Event()
        self._last_heard = 0.0
        self._registered = False
        self._register_attempts = 0
        self._next_register = 0.0
        self._work_requested_at: float | None = None
        self._next_work_request = 0.0
        self._next_heartbeat = 0.0

    # -- main loop ---------------------------------------------------------------------------

    def run(self) -> ActorStats:
        """Serve until Shutdown or a signal; returns the counters."""
        log.info("actor %s starting (engine %s, %d slots)", self.actor_id,
                 type(self.engine).__name__, self.cfg.actor.slots)
        while not self.stop.is_set():
            now = time.monotonic()
            self._keep_registered(now)
            busy = self.engine.has_unfinished() or self._verifying()
            self._read_messages(timeout_ms=0 if busy else 20)
            if self.stop.is_set():
                break
            self._ask_for_work(now)
            self._feed_engine()
            self._collect(self.engine.step())
            self._finish_verified()
            self._apply_weights_when_drained()
            self._flush(time.monotonic())
            self._heartbeat(time.monotonic())
        self._shutdown()
        return self.stats

    def free_slots(self) -> int:
        return self.cfg.actor.slots - len(self.queue) - len(self.inflight)

    # -- learner link ------------------------------------------------------------------------

    def _keep_registered(self, now: float) -> None:
        silent = now - self._last_heard > self.cfg.transport.peer_timeout_s
        if self._registered and silent:
            log.warning("learner silent for %.0f s; registering again", now - self._last_heard)
            self._registered = False
            self._register_attempts = 0
            self._next_register = now
            self.stats.reconnects += 1
        if not self._registered and now >= self._next_register:
            self.socks.work.send(Register(
                actor_id=self.actor_id, engine=type(self.engine).__name__,
                capacity=self.cfg.actor.slots,
            ), timeout_ms=0)
            self._next_register = now + backoff_delay(self._register_attempts)
            self._register_attempts += 1

    def _read_messages(self, timeout_ms: int) -> None:
        got = self.socks.work.recv(timeout_ms=timeout_ms)
        while got is not None:
            self._last_heard = time.monotonic()
            self._handle(got.msg)
            got = self.socks.work.recv(timeout_ms=0)
        notice = self.socks.weights.recv(timeout_ms=0)
        while notice is not None:
            self._handle(notice.msg)
            notice = self.socks.weights.recv(timeout_ms=0)

    def _handle(self, msg) -> None:
        if isinstance(msg, Welcome):
            self._on_welcome(msg)
        elif isinstance(msg, Work):
            self._work_requested_at = None
            self.queue.extend(msg.items)
            if msg.items:
                self.required_version = max(self.required_version, msg.policy_version)
            else:  # admission says wait: do not ask again at once
                self._next_work_request = time.monotonic() + 0.2
        elif isinstance(msg, Ack):
            self.outbox.ack(list(msg.attempt_ids))
        elif isinstance(msg, WeightsReady):
            newer = self.pending_weights is None or msg.version > self.pending_weights.version
            if (msg.version > self.version or self.foreign_weights) and newer:
                self.pending_weights = msg
        elif isinstance(msg, Shutdown):
            log.info("shutdown requested by the learner: %s", msg.reason or "(no reason)")
            self.stop.set()
        else:
            log.warning("ignoring unexpected %s from the learner", type(msg).__name__)

    def _on_welcome(self, msg: Welcome) -> None:
        restarted = self.epoch is not None and msg.epoch != self.epoch
        self._registered = True
        self._register_attempts = 0
        self._work_requested_at = None
        if restarted or self.epoch is None:
            self.outbox.mark_all_unsent()
        self.epoch = msg.epoch
        log.info("registered with learner epoch %s (policy v%d)%s", msg.epoch, msg.policy_version,
                 "; learner restarted, resending unacknowledged groups" if restarted else "")
        if restarted:
            # A new learner (restarted, maybe from an older checkpoint or from scratch): work
            # queued for the previous one will never be accepted, and its weights, whatever
            # their version, are not this learner's. Load the learner's own.
            self.queue.clear()
            self.required_version, self.refused_version = 0, -1
            self.foreign_weights = True
            self.pending_weights = msg.weights
            return
        if msg.weights is not None:
            self._handle(msg.weights)

    def _ask_for_work(self, now: float) -> None:
        if (not self._registered or self.pending_weights is not None or self.foreign_weights
                or now < self._next_work_request):
            return
        if self._work_requested_at is not None and now - self._work_requested_at < 5.0:
            return  # one request outstanding; re-ask only if its reply got lost
        slots = self.free_slots()
        if slots > 0 and self.socks.work.send(
            WorkRequest(actor_id=self.actor_id, slots=slots), timeout_ms=0
        ):
            self._work_requested_at = now

    def _heartbeat(self, now: float) -> None:
        if now < self._next_heartbeat:
            return
        self._next_heartbeat = now + self.cfg.transport.heartbeat_s
        self.socks.work.send(Heartbeat(
            actor_id=self.actor_id, policy_version=self.version,
            inflight=len(self.inflight) + len(self.queue), buffered=len(self.outbox),
            sent_at=time.time(), metrics=self.metrics(),
        ), timeout_ms=0)

    def metrics(self) -> dict[str, float]:
        """Cumulative counters: the actor's own and the reward pool's (`reward/...`)."""
        s = self.stats
        own = {
            "actor/groups_sent": s.groups_sent, "actor/completions": s.completions,
            "actor/tokens": s.tokens, "actor/invalid_items": s.invalid_items,
            "actor/weight_loads": s.weight_loads, "actor/weight_refusals": s.weight_refusals,
            "actor/reconnects": s.reconnects, "actor/groups_resent": self.outbox.resent,
            "actor/groups_lost_buffer_full": self.outbox.dropped,
            "actor/uptime_s": time.monotonic() - s.started,
        }
        return {**own, **{k: float(v) for k, v in self.pool.metrics().items()}}

    # -- generation --------------------------------------------------------------------------

    def weights_behind(self) -> bool:
        """Queued work is for newer weights than these, and they were not refused."""
        return self.required_version > max(self.version, self.refused_version)

    def _feed_engine(self) -> None:
        while self.queue and self.pending_weights is None and not self.weights_behind():
            item = self.queue.popleft()
            try:
                prompt, prefix = self.prompts.context(item)
            except PromptError as exc:
                self._reject_item(item, str(exc))
                continue
            flight = _InFlight(item=item, prompt_ids=prompt, prefix_ids=prefix,
                               version=self.version, started=time.monotonic())
            self.inflight[item.attempt_id] = flight
            for request in engine_requests(item, prompt, prefix):
                flight.parts[request.request_id] = None
                self._requests[request.request_id] = item.attempt_id
                self.engine.add(request)

    def _reject_item(self, item: WorkItem, reason: str) -> None:
        log.warning("work item %s rejected: %s", item.attempt_id, reason)
        self.stats.invalid_items += 1
        empty = Array.of([], "int32")
        self._emit(RolloutGroup(
            attempt_id=item.attempt_id, sample_id=item.sample_id, actor_id=self.actor_id,
            policy_version=self.version, prompt_ids=empty, prefix_ids=empty,
            prefix_ratio=item.prefix_ratio, prefix_len=0, completions=[], gen_seconds=0.0,
            error=reason,
        ))

    def _collect(self, results: list[GenResult]) -> None:
        for result in results:
            flight = self.inflight.get(self._requests.pop(result.request_id, ""))
            if flight is None:
                log.warning("engine returned unknown request %s", result.request_id)
                continue
            flight.parts[result.request_id] = result
            if any(part is None for part in flight.parts.values()):
                continue  # the other half of a mixed group is still sampling
            flight.gen_seconds = time.monotonic() - flight.started
            # The completion alone is verified: the expert's prefix is context, never part of
            # the answer (a completion that writes nothing after a prefix is not correct).
            samples = [x for x, _ in samples_of(flight.parts)]
            flight.verify_started = time.monotonic()
            flight.verify = self.pool.submit(flight.item.answer, [x.text for x in samples],
                                             [x.finish_reason for x in samples])

    def _verifying(self) -> bool:
        return any(f.verify is not None for f in self.inflight.values())

    def _finish_verified(self) -> None:
        done = [f for f in self.inflight.values() if f.verify is not None and f.verify.done()]
        for flight in done:
            del self.inflight[flight.item.attempt_id]
            scored = flight.verify.result()  # a pool failure is a bug: let it propagate
            self._emit(self._group(flight, scored))

    def _group(self, flight: _InFlight, scored: list) -> RolloutGroup:
        group = rollout_group(flight.item, self.actor_id, flight.version, flight.prompt_ids,
                              flight.prefix_ids, flight.parts, scored, flight.gen_seconds,
                              time.monotonic() - flight.verify_started)
        self.stats.tokens += sum(c.token_ids.shape[0] for c in group.completions)
        self.stats.completions += len(group.completions)
        return group

    # -- delivery ----------------------------------------------------------------------------

    def _emit(self, group: RolloutGroup) -> None:
        for lost in self.outbox.add(group.attempt_id, group):
            log.warning("outbox full (%d groups): dropped unacknowledged group %s",
                        self.outbox.capacity, lost)
        self._flush(time.monotonic())

    def _flush(self, now: float) -> None:
        for key, group in self.outbox.due(now):
            if not self.socks.rollouts.send(group, timeout_ms=0):
                break  # high-water mark: the rest waits for the next round
            self.outbox.mark_sent(key, now)
        self.stats.groups_sent = self.outbox.sent

    # -- weights -----------------------------------------------------------------------------

    def _apply_weights_when_drained(self) -> None:
        notice = self.pending_weights
        if notice is None or self.engine.has_unfinished():
            return
        self.pending_weights = None
        start = time.monotonic()
        try:
            if weightsync.is_collective(notice.uri):
                version = self._pull(notice)
            else:
                self.engine.load_weights(str(verified_path(notice)))
                version = notice.version
        except WeightsError as exc:
            self.stats.weight_refusals += 1
            self.refused_version = max(self.refused_version, notice.version)
            log.error("refusing weights v%d, keeping v%d: %s", notice.version, self.version, exc)
            self._reply_weights(notice.version, False, str(exc), start)
            return
        self.version = version
        self.foreign_weights = False
        self.stats.weight_loads += 1
        log.info("loaded weights v%d in %.2f s", version, time.monotonic() - start)
        self._reply_weights(version, True, "", start)

    def _pull(self, notice: WeightsReady) -> int:
        """Receive the learner's newest weights over a weight group of this pull's own and
        return their version."""
        host, port, backend = weightsync.address(notice.uri)
        host = weightsync.reachable(host, self.learner_host)
        self._pulls += 1
        key = f"{self.actor_id}/{self.session}/{self._pulls}"
        self.socks.work.send(WeightsPull(actor_id=self.actor_id, key=key,
                                         world_size=self.engine.sync_world_size()), timeout_ms=0)
        version, digest = self.engine.pull_weights(
            host, port, key, backend, self.cfg.learner.weights_sync_timeout_s)
        if version < notice.version or (version == notice.version and digest != notice.sha256):
            raise WeightsError(f"weights over the group: got v{version} ({digest[:12]}...), "
                               f"announced v{notice.version} ({notice.sha256[:12]}...)")
        return version

    def _reply_weights(self, version: int, ok: bool, reason: str, start: float) -> None:
        self.socks.work.send(WeightsLoaded(
            actor_id=self.actor_id, version=version, ok=ok, reason=reason,
            seconds=time.monotonic() - start,
        ), timeout_ms=0)

    # -- exit --------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        self.engine.abort_all()
        self._requests.clear()
        deadline = time.monotonic() + 1.0
        while self._verifying() and time.monotonic() < deadline:
            time.sleep(0.01)
            self._finish_verified()
        self._flush(time.monotonic())
        log.info("actor %s stopping: %d groups sent, %d unacknowledged", self.actor_id,
                 self.stats.groups_sent, len(self.outbox))


def new_actor_id() -> str:
    return f"actor-{uuid.uuid4().hex[:8]}"
