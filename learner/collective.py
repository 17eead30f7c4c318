"""The learner's side of the `collective` weight backend (rank 0 only).

    sync = CollectiveWeights(cfg)              # hosts the rendezvous store (transport.sync_port)
    notice = sync.offer(version, state)        # main thread, after a step: pack, announce
    sync.pull(actor_id, key, world_size)       # I/O thread, on WeightsPull: broadcast, in a thread
    sync.failed(actor_id, version, reason)     # I/O thread, on a failed collective load
    notices = sync.take_fallbacks()            # I/O thread: file notices to publish

It keeps the newest version packed in host memory (lppo/core/weightsync.py: the gathered
state dict is consumed into buckets, so the model is held once) and answers every pull with
it; the actor learns which version it got from the manifest. Each pull forms a process group
under the key the actor sent (over a store client of its own), broadcasts, meets the actor at
a barrier and drops the group, so no connection outlives its transfer and an actor that
restarted simply pulls again. Pulls run in a thread each (one at a time per actor
session: a restarted actor's pulls do not wait for a transfer to its dead predecessor, which
ends within `weights_sync_timeout_s`), so a slow or dead actor holds up neither the I/O thread
nor other actors. `close` waits for the transfers in flight before it drops the store.

Fallback: a transfer that fails (group not formed in time, actor gone mid-broadcast) or a load
the actor reports as failed is served from the filesystem instead: the packed version is
written as `weights/vN` (lppo/core/weightfiles.py) off the I/O thread, and its file notice is
handed to the I/O thread to publish. Each version falls back at most once; the counts go into
the step metrics (`weights/fallbacks`, `weights/collective_loads`).
"""

from __future__ import annotations

import logging
import threading
import time

from lppo.core import weightsync
from lppo.core.config import Config
from lppo.core.errors import one_line
from lppo.core.weightfiles import write_weights
from lppo.core.wire import WeightsReady

log = logging.getLogger(__name__)


