"""The learner process: the LPPO training loop around the I/O thread.

    setup:  ledger (register run, import data sets) -> samples + expert-solution cuts ->
            trainer (model, optimizer) -> scheduler -> [resume: checkpoint + ledger rollback]
            -> weights v_current published -> I/O thread (actors, ledger records, acks)
    step:   wait for `batch_groups` accepted groups (re-checking staleness at batch time)
            `learner.assemble`: advantages (GRPO / Dr.GRPO / REINFORCE++) x LP weights
            (batch-renormalised), prefix terms of guided groups (masked, off-policy,
            supervised) -> training sequences
            -> one optimizer step -> version + 1 -> publish weights every `publish_every`
            (announced to actors before work for the new version is admitted, so that work
            is sampled with these weights, not found stale) -> train-step row in the ledger
            (the attempts it used, each with the LP weight and prefix terms applied to it)
            -> checkpoint
            every N

A step's metrics: loss, KL, entropy, grad norm, LR, tokens, mean staleness, groups used and
dropped by reason since the previous step, the prefix-guided share, actor counters (reward
pool verdicts, timeouts, restarts) summed over actors, and timings (waiting for data,
training, weight sync).

A batch with a non-finite loss or gradient norm changes no weight: it is skipped (its admission
slots come back) or fails the run (`learner.on_nonfinite`, `learner.max_nonfinite_skips`).

Stops after `learner.max_steps`, or on SIGTERM/SIGINT with a final checkpoint; either way the
actors are told to shut down and the ledger run is closed with its status.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from learner import checkpoint
from learner.assemble import Batch, assemble
from learner.collective import CollectiveWeights
from learner.distributed import DistContext
from learner.dump import write_dump
from learner.io import LearnerIO
from learner.periodic_eval import PeriodicEval
from learner.scheduler import Decision
from learner.setup import LearnerSetup, prepare
from learner.trackers import Trackers
from lppo.core.config import Config
from lppo.core.errors import one_line
from lppo.core.resources import code_version
from lppo.core.vocab import Verdict
from lppo.core.weightfiles import prune_weights, write_weights
from store.records import EvalRecord, StepRecord

log = logging.getLogger(__name__)

class NonFiniteError(RuntimeError):
    """Training produced a non-finite loss or gradient norm and may not go on."""


PUBLISH_WAIT_S = 5.0
"""Longest wait for the I/O thread to send a weights notice before admission opens."""


@dataclass
class StepInputs:
    decisions: list[Decision]
    batch: Batch
    wait_s: float
    evicted: int = 0


class Learner:
    """One learner process; `run()` returns the exit status."""

    def __init__(self, cfg: Config, resume: bool = False, dist: DistContext | None = None):
        self.cfg = cfg
        self.resume = resume
        self.dist = dist or DistContext()
        """This process is rank 0 of `dist.world_size` learner ranks (learner/ranks.py)."""
        self.stop = threading.Event()
        self.nonfinite_in_a_row = 0
        self.nonfinite_skipped = 0
        # Built by `run()`, in this order (a missing tracker package fails before the model
        # loads); None until then.
        self.trackers: Trackers | None = None
        self.evals: PeriodicEval | None = None
        self.io: LearnerIO | None = None
        self.sync: CollectiveWeights | None = None
        """The `collective` weight backend (rank 0), or None for files."""

    def run(self) -> int:
        # Before anything heavy: a missing tracker package fails fast.
        self.trackers = Trackers(self.cfg, code_version())
        setup = prepare(self.cfg, self.resume, self.dist)
        self.evals = PeriodicEval(self.cfg, self.cfg.run.run_dir / "config.toml")
        if self.cfg.learner.weights_backend == "collective":
            self.sync = CollectiveWeights(self.cfg, str(setup.trainer.device))
        io = LearnerIO(self.cfg, setup.scheduler, setup.writer, setup.version,
                       weights=setup.notice, weight_sync=self.sync)
        self.io = io
        status, reason = "failed", None
        try:
            io.start()
            io.ready.wait()
            io.check()
            if setup.notice is not None:
                io.publish(setup.notice)
            self._train(setup, io)
            status = "finished" if setup.step >= self.cfg.learner.max_steps else "stopped"
        except BaseException as exc:
            reason = one_line(exc)
            raise
        finally:
            self._close(setup, io, status, reason)
        return 0

    # -- the loop ----------------------------------------------------------------------------

    def _train(self, setup: LearnerSetup, io: LearnerIO) -> None:
        cfg = self.cfg.learner
        counters_before = _snapshot(io)
        while setup.step < cfg.max_steps and not self.stop.is_set():
            inputs = self._collect(setup, io)
            if inputs is None:
                break
            t0 = time.perf_counter()
            if cfg.dump_rollouts:  # before the step: a step that fails can be replayed too
                write_dump(self.cfg.run.run_dir, setup.step + 1, setup.trainer.steps_done,
                           setup.version, inputs.batch.sequences)
            stats = setup.leader.step(inputs.batch.sequences)
            if not stats.finite:
                self._skip_nonfinite(setup, inputs, stats)
                continue
            self.nonfinite_in_a_row = 0
            setup.scheduler.on_trained(len(inputs.decisions))
            setup.step += 1
            setup.version += 1
            # Announce the weights before admitting work for the new version: work handed out
            # afterwards says this version, and actors wait for these weights to sample it.
            published = setup.step % cfg.publish_every == 0
            sync_s = self._publish(setup, io) if published else 0.0
            setup.scheduler.set_version(setup.version, setup.step)
            counters = _snapshot(io)
            record = self._step_record(setup, inputs, stats, counters_before, counters,
                                       train_s=time.perf_counter() - t0 - sync_s, sync_s=sync_s)
            counters_before = counters
            setup.writer.put_step(record)
            self.trackers.log(record.step, _scalars(record))
            _log_step(record, cfg.max_steps)
            if setup.step % cfg.checkpoint_every == 0 or setup.step == cfg.max_steps:
                self._checkpoint(setup)
            if published:  # evaluations read the weights the actors get
                self.evals.maybe_start(setup.step, setup.version)
            self._record_evals(setup, self.evals.poll())

    def _record_evals(self, setup: LearnerSetup, records: list[EvalRecord]) -> None:
        """Evaluation results to the ledger and the trackers."""
        for record in records:
            setup.writer.put_eval(record)
        self.trackers.log_evals(records)

    def _collect(self, setup: LearnerSetup, io: LearnerIO) -> StepInputs | None:
        """Wait for a full batch of fresh accepted groups; None if asked to stop first."""
        need, got, evicted = self.cfg.learner.batch_groups, [], 0
        start = time.perf_counter()
        while len(got) < need:
            io.check()
            if self.stop.is_set():
                return None
            try:
                decision = io.accepted.get(timeout=0.2)
            except queue.Empty:
                continue
            if setup.scheduler.evict_if_stale(decision.group.policy_version):
                evicted += 1
                continue
            got.append(decision)
        wait_s = time.perf_counter() - start
        return StepInputs(got, assemble(got, self.cfg), wait_s, evicted)

    def _skip_nonfinite(self, setup: LearnerSetup, inputs: StepInputs, stats) -> None:
        """A batch whose loss or gradient norm was not finite: the trainer changed nothing;
        fail (`learner.on_nonfinite = "fail"`, or too many in a row) or drop the batch."""
        cfg = self.cfg.learner
        self.nonfinite_in_a_row += 1
        self.nonfinite_skipped += 1
        what = (f"step {setup.step + 1}: non-finite loss ({stats.loss}) or gradient norm "
                f"({stats.grad_norm}) on {len(inputs.decisions)} groups")
        if cfg.on_nonfinite == "fail" or self.nonfinite_in_a_row >= cfg.max_nonfinite_skips:
            raise NonFiniteError(f"{what}; no weights were changed (learner.on_nonfinite = "
                                 f"{cfg.on_nonfinite!r}, {self.nonfinite_in_a_row} in a row)")
        log.warning("%s: batch skipped, weights unchanged (%d in a row)", what,
                    self.nonfinite_in_a_row)
        setup.scheduler.release_buffered(len(inputs.decisions))

    # -- side effects of a step --------------------------------------------------------------

    def _publish(self, setup: LearnerSetup, io: LearnerIO) -> float:
        t0 = time.perf_counter()
        state = setup.leader.policy_state()
        run_dir = self.cfg.run.run_dir
        if self.sync is None:
            notice = write_weights(state, run_dir, setup.version)
        else:
            if self._needs_file(setup.step, setup.version):  # read by an evaluation, or kept
                write_weights(state, run_dir, setup.version)
            notice = self.sync.offer(setup.version, state)
        setup.notice = notice
        if not io.publish(notice).wait(timeout=PUBLISH_WAIT_S):
            io.check()  # a dead I/O thread raises here; a merely busy one is not waited on
        keep_from = setup.version - self.cfg.learner.max_staleness - 2
        if keep_from > 0:
            prune_weights(self.cfg.run.run_dir, keep_from, self.cfg.learner.keep_weights_every)
        return time.perf_counter() - t0

    def _needs_file(self, step: int, version: int) -> bool:
        """With `collective` weights: a file is still written for evaluations and for the
        versions `keep_weights_every` keeps."""
        cfg = self.cfg.learner
        evals = self.evals is not None and self.evals.enabled and step % cfg.eval_every == 0
        return evals or (cfg.keep_weights_every > 0 and version % cfg.keep_weights_every == 0)

    def _step_record(self, setup, inputs: StepInputs, stats, before: dict, after: dict,
                     train_s: float, sync_s: float) -> StepRecord:
        drops = {k: after["dropped"].get(k, 0) - before["dropped"].get(k, 0)
                 for k in after["dropped"]}
        staleness = [setup.version - 1 - d.group.policy_version for d in inputs.decisions]
        guided = sum(1 for d in inputs.decisions if d.group.prefix_len > 0)
        counts = setup.scheduler.status_counts()
        metrics = {
            **_sum_actor_metrics(after["actors"]),  # first: an actor's names cannot replace ours
            **{f"train/{k}": v for k, v in stats.metrics.items()},
            **{f"dropped/{k}": v for k, v in drops.items()},
            "batch/guided_share": guided / len(inputs.decisions),
            "batch/reward_mean": float(np.mean([c.reward for d in inputs.decisions
                                                for c in d.group.completions])),
            "batch/pass_rate": float(np.mean([c.verdict == Verdict.CORRECT for d in inputs.decisions
                                              for c in d.group.completions])),
            **inputs.batch.metrics,
            "batch/evicted_stale": inputs.evicted,
            "train/nonfinite_skipped": self.nonfinite_skipped,
            **{f"wire/rejected_{k}": v for k, v in self.io.rejected_frames().items()},
            **(self.sync.metrics() if self.sync is not None else {}),
        }
        return StepRecord(
            step=setup.step, policy_version=setup.version, loss=stats.loss,
            kl=stats.metrics.get("approx_kl"), entropy=stats.metrics.get("entropy"),
            grad_norm=stats.grad_norm, lr=stats.lr, tokens=stats.tokens,
            mean_staleness=float(np.mean(staleness)), groups_used=len(inputs.decisions),
            groups_dropped=sum(drops.values()) + inputs.evicted,
            samples_active=counts["active"], samples_solved=counts["solved"],
            samples_parked=counts["parked"], gen_wait_s=inputs.wait_s, train_s=train_s,
            sync_s=sync_s, metrics=metrics,
            used_attempt_ids=[d.group.attempt_id for d in inputs.decisions],
            used_lp_weights=[float(w) for w in inputs.batch.weights],
            used_prefix_terms=inputs.batch.prefix_terms(),
            used_prefix_advantages=inputs.batch.prefix_advantages(),
        )

    def _checkpoint(self, setup: LearnerSetup) -> None:
        setup.writer.flush()
        sched = setup.scheduler.state_dict()
        weights, trainer_state = setup.leader.checkpoint_state(self.cfg.run.run_dir, setup.step)
        path = checkpoint.save(
            self.cfg.run.run_dir, setup.step, setup.trainer.model, weights, setup.tokenizer,
            trainer_state,
            {"version": setup.version, "scheduler": sched,
             "steps_done": setup.trainer.steps_done},
            keep=self.cfg.learner.keep_checkpoints,
        )
        log.info("checkpoint %s (version %d)", path, setup.version)

    def _close(self, setup: LearnerSetup, io: LearnerIO, status: str,
               reason: str | None) -> None:
        """Checkpoint (when stopped), stop the actors and the I/O thread, flush the ledger and
        close the run with its status: each part tried on its own, so a failing one (a full
        disk, a dead writer) still leaves the run marked `failed` with the reason."""
        errors: list[BaseException] = []

        def attempt(part) -> None:
            try:
                part()
            except Exception as exc:  # kept and re-raised below, after the run is closed
                log.error("closing the learner: %s", one_line(exc))
                errors.append(exc)

        if self.stop.is_set() and setup.step > 0:
            attempt(lambda: self._checkpoint(setup))
        attempt(lambda: io.stop("learner finished" if status == "finished"
                                else "learner stopped"))
        attempt(setup.leader.stop)  # the other ranks exit
        if status == "finished":
            attempt(lambda: self._record_evals(setup, self.evals.finish()))
        if self.sync is not None:
            attempt(self.sync.close)
        for closer in (self.evals.close,
                       lambda: self.trackers.close("failed" if errors else status),
                       setup.writer.close):
            attempt(closer)
        if errors and status != "failed":
            status, reason = "failed", one_line(errors[0])
        attempt(lambda: setup.ledger.end_run(setup.run_id, status, reason))
        attempt(setup.ledger.close)
        log.info("learner %s at step %d (version %d)%s", status, setup.step, setup.version,
                 f": {reason}" if reason else "")
        if errors:
            raise errors[0]


def _scalars(r: StepRecord) -> dict[str, float | int | None]:
    """A step row's numbers under the names the trackers show."""
    return {"train/loss": r.loss, "train/kl": r.kl, "train/entropy": r.entropy,
            "train/grad_norm": r.grad_norm, "train/lr": r.lr, "train/tokens": r.tokens,
            "batch/mean_staleness": r.mean_staleness, "batch/groups_used": r.groups_used,
            "batch/groups_dropped": r.groups_dropped, "time/gen_wait_s": r.gen_wait_s,
            "time/train_s": r.train_s, "time/sync_s": r.sync_s, **r.metrics}


def _snapshot(io: LearnerIO) -> dict:
    return {"dropped": io.dropped(), "actors": io.actor_metrics()}


def _sum_actor_metrics(actors: dict[str, dict[str, float]]) -> dict[str, float]:
    """Cumulative counters summed over live actors (`reward/...`, `actor/...`)."""
    total: dict[str, float] = {}
    for metrics in actors.values():
        for k, v in metrics.items():
            total[k] = total.get(k, 0.0) + float(v)
    return total


def _log_step(r: StepRecord, max_steps: int) -> None:
    m = r.metrics
    log.info(
        "step %d/%d  loss %.4f  reward %.3f  pass %.3f  used %d dropped %d  guided %.0f%%  "
        "staleness %.2f  wait %.1fs train %.1fs sync %.2fs",
        r.step, max_steps, r.loss, m["batch/reward_mean"], m["batch/pass_rate"], r.groups_used,
        r.groups_dropped, 100 * m["batch/guided_share"], r.mean_staleness, r.gen_wait_s,
        r.train_s, r.sync_s,
    )
