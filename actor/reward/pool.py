"""`RewardPool`: math-verify in worker processes, with hard deadlines, restarts and counters.

math-verify can take unbounded time (sympy on `9^{9^{9^{9}}}` or a deliberately hard
expression), sometimes inside C code where no signal reaches it, and its timeouts use
`signal.alarm`, which only works in a main thread. So verification runs in
`RewardConfig.workers` processes started eagerly (forkserver: forked from a server that has
math-verify loaded) and reused. Each worker stops itself at 80% of `timeout_s` where a signal
can reach the work; the parent holds every item to `timeout_s` regardless:

    verify_group(gold, outputs, finish_reasons)          one call per rollout group
      clean + bound outputs (tail kept, cut recorded); unfinished ones -> `unfinished`
        unless `judge_unfinished`
      take an idle worker  ->  Group(gold, outputs)        one round trip per group
      <- GoldParsed, then ItemDone per output               each within timeout_s of the last
      late: SIGKILL the worker, item -> timeout; dead worker: item -> error
      the rest of the group goes to the next idle worker; the broken one is replaced in the
      background, so the pool keeps serving while the replacement starts

`verify_group` is thread-safe: up to `workers` groups are verified at once, further callers
wait for a free worker. `submit` runs it on the pool's own threads and returns a Future (for an
asyncio actor: `asyncio.wrap_future(pool.submit(...))`). `metrics()` returns cumulative
counters (verdicts, timeouts, kills, restarts, ...) for the train-step rows and the dashboard.
A pool whose workers can no longer be started raises `RewardPoolError`, it never blocks forever.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections import Counter, OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

import msgspec

from actor.reward import worker as wk
from actor.reward.verdict import FINISHED, Scored, Verdict, reward_for
from lppo.core.answers import clean_output, has_boxed_answer, sanitize_text
from lppo.core.config.schema import RewardConfig

log = logging.getLogger(__name__)

START_ATTEMPTS = 3
"""Tries to start a replacement worker before its slot is given up."""
BAD_GOLD_CACHE = 1024
"""Gold answers remembered as unparsable, so a pathological one costs one kill, not one each."""
PRELOAD = ["actor.reward.verify"]


class RewardPoolError(RuntimeError):
    """The pool cannot verify: it is closed, or no worker could be started."""


@dataclass(eq=False)
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


@dataclass
class _Outcome:
    verdict: Verdict
    detail: str = ""
    seconds: float = 0.0


_LATE = "late"
_DEAD = "dead"


class RewardPool:
    """Verifies rollout groups against gold answers in isolated worker processes."""

    def __init__(self, cfg: RewardConfig):
        self.cfg = cfg
        self._ctx = multiprocessing.get_context(cfg.start_method)
        if cfg.start_method == "forkserver":
            self._ctx.set_forkserver_preload(PRELOAD)
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._slots = cfg.workers
        self._failure: BaseException | None = None
        self._closed = False
        self._counts: Counter[str] = Counter()
        self._bad_golds: OrderedDict[str, str] = OrderedDict()
        self._executor: ThreadPoolExecutor | None = None
        self._replacers: set[threading.Thread] = set()
        started = [self._launch() for _ in range(cfg.workers)]
        try:
            for w in started:
                self._await_ready(w)
        except BaseException:
            for w in started:
                w.kill()
            raise
        self._idle = started

    # ---- public API ------------------------------------------------------------------------

    def verify_group(
        self, gold: str, outputs: list[str], finish_reasons: list[str]
    ) -> list[Scored]:
        """Verdict and reward of each output of one group, in order (one worker round trip)."""
        if len(outputs) != len(finish_reasons):
            raise ValueError(
                f"verify_group: {len(outputs)} outputs but {len(finish_reasons)} finish reasons"
            )
        start = time.perf_counter()
        cleaned = [clean_output(text, self.cfg.max_output_chars) for text in outputs]
        judged = [i for i, reason in enumerate(finish_reasons)
                  if reason == FINISHED or self.cfg.judge_unfinished]
        outcomes = [_Outcome(Verdict.UNFINISHED)] * len(outputs)
        if judged:
            got = self._outcomes(sanitize_text(gold), [cleaned[i][0] for i in judged])
            for i, outcome in zip(judged, got, strict=True):
                outcomes[i] = outcome
        scored = [
            self._score(outcome, reason, text, cut)
            for outcome, reason, (text, cut) in zip(outcomes, finish_reasons, cleaned, strict=True)
        ]
        self._count(scored, time.perf_counter() - start)
        return scored

    def submit(
        self, gold: str, outputs: list[str], finish_reasons: list[str]
    ) -> Future[list[Scored]]:
        """`verify_group` on one of the pool's `workers` threads; returns its Future."""
        with self._cond:
            if self._closed:
                raise RewardPoolError("the reward pool is closed")
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.cfg.workers, "reward-pool")
            executor = self._executor
        return executor.submit(self.verify_group, gold, list(outputs), list(finish_reasons))

    def metrics(self) -> dict[str, int | float]:
        """Cumulative counters since the pool started (diff two calls for a step's share).

        `reward/` + groups, items, verdict_<verdict> (each of `Verdict`), truncated_inputs
        (outputs cut to max_output_chars), unfinished (finish reason not `stop`), format_ok,
        worker_kills (hard deadline), worker_deaths, worker_restarts, verify_seconds (wall
        time in `verify_group`), and workers_alive (slots not given up after failed restarts).
        """
        with self._cond:
            out: dict[str, int | float] = {f"reward/{k}": v for k, v in self._counts.items()}
            out["reward/workers_alive"] = self._slots
        for key in _COUNTER_KEYS:
            out.setdefault(f"reward/{key}", 0)
        return out

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (idle or busy), for logs and monitoring."""
        with self._cond:
            return sorted(w.process.pid for w in self._all if w.process.pid is not None)

    def close(self) -> None:
        """Stop every worker (idle ones politely, busy ones by force); idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            idle, busy = list(self._idle), self._all - set(self._idle)
            self._idle.clear()
            replacers = list(self._replacers)
            self._cond.notify_all()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        for w in idle:
            _stop(w)
        for w in busy:  # the thread waiting on it sees it die and cleans up
            w.process.kill()
        for thread in replacers:
            thread.join(timeout=self.cfg.start_timeout_s)

    def __enter__(self) -> RewardPool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---- one group -------------------------------------------------------------------------

    def _outcomes(self, gold: str, texts: list[str]) -> list[_Outcome]:
        outcomes: list[_Outcome | None] = [None] * len(texts)
        bad = self._known_bad_gold(gold)
        if bad is not None:
            return [_Outcome(Verdict.UNPARSABLE_GOLD, bad) for _ in texts]
        pending = list(range(len(texts)))
        stalls = 0  # workers in a row that were lost before judging anything
        while pending:
            if stalls > self.cfg.workers + START_ATTEMPTS:
                raise RewardPoolError(f"{stalls} verifier workers in a row died before work")
            w = self._checkout()
            healthy = False
            try:
                healthy = self._run(w, gold, [(i, texts[i]) for i in pending], outcomes)
            finally:
                self._checkin(w, healthy)
            left = [i for i in pending if outcomes[i] is None]
            stalls = stalls + 1 if len(left) == len(pending) else 0
            pending = left
        return outcomes  # type: ignore[return-value]

    def _run(self, w: _Worker, gold: str, items: list[tuple[int, str]],
             outcomes: list[_Outcome | None]) -> bool:
        """Send one group to `w` and collect its answers; False when `w` must be replaced.

        A worker found dead before it got the group (it died idle) leaves the items pending
        for the next worker instead of failing them.
        """
        frame = wk.encode(wk.Group(gold=gold, outputs=[text for _, text in items]))
        try:
            if not w.process.is_alive():
                raise BrokenPipeError("worker is not running")
            w.conn.send_bytes(frame)
        except OSError as exc:
            log.warning("verifier worker %s lost while idle (%s); retrying elsewhere",
                        w.process.pid, exc)
            self._death_detail(w, "idle")
            return False
        reply = self._receive(w)
        gold_failure = self._gold_failure(w, gold, reply)
        if gold_failure is not None:
            for i, _ in items:
                outcomes[i] = gold_failure
            return isinstance(reply, wk.GoldParsed)
        for k, (i, _) in enumerate(items):
            reply = self._receive(w)
            if isinstance(reply, wk.ItemDone) and reply.index == k:
                outcomes[i] = _Outcome(Verdict(reply.verdict), reply.detail, reply.seconds)
                continue
            if reply == _LATE:
                outcomes[i] = _Outcome(
                    Verdict.TIMEOUT, f"ran past the {self.cfg.timeout_s} s deadline; worker killed"
                )
            else:
                outcomes[i] = _Outcome(Verdict.ERROR, self._death_detail(w, f"item {k}", reply))
            return False
        return True

    def _gold_failure(self, w: _Worker, gold: str, reply: object) -> _Outcome | None:
        """The outcome of every item when the gold answer did not parse; None when it did.

        Only a definite "nothing to parse" is `unparsable_gold` (and remembered); a gold parse
        that ran out of time may be the machine's fault, so its items are `timeout`.
        """
        if isinstance(reply, wk.GoldParsed):
            if reply.ok:
                return None
            if reply.timed_out:
                return _Outcome(Verdict.TIMEOUT, reply.detail)
            self._remember_bad_gold(gold, reply.detail)
            return _Outcome(Verdict.UNPARSABLE_GOLD, reply.detail)
        if reply == _LATE:
            return _Outcome(Verdict.TIMEOUT, f"gold answer parse ran past the "
                            f"{self.cfg.timeout_s} s deadline; worker killed")
        return _Outcome(Verdict.ERROR, self._death_detail(w, "parsing the gold answer", reply))

    def _receive(self, w: _Worker) -> wk.Ready | wk.GoldParsed | wk.ItemDone | str:
        """The worker's next message, `_LATE` past the deadline (worker killed), or `_DEAD`."""
        ready = wait([w.conn, w.process.sentinel], timeout=self.cfg.timeout_s)
        if w.conn in ready:
            try:
                return wk.FROM_WORKER.decode(w.conn.recv_bytes())
            except (EOFError, OSError):
                pass
            except msgspec.DecodeError as exc:
                log.error("verifier worker %s sent a bad frame: %s", w.process.pid, exc)
            w.kill()
            return _DEAD
        if ready:
            w.kill()
            return _DEAD
        w.kill()
        with self._cond:
            self._counts["worker_kills"] += 1
        return _LATE

    def _death_detail(self, w: _Worker, doing: str, reply: object = _DEAD) -> str:
        code = w.process.exitcode
        if reply != _DEAD:
            return f"verifier worker answered out of order while {doing}: {reply!r}"
        with self._cond:
            self._counts["worker_deaths"] += 1
        return f"verifier worker {w.process.pid} died (exit code {code}) while {doing}"

    def _score(self, outcome: _Outcome, finish_reason: str, text: str, cut: bool) -> Scored:
        format_ok = has_boxed_answer(text)
        if outcome.verdict in (Verdict.TIMEOUT, Verdict.ERROR):
            log.warning("verifier %s: %s", outcome.verdict.value, outcome.detail)
        return Scored(
            verdict=outcome.verdict,
            reward=reward_for(self.cfg, outcome.verdict, finish_reason, format_ok),
            finish_reason=finish_reason,
            format_ok=format_ok,
            truncated_input=cut,
            detail=outcome.detail,
            seconds=outcome.seconds,
        )

    def _count(self, scored: list[Scored], seconds: float) -> None:
        with self._cond:
            c = self._counts
            c["groups"] += 1
            c["items"] += len(scored)
            c["verify_seconds"] += seconds
            for s in scored:
                c[f"verdict_{s.verdict.value}"] += 1
                c["truncated_inputs"] += s.truncated_input
                c["unfinished"] += s.finish_reason != FINISHED
                c["format_ok"] += s.format_ok

    # ---- gold answers known to be unparsable ----------------------------------------------

    def _known_bad_gold(self, gold: str) -> str | None:
        if len(gold) > self.cfg.max_output_chars:
            return f"gold answer longer than max_output_chars ({self.cfg.max_output_chars})"
        with self._cond:
            return self._bad_golds.get(gold)

    def _remember_bad_gold(self, gold: str, detail: str) -> None:
        with self._cond:
            if gold not in self._bad_golds:
                log.warning("unparsable gold answer %r: %s", gold[:200], detail)
            self._bad_golds[gold] = detail
            while len(self._bad_golds) > BAD_GOLD_CACHE:
                self._bad_golds.popitem(last=False)

    # ---- workers ---------------------------------------------------------------------------

    def _launch(self) -> _Worker:
        parent_end, child_end = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=wk.serve,
            args=(child_end, self.cfg.require_anchor, self.cfg.timeout_s,
                  self.cfg.worker_memory_mb, self.cfg.start_method == "forkserver"),
            name="reward-worker",
            daemon=True,
        )
        process.start()
        child_end.close()
        w = _Worker(process, parent_end)
        with self._cond:
            self._all.add(w)
        return w

    def _await_ready(self, w: _Worker) -> None:
        ready = wait([w.conn, w.process.sentinel], timeout=self.cfg.start_timeout_s)
        if w.conn in ready:
            try:
                if isinstance(wk.FROM_WORKER.decode(w.conn.recv_bytes()), wk.Ready):
                    return
            except (EOFError, OSError):
                pass
        w.kill()
        with self._cond:
            self._all.discard(w)
        raise RewardPoolError(
            f"verifier worker {w.process.pid} did not start within {self.cfg.start_timeout_s} s "
            f"(exit code {w.process.exitcode}); see its output above"
        )

    def _checkout(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise RewardPoolError("the reward pool is closed")
                if self._idle:
                    return self._idle.pop()
                if self._slots == 0:
                    raise RewardPoolError("no verifier worker could be started") from self._failure
                self._cond.wait()

    def _checkin(self, w: _Worker, healthy: bool) -> None:
        with self._cond:
            if healthy and not self._closed:
                self._idle.append(w)
                self._cond.notify()
                return
            self._all.discard(w)
            if self._closed:
                w.kill()
                return
            thread = threading.Thread(target=self._replace, name="reward-pool-restart", daemon=True)
            self._replacers.add(thread)
        w.kill()
        thread.start()

    def _replace(self) -> None:
        """Start a worker for a lost slot; after START_ATTEMPTS failures give the slot up."""
        try:
            for attempt in range(1, START_ATTEMPTS + 1):
                try:
                    w = self._launch()
                    self._await_ready(w)
                    break
                except (RewardPoolError, OSError) as exc:
                    log.error("restarting a verifier worker, attempt %d: %s", attempt, exc)
                    failure = exc
            else:
                with self._cond:
                    self._slots -= 1
                    self._failure = failure
                    self._cond.notify_all()
                return
            with self._cond:
                self._counts["worker_restarts"] += 1
                if not self._closed:
                    self._idle.append(w)
                    self._cond.notify()
                    return
            _stop(w)
        finally:
            with self._cond:
                self._replacers.discard(threading.current_thread())


_COUNTER_KEYS = (
    "groups", "items", *(f"verdict_{v.value}" for v in Verdict), "truncated_inputs",
    "unfinished", "format_ok", "worker_kills", "worker_deaths", "worker_restarts",
    "verify_seconds",
)


def _stop(w: _Worker) -> None:
    """Ask an idle worker to exit; kill it if it does not within a second."""
    try:
        w.conn.send_bytes(wk.encode(wk.Stop()))
    except OSError as exc:  # already gone: nothing to ask, kill() below reaps it
        log.debug("verifier worker %s: stop not delivered: %s", w.process.pid, exc)
    w.process.join(timeout=1)
    w.kill()
