"""`lppo learner CONFIG [--resume]`: run the learner process (trainer, scheduler, ledger)."""

from __future__ import annotations

import argparse

from lppo.commands import add_config_args


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("learner", help="run the learner: schedule work, train, publish weights")
    add_config_args(parser)
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in the run directory")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lppo.core.config import load_config
    from lppo.core.logs import setup_logging

    cfg = load_config(args.config, args.overrides)
    setup_logging(cfg.run.log_level, cfg.run.log_format, process="learner")
    from learner.main import run_learner

    return run_learner(cfg, resume=args.resume)
