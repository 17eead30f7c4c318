"""Periodic held-out evaluation during training (`learner.eval_every`), without blocking it.

Every `eval_every` steps the learner starts `lppo eval` in a subprocess on the weights it just
published (`--weights <run_dir>/weights/vN --step N --no-ledger --output ...`), then keeps
training. When the subprocess is done, its JSON report becomes `eval_results` rows written by
the learner's ledger writer: the learner stays the ledger's only writer, and a failed
evaluation is logged with its output file, never fatal to the run. One evaluation runs at a
time; a due one is skipped (and logged) while the previous is still going, except the newest
skipped one, which `finish()` runs at the end of the run so the final policy is evaluated.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

from lppo.core.config import Config
from store.records import EvalRecord

log = logging.getLogger(__name__)


class PeriodicEval:
    def __init__(self, cfg: Config, config_path: Path):
        self.cfg = cfg
        self.config_path = config_path
        self.names = [spec.name for spec in cfg.data.eval]
        self.proc: subprocess.Popen | None = None
        self.step = 0
        self.out: Path | None = None
        self.skipped: tuple[int, int] | None = None

    @property
    def enabled(self) -> bool:
        return self.cfg.learner.eval_every > 0 and bool(self.names)

    def maybe_start(self, step: int, version: int) -> None:
        if not self.enabled or step % self.cfg.learner.eval_every:
            return
        if self.proc is not None:
            log.warning("evaluation of step %d still running: skipping step %d", self.step, step)
            self.skipped = (step, version)
            return
        self.skipped = None
        folder = self.cfg.run.run_dir / "evals"
        folder.mkdir(parents=True, exist_ok=True)
        self.step, self.out = step, folder / f"step_{step}.json"
        weights = self.cfg.run.run_dir / "weights" / f"v{version}"
        with open(folder / f"step_{step}.log", "wb") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lppo.cli", "eval", str(self.config_path),
                 "--benchmarks", ",".join(self.names), "--weights", str(weights),
                 "--step", str(step), "--no-ledger", "--output", str(self.out)],
                stdout=log_file, stderr=subprocess.STDOUT,
            )
        log.info("evaluating step %d on %s (pid %d)", step, ", ".join(self.names), self.proc.pid)

    def poll(self, wait: bool = False) -> list[EvalRecord]:
        """Records of a finished evaluation (empty while running or after a failure)."""
        if self.proc is None:
            return []
        if wait:
            self.proc.wait()
        code = self.proc.poll()
        if code is None:
            return []
        self.proc = None
        if code != 0 or self.out is None or not self.out.is_file():
            log.error("evaluation of step %d failed (exit %s); see %s", self.step, code,
                      self.cfg.run.run_dir / "evals" / f"step_{self.step}.log")
            return []
        return records_from_report(json.loads(self.out.read_text()))

    def finish(self) -> list[EvalRecord]:
        """At the end of a run: wait for the running evaluation, then run the newest skipped
        one (the final policy) and wait for it too."""
        records = self.poll(wait=True)
        if self.skipped is not None:
            step, version = self.skipped
            self.maybe_start(step, version)
            records += self.poll(wait=True)
        return records

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def records_from_report(report: dict) -> list[EvalRecord]:
    """`eval_results` rows from the JSON `lppo eval --output` writes."""
    return [EvalRecord(step=int(report["step"]), benchmark=b["name"], metric=name,
                       value=float(value), n=int(b["n"]))
            for b in report["benchmarks"] if b["n"]
            for name, value in b["metrics"].items()]