class CollectiveWeights:
    """See the module docstring."""

    def __init__(self, cfg: Config, device: str = "cpu"):
        self.cfg = cfg
        self.host = "127.0.0.1" if cfg.transport.scheme == "ipc" else cfg.transport.host
        self.port = cfg.transport.sync_port
        self.device = device
        self.backend = weightsync.backend_for(device.split(":")[0])
        self.timeout_s = cfg.learner.weights_sync_timeout_s
        self.bucket_bytes = int(cfg.learner.weights_bucket_mb * 1024 * 1024)
        self.store = weightsync.server_store(self.host, self.port, self.timeout_s)
        self._local = "127.0.0.1" if self.host in weightsync.WILDCARDS else self.host
        """Where this process's pull threads reach the store."""
        self._lock = threading.Lock()
        """Guards `_current`, `_locks`, `_sessions`, `_fallbacks`, `_fell_back`, counters."""
        self._current: weightsync.Packed | None = None
        self._locks: dict[str, threading.Lock] = {}
        """Per actor session (`<actor_id>/<session>`): held while one of its pulls is served."""
        self._sessions: dict[str, str] = {}
        """Per actor: its current session (a new one: the actor started again)."""
        self._fallbacks: list[WeightsReady] = []
        self._fell_back: set[int] = set()
        self._threads: list[threading.Thread] = []
        """Pull threads started and not yet seen finished (`close` waits for them)."""
        self.loads = 0
        self.fallbacks = 0
        log.info("collective weights: rendezvous on %s:%d (%s)", self.host, self.port,
                 self.backend)

    # -- main thread -------------------------------------------------------------------------

    def offer(self, version: int, state: dict) -> WeightsReady:
        """Pack `state` (consumed) as the newest version and return its notice."""
        packed = weightsync.pack(state, version, self.bucket_bytes)
        with self._lock:
            self._current = packed
        return WeightsReady(version=version,
                            uri=weightsync.uri(self.host, self.port, self.backend),
                            sha256=packed.manifest.digest)

    def metrics(self) -> dict[str, float]:
        with self._lock:
            return {"weights/collective_loads": self.loads, "weights/fallbacks": self.fallbacks}

    def close(self) -> None:
        """Wait for pulls in flight (each ends within `weights_sync_timeout_s`), then drop the
        store (which closes its socket): no pull thread is left inside gloo or the store when
        the process exits."""
        with self._lock:
            self._current = None
            threads, self._threads = self._threads, []
        deadline = time.monotonic() + self.timeout_s + 5
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("weights: %s still running at close", thread.name)
        self.store = None

    # -- I/O thread --------------------------------------------------------------------------

    def pull(self, actor_id: str, key: str, world_size: int) -> None:
        """Serve one pull in a thread of its own (see the module docstring)."""
        session = key.rsplit("/", 1)[0]  # the actor's key: <actor_id>/<session>/<n>
        with self._lock:
            packed = self._current
            old = self._sessions.get(actor_id)
            if old != session:  # a restarted actor does not queue behind its dead self's pull
                self._sessions[actor_id] = session
                self._locks.pop(old or "", None)
            lock = self._locks.setdefault(session, threading.Lock())
        if old != session:
            log.info("actor %s joined the weight groups (session %s)", actor_id,
                     session.rsplit("/", 1)[-1])
        if packed is None:
            log.warning("actor %s pulled weights before any were offered; ignored", actor_id)
            return
        thread = threading.Thread(target=self._serve,
                                  args=(actor_id, lock, key, world_size, packed),
                                  name=f"weights-{actor_id}", daemon=True)
        with self._lock:  # started under the lock: `close` joins only started threads
            thread.start()
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def failed(self, actor_id: str, version: int, reason: str) -> None:
        """An actor could not load `version` over the group: serve that version from a file."""
        log.warning("actor %s failed to load weights v%d over the group: %s", actor_id, version,
                    reason)
        with self._lock:
            packed = self._current
        if packed is not None and packed.manifest.version == version:
            self._fall_back(packed, f"actor {actor_id}: {reason}")

    def take_fallbacks(self) -> list[WeightsReady]:
        with self._lock:
            out, self._fallbacks = self._fallbacks, []
        return out

    # -- pull threads ------------------------------------------------------------------------

    def _serve(self, actor_id: str, lock: threading.Lock, key: str, world_size: int,
               packed: weightsync.Packed) -> None:
        version = packed.manifest.version
        start = time.perf_counter()
        with lock:
            try:
                # A client connection of its own: one TCPStore client serves one blocking call
                # at a time, so pulls sharing `self.store` would wait for each other's joins.
                store = weightsync.client_store(self._local, self.port, self.timeout_s)
                group = weightsync.open_group(store, key, 0, world_size, self.timeout_s,
                                              self.backend, self.host)
                try:
                    weightsync.send(group, packed, self.device)
                    group.barrier().wait()  # the actor has it all (or said it failed)
                finally:  # the group must go now: see the module docstring
                    del group, store
            except Exception as exc:  # the transfer failed: a file serves this version instead
                log.error("weights v%d to actor %s over the group failed: %s", version, actor_id,
                          one_line(exc))
                self._fall_back(packed, f"broadcast to {actor_id} failed")
                return
        with self._lock:
            self.loads += 1
        log.info("weights v%d sent to actor %s (%.1f MB in %.2f s)", version, actor_id,
                 packed.nbytes / 1e6, time.perf_counter() - start)

    def _fall_back(self, packed: weightsync.Packed, why: str) -> None:
        version = packed.manifest.version
        with self._lock:
            if version in self._fell_back:
                return
            self._fell_back.add(version)
            self.fallbacks += 1
        log.warning("weights v%d: falling back to the filesystem (%s)", version, why)
        try:
            notice = write_weights(weightsync.unpack(packed), self.cfg.run.run_dir, version)
        except Exception as exc:  # nothing more to fall back on: actors stay on their version
            log.error("weights v%d: writing the fallback file failed: %s", version, one_line(exc))
            return
        with self._lock:
            self._fallbacks.append(notice)
