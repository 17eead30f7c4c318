"""Transfer probe: which prefix learning signal teaches the policy to write the hard part alone?

    .venv/bin/python bench/transfer_probe.py [--steps 20] [--seeds 0,1,2] [--arms a,b]
        [--lr 3e-5] [--json out.json]

Plain PyTorch, no actor, no sockets: the demo's warm-started model (`runs/_cache`), its hard
level only. Each step takes 16 of 64 level-3 training problems, guides them at ratio 0.5 (the
prefix the learner would cut: `prepare_solution`), samples 8 completions each with
transformers at temperature 1, scores them with the task's strict reader, and trains one step
with the learner's own batch assembly (`learner.assemble`: advantages, prefix terms) and
trainer (`learner.trainer.Trainer`: the PPO loss, AdamW). Curation as in the learner: all-wrong
groups are dropped, all-correct ones too unless their prefix is taught. The arms differ only
in `lppo.pg` (what the guided groups teach about their prefix):

    masked            prefix tokens get no gradient (LPPO as published; the default)
    off_policy_group  LUFFY's off-policy term, advantage against the guided group's baseline
    off_policy_ema    the same term against the sample's unguided pass rate (here: the warm
                      start's exact probability of solving it, as a converged EMA would read)
    sft               a supervised term on the prefix of groups with a correct completion
    mixed             half of each group without the prefix (LUFFY's mixed rollouts), masked
    mixed_off_policy  mixed groups with the off-policy term (ema baseline)

Measured on 500 held-out level-3 problems (`DemoRecipe.probe_set`: never trained on, and not
the problems the ablation bench and the demo report on, so choosing by this probe is not
tuning on them), with no sampling noise, before training and every `--every` steps: the
log-probability of writing the hard part unguided (the expert prefix at ratio 0.5: the
multiplication), and the exact probability of writing the whole expert solution
(`lppo.demo.measure`'s measure). Prints per arm the change of both, the mean over seeds and
its standard error, paired with `masked` by seed (same problems, same batches).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARMS = {
    "masked": {},
    "off_policy_group": {"off_policy_loss": True, "off_policy_baseline": "group"},
    "off_policy_ema": {"off_policy_loss": True, "off_policy_baseline": "ema"},
    "sft": {"sft_coef": 1.0},
    "mixed": {"guided_share": 0.5},
    "mixed_off_policy": {"guided_share": 0.5, "off_policy_loss": True},
}
TRAIN, HELD_OUT, BATCH, N, RATIO = 64, 500, 16, 8, 0.5


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--every", type=int, default=5, help="measure every this many steps")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--lr", type=float, default=3e-5, help="the demo's rate")
    p.add_argument("--json", help="write the numbers to this file")
    return p.parse_args(argv)


def problems():
    """(64 level-3 training problems, 500 held-out level-3 problems), disjoint; the held-out
    ones are not those the ablation and the demo report on (`DemoRecipe.probe_set`)."""
    from lppo.demo import task
    from lppo.demo.pipeline import EXACT_PER_LEVEL
    from lppo.demo.warmstart import DemoRecipe

    recipe = DemoRecipe()
    _, train, _ = recipe.problem_sets()
    held = [p for p in recipe.probe_set(HELD_OUT, EXACT_PER_LEVEL) if p.level == 3]
    return [p for p in train if p.level == 3][:TRAIN], held, task


def config(model_dir: Path, lr: float, seed: int, pg: dict):
    """The learner settings of one arm: the demo's model, rate and group size; LP off."""
    from lppo.core.config import Config

    return Config.model_validate({
        "run": {"seed": seed}, "model": {"path": str(model_dir), "dtype": "float32",
                                         "max_model_len": 512},
        "learner": {"lr": lr, "group_size": N, "batch_groups": BATCH, "max_steps": 1000,
                    "device": "cpu"},
        "actor": {"sampling": {"max_tokens": 128}},
        "data": {"prompt_format": "plain", "max_prompt_tokens": 128},
        "lppo": {"pg": pg, "lp": {"enabled": False}},
    })


def main(argv=None) -> int:
    args = parse(argv)
    from bench.probe_parts import Probe, summarize

    model_dir = ROOT / "runs" / "_cache" / "tiny-qwen2"
    if not (model_dir / "config.json").is_file():
        print("no warm-started model in runs/_cache: run `make demo` first", file=sys.stderr)
        return 2
    train, held, task = problems()
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, dict[int, dict]] = {a: {} for a in arms}
    start = time.perf_counter()
    for seed in seeds:
        for arm in arms:
            probe = Probe(config(model_dir, args.lr, seed, ARMS[arm]), train, held, task)
            t = time.perf_counter()
            curve = probe.run(args.steps, args.every)
            results[arm][seed] = curve
            last = curve[-1]
            print(f"{arm:18s} seed {seed}: hard part log-prob {curve[0]['hard_logp']:+.3f} -> "
                  f"{last['hard_logp']:+.3f}, exact {100 * curve[0]['exact']:.2f}% -> "
                  f"{100 * last['exact']:.2f}%, guided pass {last['guided_pass']:.2f} "
                  f"({time.perf_counter() - t:.0f} s)", flush=True)
    print()
    summary = summarize(results, baseline="masked")
    for line in summary["lines"]:
        print(line)
    print(f"\n{len(arms)} arms x {len(seeds)} seeds x {args.steps} steps in "
          f"{time.perf_counter() - start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results,
                                               "summary": summary["numbers"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

