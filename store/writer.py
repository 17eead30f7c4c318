"""Background ledger writer: the learner enqueues records, one thread commits them in batches.

The learner's loop must never wait for the database. `LedgerWriter.put_group/put_step/put_eval`
only append to a bounded queue (blocking only when `max_queue` records are waiting, which
bounds memory if the database falls far behind). The thread takes whatever is queued, up to
`batch_groups` groups, and commits it with `Ledger.write` in one transaction, so the batch size
adapts to the load: one group per commit when idle, `batch_groups` per commit under pressure.

Transient failures (SQLite "database is locked", a PostgreSQL connection lost or a server
restart) are retried with exponential backoff for up to `retry_s` seconds. A retry after an
ambiguous commit is harmless: groups are idempotent on attempt id and steps/evals are upserts.
Any other error, or one that outlasts the retries, stops the thread and is raised again, as
`LedgerWriteError`, from the learner's next `put_*`, `flush` or `close`: nothing is swallowed.

`flush()` returns once everything queued before it is committed; `close()` flushes and stops.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from store.db import is_transient, short_error
from store.ledger import Ledger
from store.records import EvalRecord, GroupRecord, StepRecord

if TYPE_CHECKING:
    from lppo.core.config.schema import StoreConfig

log = logging.getLogger(__name__)


class LedgerWriteError(RuntimeError):
    """The writer thread failed; the cause is chained (`__cause__`)."""


@dataclass
class WriterStats:
    """Counters of the writer thread, readable at any time (for logs and benchmarks)."""

    groups: int = 0
    """Groups newly recorded (re-delivered attempt ids not counted)."""
    rollouts: int = 0
    commits: int = 0
    retries: int = 0
    largest_batch: int = 0
    commit_seconds: float = 0.0


class _Marker:
    """A flush or stop request travelling through the queue behind earlier records."""

    def __init__(self, stop: bool = False):
        self.stop = stop
        self.done = threading.Event()


class LedgerWriter:
    """Queue + thread around `Ledger.write` for one run."""

    @classmethod
    def for_config(cls, ledger: Ledger, run_id: int, store: StoreConfig) -> LedgerWriter:
        """A writer with the batch size, queue length and retry budget of `store`."""
        return cls(ledger, run_id, batch_groups=store.write_batch_groups,
                   max_queue=store.write_queue, retry_s=store.write_retry_s)

    def __init__(
        self,
        ledger: Ledger,
        run_id: int,
        *,
        batch_groups: int = 64,
        max_queue: int = 8192,
        retry_s: float = 120.0,
    ):
        self.ledger = ledger
        self.run_id = run_id
        self.batch_groups = batch_groups
        self.retry_s = retry_s
        self.stats = WriterStats()
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()

    # -- learner side ------------------------------------------------------------------------

    def put_group(self, group: GroupRecord) -> None:
        self._put(group)

    def put_step(self, step: StepRecord) -> None:
        self._put(step)

    def put_eval(self, result: EvalRecord) -> None:
        self._put(result)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything queued so far is committed; raise the thread's error if any."""
        marker = _Marker()
        self._put(marker)
        self._wait(marker, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Commit what is queued, stop the thread; raise its error if it failed."""
        if self._closed:
            self._raise_if_failed()
            return
        marker = _Marker(stop=True)
        self._put(marker)
        self._closed = True
        self._wait(marker, timeout)
        self._thread.join(timeout)

    def __enter__(self) -> LedgerWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pending(self) -> int:
        """Records queued and not yet taken by the thread."""
        return self._queue.qsize()

    def _put(self, item: object) -> None:
        if self._closed:
            raise LedgerWriteError("the ledger writer is closed")
        while True:
            self._raise_if_failed()
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue  # the thread may have died meanwhile: check again

    def _wait(self, marker: _Marker, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not marker.done.wait(0.2):
            self._raise_if_failed()
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"ledger writer did not flush within {timeout} s")
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            message = f"ledger writer failed: {short_error(self._error)}"
            raise LedgerWriteError(message) from self._error

    # -- thread side -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                batch, marker = self._next_batch()
                if batch:
                    self._commit(batch)
                if marker is not None:
                    marker.done.set()
                    if marker.stop:
                        return
        except BaseException as exc:  # handed to the learner thread, which raises it
            log.error("ledger writer stopped: %s", short_error(exc))
            self._error = exc

    def _next_batch(self) -> tuple[list, _Marker | None]:
        """Block for one item, then take what is queued up to a full batch or a marker."""
        item = self._queue.get()
        batch: list = []
        groups = 0
        while True:
            if isinstance(item, _Marker):
                return batch, item
            batch.append(item)
            groups += isinstance(item, GroupRecord)
            if groups >= self.batch_groups:
                return batch, None
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, None

    def _commit(self, batch: list) -> None:
        groups = [r for r in batch if isinstance(r, GroupRecord)]
        steps = [r for r in batch if isinstance(r, StepRecord)]
        evals = [r for r in batch if isinstance(r, EvalRecord)]
        delay = 0.05
        deadline = time.monotonic() + self.retry_s
        while True:
            start = time.perf_counter()
            try:
                new = self.ledger.write(self.run_id, groups, steps, evals)
                break
            except Exception as exc:
                if not is_transient(exc) or time.monotonic() + delay > deadline:
                    raise
                self.stats.retries += 1
                log.warning("ledger write failed (%s); retrying in %.2f s", short_error(exc), delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        stats = self.stats
        stats.commit_seconds += time.perf_counter() - start
        stats.commits += 1
        stats.groups += new.groups
        stats.rollouts += new.rollouts
        stats.largest_batch = max(stats.largest_batch, len(groups))
