"""Sample efficiency: learner steps (and wall time) to the demo's accuracy target, LPPO vs GRPO.

    .venv/bin/python bench/sample_efficiency.py [--seeds 0,1,2] [--steps 40] [--eval-every 5]
        [--target 0.60] [--k K] [--methods lppo,grpo] [--set KEY=VALUE ...] [--json out.json]

Method. For each seed and method, one supervised run of the embedded demo (`configs/demo.toml`,
its cached warm-started model and task files, `run.seed = seed`) keeping every
`eval_every`-th published weights version (`learner.keep_weights_every`). After the run one
evaluation engine (vLLM, `learner.eval` sampling, `k` samples per problem) scores the base
model and each kept version on the held-out set (`data.eval`): pass@1 averaged over k, the
demo's accuracy. The steps to target are the first evaluated step whose accuracy is at least
`--target` (default 0.60, the demo's accuracy target: about 2 points above the warm-started
model, 0.575-0.589 at the demo's evaluation settings, temperature 1 and k = 8, so more than
the ~1.1-point paired standard error of one evaluation). The wall time to target is that
step's end (`train_steps.created_at`) minus the run's start (`runs.started_at`), so it
includes the actors' start-up. Evaluation is outside
the timed run, so it costs the run nothing.

Methods (the only difference between them):

    lppo   the demo config as shipped: LP weights, PG-sampling, curation
    grpo   `lppo.lp.enabled=false lppo.pg.enabled=false`: plain GRPO with dynamic sampling
           (curation still drops all-correct / all-wrong groups and over-dispatches)

Prints one line per run (accuracy curve), then per method the mean and spread (sample
standard deviation, min-max) of steps and wall time to target over the runs that reached it,
the number that did, the final accuracy and its gain over step 0; then the ratio of mean steps
GRPO / LPPO (> 1: LPPO needs fewer steps), only when every run of both reached the target (a
mean over the runs that did would hide the misses), and the final-accuracy difference LPPO -
GRPO paired by seed (both runs of a seed share the evaluation of the base model). Runs are
sequential (one system at a time on 2 cores).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import fmt, system_parser  # noqa: E402 - after the path is set

METHODS = {
    "lppo": [],
    "grpo": ["lppo.lp.enabled=false", "lppo.pg.enabled=false"],
}


def learning_curve(cfg, every: int, steps: int, k: int | None) -> dict[int, float]:
    """Held-out accuracy (mean pass@1 over `data.eval`) of the base model and each kept version."""
    from actor.evaluate import Evaluator

    curve: dict[int, float] = {}
    with Evaluator(cfg) as ev:
        for version in [0, *range(every, steps + 1, every)]:
            if version:
                ev.load_weights(cfg.run.run_dir / "weights" / f"v{version}")
            report = ev.evaluate(cfg.data.eval, step=version, k=k)
            values = [b.metrics()["pass@1"] for b in report.benchmarks]
            curve[version] = sum(values) / len(values)
    return curve


def step_times(cfg) -> dict[int, float]:
    """Seconds from the run's start to the end of each learner step."""
    from store.queries import LedgerReader

    with LedgerReader(cfg.ledger_url) as reader:
        run_id = reader.run_id(cfg.run.name)
        rows = reader.sql(
            f"SELECT s.step, s.created_at - r.started_at FROM train_steps s JOIN runs r "
            f"ON r.id = s.run_id WHERE s.run_id = {run_id} ORDER BY s.step").rows
    return {int(step): float(t) for step, t in rows}


def one_run(tmp: Path, method: str, seed: int, args) -> dict[str, Any]:
    from bench.common import bench_overrides, demo_config, run_system

    name = f"{method}-s{seed}"
    overrides = bench_overrides(args.steps, [
        f"run.seed={seed}", f"learner.keep_weights_every={args.eval_every}",
        *METHODS[method], *args.overrides])
    cfg = demo_config(tmp, name, overrides)
    stats = run_system(cfg)
    curve = learning_curve(cfg, args.eval_every, args.steps, args.k)
    times = step_times(cfg)
    hit = next((s for s, acc in sorted(curve.items()) if acc >= args.target), None)
    row = {"method": method, "seed": seed, "curve": curve, "steps_to_target": hit,
           "seconds_to_target": times.get(hit, 0.0) if hit is not None else None,
           "final_accuracy": curve[max(curve)], "run_wall_s": stats["supervisor_wall_s"],
           "wait_share": stats["wait_share"]}
    shown = " ".join(f"{s}:{a:.3f}" for s, a in sorted(curve.items()))
    print(f"{name}: accuracy by step {shown} | target {args.target:.2f} at step {hit} "
          f"({fmt(row['seconds_to_target'], '.0f', ' s')}) | run {row['run_wall_s']:.0f} s",
          flush=True)
    return row


