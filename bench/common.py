"""Helpers shared by the whole-system benchmarks (bench/pipeline.py, bench/async_speedup.py,
bench/sample_efficiency.py).

    system_parser(doc, steps, ...)      their common options: --steps [--skip-steps] --set
                                        --json --keep
    bench_dir(prefix, keep)             a temporary folder for the run directories
    demo_config(tmp, name, overrides)   configs/demo.toml + `--set` overrides, model and data from
                                        the demo cache (runs/_cache), run directory under `tmp`,
                                        free TCP ports (another run on this machine keeps its own)
    run_system(cfg)                     `Supervisor(cfg).run()` (learner + actors as children),
                                        timed, then `ledger_stats` of the run
    ledger_stats(cfg, skip_steps)       throughput, learner wait share, step breakdown and train
                                        wall time read back from the run's ledger
    fmt(value, spec)                    a number for a report line, "n/a" for None

Steady state excludes the first `skip_steps` learner steps (default 1): the first step's wait
holds the actor's engine start-up and the first generation, which no later step pays.

- Groups: those with `step_seen >= skip_steps` (they arrived after step `skip_steps` ended),
  ordered by `received_at`. Rate = rollouts of every group but the first / (last `received_at`
  - first `received_at`): the first group opens the interval, so its rollouts are not counted
  (fencepost). Used and dropped groups count alike (every verified rollout was generated).
- Steps: those with `step > skip_steps`. Wait share = sum(gen_wait_s) / sum(gen_wait_s +
  train_s + sync_s); means of each part per step.
- Train wall: from the start of step 1's training (its `created_at` - train_s - sync_s, i.e.
  once the first batch was complete) to the end of the last step (`created_at`, written after
  the weights are published). It leaves out start-up and the first batch's generation, which
  are the same whatever the pipelining, and the final checkpoint and shutdown.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lppo.core.config import Config

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "configs" / "demo.toml"
DEMO_CACHE = ROOT / "runs" / "_cache"


def system_parser(doc: str, *, steps: int, steps_help: str,
                  skip_steps: str | None = None) -> argparse.ArgumentParser:
    """The options every whole-system benchmark takes (description: `doc`'s first line);
    `skip_steps` is the help text of `--skip-steps` where the benchmark has one."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--steps", type=int, default=steps, help=steps_help)
    if skip_steps is not None:
        p.add_argument("--skip-steps", type=int, default=1, help=skip_steps)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every run (repeatable)")
    p.add_argument("--json", help="write the numbers to this file")
    p.add_argument("--keep", action="store_true",
                   help="keep the temporary run directories (logs, ledgers) and print where")
    return p


def fmt(value: float | None, spec: str = ".2f", suffix: str = "") -> str:
    """`value` formatted with `spec` and `suffix`; "n/a" for None."""
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


