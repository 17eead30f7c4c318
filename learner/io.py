"""The learner's I/O thread: sockets, scheduling decisions, ledger records, acks.

The training loop runs on the main thread and may block for seconds to minutes in a step;
actors must still get work, have their groups received and recorded, and have their heartbeats
answered meanwhile. So everything that talks to actors lives on this thread (ZeroMQ sockets
are not thread-safe: they are created, used and closed here only):

    loop:
        commands from the main thread      publish weights, shut actors down
        gateway.poll()                     Register/WorkRequest/Heartbeat/WeightsLoaded
                                           (work comes from `scheduler.next_items`)
        arrived groups -> scheduler.on_groups -> GroupRecords -> ledger
        flush the ledger writer, then ack  (a group is acknowledged once it is durable)
        accepted groups -> the trainer's queue

The scheduler is shared with the main thread (version bumps, checkpoints) and guards itself
(`learner/scheduler.py`, "Threads"). What this thread counts (drops, actors' metrics, rejected
frames) it guards with its own lock; the main thread reads copies through `dropped()`,
`actor_metrics()` and `rejected_frames()`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import zmq

from learner.algo.overlong import shaping
from learner.gateway import ActorGateway, WeightSync
from learner.scheduler import Decision, Scheduler
from lppo.core.config import Config
from lppo.core.transport import Endpoints, LearnerSockets
from lppo.core.wire import WeightsReady
from store.records import group_from_wire
from store.writer import LedgerWriter

log = logging.getLogger(__name__)


class LearnerIO(threading.Thread):
    """See the module docstring. Start it, read `accepted`, call `publish`, then `stop()`."""

    def __init__(self, cfg: Config, scheduler: Scheduler, writer: LedgerWriter,
                 policy_version: int = 0,
                 weights: WeightsReady | None = None,
                 weight_sync: WeightSync | None = None):
        super().__init__(name="learner-io", daemon=True)
        self.cfg = cfg
        self.weight_sync = weight_sync
        """The `collective` backend's pull server (learner/collective.py), or None."""
        self.weights = weights
        """The weights in use at start: in every Welcome from the first one on."""
        self.scheduler = scheduler
        self._lock = threading.Lock()
        """Guards what this thread counts and the main thread reads: `_dropped`,
        `_actor_metrics`, `_rejected`."""
        self.writer = writer
        self.policy_version = policy_version
        self.accepted: queue.Queue[Decision] = queue.Queue()
        self._dropped: dict[str, int] = {}
        """Groups dropped so far, by reason."""
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._commands: queue.Queue = queue.Queue()
        self._halt = threading.Event()
        self._actor_metrics: dict[str, dict[str, float]] = {}
        self._rejected: dict[str, int] = {}

    # -- main-thread API ---------------------------------------------------------------------

    def publish(self, notice: WeightsReady) -> threading.Event:
        """Announce new weights; the event is set once the I/O thread has sent the notice
        (from then on, work it hands out says this version)."""
        done = threading.Event()
        self._commands.put(("publish", (notice, done)))
        return done

    def stop(self, reason: str = "learner stopping", timeout: float = 10.0) -> None:
        """Tell actors to shut down (if asked), stop the thread and re-raise its error."""
        self._commands.put(("shutdown", reason))
        self._halt.set()
        self.join(timeout)
        if self.error is not None:
            raise RuntimeError("learner I/O thread failed") from self.error

    def actor_metrics(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {k: dict(v) for k, v in self._actor_metrics.items()}

    def rejected_frames(self) -> dict[str, int]:
        """Frames rejected so far on the learner's sockets, by reason (`size`, `syntax`, ...)."""
        with self._lock:
            return dict(self._rejected)

    def dropped(self) -> dict[str, int]:
        """Groups dropped so far, by reason (a copy, taken under the lock)."""
        with self._lock:
            return dict(self._dropped)

    def check(self) -> None:
        """Raise in the main thread if the I/O thread died."""
        if self.error is not None:
            raise RuntimeError("learner I/O thread failed") from self.error

    # -- the thread --------------------------------------------------------------------------

    def run(self) -> None:
        ctx = zmq.Context()
        socks = None
        try:
            ends = Endpoints.from_config(self.cfg.transport, self.cfg.run.run_dir)
            socks = LearnerSockets.bind(ctx, ends, self.cfg.transport)
            log.info("learner listening: work %s, rollouts %s, weights %s",
                     ends.work, ends.rollouts, ends.weights)
            gateway = ActorGateway(
                socks, self._work_source, peer_timeout_s=self.cfg.transport.peer_timeout_s,
                heartbeat_s=self.cfg.transport.heartbeat_s, policy_version=self.policy_version,
                max_slots=self.cfg.actor.slots, weights=self.weights,
                weight_sync=self.weight_sync,
            )
            self.ready.set()
            self._serve(gateway)
        except BaseException as exc:  # reported to the main thread by check()/stop()
            log.exception("learner I/O thread failed")
            self.error = exc
            self.ready.set()
        finally:
            if socks is not None:
                socks.close()
            ctx.term()

    def _serve(self, gateway: ActorGateway) -> None:
        shutdown_reason = None
        while True:
            shutdown_reason = self._run_commands(gateway) or shutdown_reason
            if self._halt.is_set():
                gateway.shutdown(shutdown_reason or "learner stopping")
                time.sleep(0.2)  # let the shutdown frames leave before LINGER 0 closes
                return
            groups = gateway.poll(timeout_ms=20)
            for actor_id in gateway.take_lost():
                self.scheduler.on_actor_lost(actor_id)
            self.scheduler.expire(self.cfg.transport.work_timeout_s)
            if groups:
                self._record(groups)
                gateway.ack(groups)
            with self._lock:
                self._actor_metrics = {a.actor_id: a.metrics for a in gateway.actors.values()}
                self._rejected = {}
                for ch in (gateway.socks.work, gateway.socks.rollouts):
                    for reason, count in ch.rejected.items():
                        self._rejected[reason] = self._rejected.get(reason, 0) + count

    def _run_commands(self, gateway: ActorGateway) -> str | None:
        reason = None
        while True:
            try:
                name, arg = self._commands.get_nowait()
            except queue.Empty:
                return reason
            if name == "publish":
                notice, done = arg
                gateway.publish(notice)
                done.set()
            elif name == "shutdown":
                reason = arg

    def _work_source(self, actor_id: str, slots: int):
        return self.scheduler.next_items(actor_id, slots)

    def _record(self, groups) -> None:
        decisions, step = self.scheduler.on_groups(groups)
        with self._lock:
            for d in decisions:
                if d.reason is not None and not d.duplicate:
                    self._dropped[d.reason] = self._dropped.get(d.reason, 0) + 1
        for d in decisions:
            if not d.duplicate:
                # `lp_weight` stays empty here: the train step that uses the group writes the
                # weight it applied (renormalised over its batch), see `learner.loop`. The
                # shaping of each completion is the one `learner.assemble` will apply.
                comps = d.group.completions
                shaped, masked = shaping([c.token_ids.numpy().size for c in comps],
                                         [c.finish_reason for c in comps], self.cfg)
                self.writer.put_group(group_from_wire(
                    d.group, step_seen=step, dropped_reason=d.reason, state=d.state,
                    selection=d.dispatch.selection, selection_score=d.dispatch.score,
                    overlong_penalties=shaped, loss_masked=masked))
        self.writer.flush()  # durable before the actors are told they may forget the groups
        for d in decisions:
            if d.accepted:
                self.accepted.put(d)