def spread(values: list[float]) -> dict[str, Any]:
    """Mean, sample standard deviation, min and max (None where there is nothing to show)."""
    if not values:
        return {"n": 0, "mean": None, "sd": None, "min": None, "max": None}
    return {"n": len(values), "mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def summarize(rows: list[dict[str, Any]], methods: list[str]) -> dict[str, Any]:
    """`methods`: per method, runs, how many reached the target, steps / seconds to it (over
    those that did), final accuracy and gain over step 0; `lppo_minus_grpo_final`: the
    final-accuracy difference paired by seed (same base evaluation), over the seeds run with
    both."""
    out: dict[str, Any] = {}
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        reached = [r for r in mine if r["steps_to_target"] is not None]
        out[m] = {"runs": len(mine), "reached": len(reached),
                  "steps": spread([r["steps_to_target"] for r in reached]),
                  "seconds": spread([r["seconds_to_target"] for r in reached]),
                  "final_accuracy": spread([r["final_accuracy"] for r in mine]),
                  "gain": spread([r["final_accuracy"] - r["curve"][0] for r in mine])}
    final = {(r["method"], r["seed"]): r["final_accuracy"] for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    paired = [final[("lppo", s)] - final[("grpo", s)] for s in seeds
              if ("lppo", s) in final and ("grpo", s) in final]
    return {"methods": out, "lppo_minus_grpo_final": spread(paired)}


def print_summary(summary: dict[str, Any], target: float) -> None:
    print(f"\nsteps to held-out accuracy >= {target:.2f} (mean +- sd [min-max] over the runs "
          f"that reached it):")
    methods = summary["methods"]
    for m, s in methods.items():
        st, sec, acc, gain = s["steps"], s["seconds"], s["final_accuracy"], s["gain"]
        print(f"  {m:5s} reached {s['reached']}/{s['runs']}: steps "
              f"{fmt(st['mean'], '.1f')} +- {fmt(st['sd'], '.1f')} "
              f"[{fmt(st['min'], '.0f')}-{fmt(st['max'], '.0f')}], wall "
              f"{fmt(sec['mean'], '.0f', ' s')} +- {fmt(sec['sd'], '.0f', ' s')}; "
              f"final accuracy {acc['mean']:.3f} +- {acc['sd']:.3f} "
              f"[{acc['min']:.3f}-{acc['max']:.3f}], gain over step 0 "
              f"{gain['mean']:+.3f} +- {gain['sd']:.3f}")
    lp, gr = methods.get("lppo"), methods.get("grpo")
    if not (lp and gr):
        return
    if lp["reached"] < lp["runs"] or gr["reached"] < gr["runs"]:
        # A mean over the runs that reached the target would hide the ones that did not.
        print(f"  ratio of mean steps to target: not shown, not every run reached the target "
              f"(LPPO {lp['reached']}/{lp['runs']}, GRPO {gr['reached']}/{gr['runs']})")
    elif not lp["steps"]["mean"]:
        print("  ratio of mean steps to target: not shown, the base model already meets it")
    else:
        print(f"  ratio of mean steps to target, GRPO / LPPO: "
              f"{gr['steps']['mean'] / lp['steps']['mean']:.2f} (> 1: LPPO needs fewer)")
    d = summary["lppo_minus_grpo_final"]
    if d["n"]:
        print(f"  final accuracy LPPO - GRPO, paired by seed: {d['mean']:+.3f} +- {d['sd']:.3f} "
              f"[{d['min']:+.3f} to {d['max']:+.3f}] over {d['n']} seeds")


def main(argv: list[str] | None = None) -> int:
    from bench.common import bench_dir, write_json

    p = system_parser(__doc__, steps=40, steps_help="learner steps per run")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds")
    p.add_argument("--methods", default="lppo,grpo", help=f"any of {','.join(METHODS)}")
    p.add_argument("--eval-every", type=int, default=5, help="evaluate every N-th version")
    p.add_argument("--target", type=float, default=0.60, help="held-out accuracy target")
    p.add_argument("--k", type=int, default=None,
                   help="samples per held-out problem (default: learner.eval.k of the config)")
    args = p.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - set(METHODS)
    if unknown:
        p.error(f"--methods: unknown {sorted(unknown)}; choose from {sorted(METHODS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    with bench_dir("lppo-bench-se-", args.keep) as tmp:
        for seed in seeds:  # methods interleaved, so machine drift hits both alike
            for method in methods:
                rows.append(one_run(tmp, method, seed, args))
    summary = summarize(rows, methods)
    print_summary(summary, args.target)
    write_json(args.json, {"args": vars(args), "runs": rows, "summary": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