@contextlib.contextmanager
def bench_dir(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A fresh temporary folder for the run directories; removed afterwards unless `keep`."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if keep:
            print(f"run directories kept in {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def demo_config(output_dir: Path, name: str, overrides: Sequence[str] = ()) -> Config:
    """The demo config for one benchmark run: `overrides` first, then what a bench must own
    (run directory under `output_dir`, free ports, nothing else on the machine touched).
    Processes started from here on never reach a model hub (`HF_HUB_OFFLINE`)."""
    from lppo.core.config import load_config
    from lppo.demo.pipeline import with_assets
    from lppo.demo.warmstart import DemoRecipe
    from lppo.testing.postgres import free_ports

    os.environ["HF_HUB_OFFLINE"] = "1"
    work, rollouts, weights = free_ports(3)
    owned = [f"run.output_dir={Path(output_dir).resolve()}", f"run.name={name}",
             "transport.scheme=tcp", f"transport.work_port={work}",
             f"transport.rollout_port={rollouts}", f"transport.weights_port={weights}"]
    cfg = load_config(DEMO_CONFIG, [*overrides, *owned])
    return with_assets(cfg, DEMO_CACHE, DemoRecipe())


def bench_overrides(steps: int, extra: Sequence[str] = ()) -> list[str]:
    """`learner.max_steps = steps`, one checkpoint only (at the end, outside the measured
    window), then the user's `--set` overrides, which win."""
    return [f"learner.max_steps={steps}", f"learner.checkpoint_every={steps}", *extra]


def run_system(cfg: Config, skip_steps: int = 1) -> dict[str, Any]:
    """One supervised run (learner + `actor.count` actors); its ledger numbers and wall time."""
    from lppo.launcher import Supervisor

    start = time.perf_counter()
    result = Supervisor(cfg, view=False).run()
    wall = time.perf_counter() - start
    if result.exit_code:
        raise RuntimeError(f"run {cfg.run.name} failed ({result.exit_code}): {result.reason}")
    stats = ledger_stats(cfg, skip_steps)
    stats["supervisor_wall_s"] = wall
    stats["restarts"] = result.restarts
    return stats


def ledger_stats(cfg: Config, skip_steps: int = 1) -> dict[str, Any]:
    """See the module docstring for the definitions."""
    from store.queries import LedgerReader

    with LedgerReader(cfg.ledger_url) as reader:
        run_id = reader.run_id(cfg.run.name)
        steps = reader.steps(run_id)
        groups = reader.sql(
            f"SELECT received_at, n, tokens FROM rollout_groups WHERE run_id = {run_id} "
            f"AND step_seen >= {int(skip_steps)} ORDER BY received_at", row_limit=10**8).rows
        totals = reader.sql(
            f"SELECT COUNT(*), COALESCE(SUM(n), 0), COUNT(used_in_step) FROM rollout_groups "
            f"WHERE run_id = {run_id}").rows[0]
    if len(steps) <= skip_steps:
        raise RuntimeError(f"run {cfg.run.name}: {len(steps)} steps recorded, need more than "
                           f"{skip_steps} (the warm-up) to measure a steady state")
    out: dict[str, Any] = {"steps": len(steps), "skip_steps": skip_steps,
                           "groups_total": totals[0], "rollouts_total": totals[1],
                           "groups_used_total": totals[2]}
    out.update(_throughput(groups))
    out.update(_step_parts(steps, skip_steps))
    first = steps[0]
    out["train_wall_s"] = steps[-1]["created_at"] - (
        first["created_at"] - first["train_s"] - first["sync_s"])
    return out


def _throughput(groups: list[tuple]) -> dict[str, Any]:
    if len(groups) < 2:
        raise RuntimeError(f"{len(groups)} groups in the steady-state window; need at least 2")
    span = groups[-1][0] - groups[0][0]
    rollouts = sum(n for _, n, _ in groups[1:])
    tokens = sum(t for _, _, t in groups[1:])
    return {"window_s": span, "window_groups": len(groups) - 1, "window_rollouts": rollouts,
            "window_tokens": tokens, "rollouts_per_s": rollouts / span,
            "tokens_per_s": tokens / span}


def _step_parts(steps: list[dict], skip_steps: int) -> dict[str, Any]:
    steady = [s for s in steps if s["step"] > skip_steps]
    wait = [s["gen_wait_s"] for s in steady]
    train = [s["train_s"] for s in steady]
    sync = [s["sync_s"] for s in steady]
    total = sum(wait) + sum(train) + sum(sync)
    covered = steady[-1]["created_at"] - steps[skip_steps - 1]["created_at"] if skip_steps else None
    staleness = [s["mean_staleness"] for s in steady if s["mean_staleness"] is not None]
    return {
        "steady_steps": len(steady),
        "wait_share": sum(wait) / total if total else 0.0,
        "mean_wait_s": statistics.fmean(wait), "mean_train_s": statistics.fmean(train),
        "mean_sync_s": statistics.fmean(sync),
        "step_seconds": total,
        "steady_wall_s": covered,
        "mean_staleness": statistics.fmean(staleness) if staleness else None,
    }


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")
        print(f"numbers written to {path}")
