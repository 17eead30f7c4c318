"""Sample efficiency: learner steps (and wall time) to the demo's accuracy target, LPPO vs GRPO.

    .venv/bin/python bench/sample_efficiency.py [--seeds 0,1,2] [--steps 40] [--eval-every 5]
        [--measure exact|sampled] [--target-gain 0.01] [--k K] [--methods lppo,grpo]
        [--set KEY=VALUE ...] [--json out.json]

Method. For each seed and method, one supervised run of the embedded demo (`configs/demo.toml`,
its cached warm-started model and task files, `run.seed = seed`) keeping every
`eval_every`-th published weights version (`learner.keep_weights_every`). After the run the
base model and each kept version are scored on held-out problems, by one of the demo's two
measures:

    exact    (default) the probability of writing the expert solution verbatim, on the
             demo's 3,000 extra held-out problems (`lppo.demo.pipeline.exact_accuracy`):
             no sampling noise, one teacher-forced pass per version
    sampled  pass@1 averaged over k samples (vLLM, `learner.eval` sampling) on `data.eval`,
             the 300 problems of the demo's sampled evaluation; its paired standard error
             (~1.1 points at k = 8) is as large as the gains of a 40-step run

The steps to target are the first evaluated step whose accuracy is at least step 0's plus
`--target-gain` (default 0.01: one point, about 7 standard errors of the exact measure's
paired gain, and what the demo's rate reaches in ~10 steps). The wall time to target is that
step's end (`train_steps.created_at`) minus the run's start (`runs.started_at`), so it
includes the actors' start-up. Evaluation is outside the timed run, so it costs the run
nothing.

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


def learning_curve(cfg, every: int, steps: int, measure: str,
                   k: int | None) -> dict[int, float]:
    """Held-out accuracy of the base model (0) and each kept version, by `measure`."""
    versions = [0, *range(every, steps + 1, every)]
    if measure == "exact":
        return exact_curve(cfg, versions)
    return sampled_curve(cfg, versions, k)


def exact_curve(cfg, versions: list[int]) -> dict[int, float]:
    """Mean exact P(expert solution) on the demo's extra held-out problems, per version."""
    from lppo.demo.pipeline import exact_accuracy
    from lppo.demo.warmstart import DemoRecipe

    weights = [cfg.run.run_dir / "weights" / f"v{v}" if v else None for v in versions]
    probs = exact_accuracy(cfg, DemoRecipe(), weights)
    return {v: sum(p) / len(p) for v, p in zip(versions, probs, strict=True)}


def sampled_curve(cfg, versions: list[int], k: int | None) -> dict[int, float]:
    """Mean pass@1 over `data.eval` (k samples per problem, one vLLM engine), per version."""
    from actor.evaluate import Evaluator

    curve: dict[int, float] = {}
    with Evaluator(cfg) as ev:
        for version in versions:
            if version:
                ev.load_weights(cfg.run.run_dir / "weights" / f"v{version}")
            report = ev.evaluate(cfg.data.eval, step=version, k=k)
            values = [b.metrics()["pass@1"] for b in report.benchmarks]
            curve[version] = sum(values) / len(values)
    return curve


def steps_to_target(curve: dict[int, float], target_gain: float) -> int | None:
    """The first step whose accuracy is at least step 0's plus `target_gain` (None: never)."""
    target = curve[0] + target_gain
    return next((s for s, acc in sorted(curve.items()) if acc >= target), None)


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
    curve = learning_curve(cfg, args.eval_every, args.steps, args.measure, args.k)
    times = step_times(cfg)
    hit = steps_to_target(curve, args.target_gain)
    row = {"method": method, "seed": seed, "curve": curve, "steps_to_target": hit,
           "seconds_to_target": times.get(hit, 0.0) if hit is not None else None,
           "final_accuracy": curve[max(curve)], "run_wall_s": stats["supervisor_wall_s"],
           "wait_share": stats["wait_share"]}
    shown = " ".join(f"{s}:{a:.3f}" for s, a in sorted(curve.items()))
    print(f"{name}: accuracy by step {shown} | target (step 0 + {args.target_gain:.3f}) at "
          f"step {hit} ({fmt(row['seconds_to_target'], '.0f', ' s')}) | "
          f"run {row['run_wall_s']:.0f} s",
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


def print_summary(summary: dict[str, Any], target_gain: float) -> None:
    print(f"\nsteps to held-out accuracy >= step 0 + {target_gain * 100:.1f} points (mean +- sd "
          f"[min-max] over the runs that reached it):")
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
    p.add_argument("--measure", choices=("exact", "sampled"), default="exact",
                   help="held-out accuracy measure (module docstring)")
    p.add_argument("--target-gain", type=float, default=0.01,
                   help="target: held-out accuracy of step 0 plus this (0.01: one point)")
    p.add_argument("--k", type=int, default=None,
                   help="sampled measure: samples per problem (default: learner.eval.k)")
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
    print_summary(summary, args.target_gain)
    write_json(args.json, {"args": vars(args), "runs": rows, "summary": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
