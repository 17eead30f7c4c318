"""`lppo replay RUN_DIR --step N [--checkpoint PATH] [--set ...]`: re-run one learner step
from its rollout dump and compare its loss and gradient norm with the run's (learner/replay.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "replay", help="re-run one learner step from its rollout dump (learner.dump_rollouts)",
        description="Re-run step N of a run on the batch it trained on (rollouts/step_N), "
        "starting from the weights it started from, and print the loss and gradient norm "
        "beside those the run recorded.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run directory (runs/NAME)")
    parser.add_argument("--step", type=int, required=True, help="the step to re-run (>= 1)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="start from these weights (default: the run's checkpoint of "
                             "step N-1, or the initial model for step 1)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a value of the run's config")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lppo.core.config import load_config
    from lppo.core.errors import UserError
    from lppo.core.logs import setup_logging

    config = Path(args.run_dir) / "config.toml"
    if not config.is_file():
        raise UserError(f"{args.run_dir}: not a run directory (no config.toml)")
    if args.step < 1:
        raise UserError(f"--step: expected >= 1, got {args.step}")
    cfg = load_config(config, args.overrides)
    setup_logging(cfg.run.log_level, cfg.run.log_format, process="replay")
    from learner.replay import replay_step

    r = replay_step(cfg, args.step, args.checkpoint)
    print(f"step {r.step} replayed from {r.weights} on {r.stats.sequences} completions, "
          f"{r.stats.tokens} loss tokens")
    for name, got in (("loss", r.stats.loss), ("grad_norm", r.stats.grad_norm)):
        was = r.recorded[name]
        diff = "" if was is None else f"   (recorded {was:.6g}, difference {got - was:+.3g})"
        print(f"  {name:<9} {got:.6g}{diff}")
    return 0
