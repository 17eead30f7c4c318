"""`lppo run CONFIG [--set ...] [--resume]`: learner + actors on this machine, supervised."""

from __future__ import annotations

import argparse

from lppo.commands import add_config_args


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("run", help="start the learner and actor.count actors here and "
                                        "supervise them (live progress, actor restarts)")
    add_config_args(parser)
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in the run directory")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lppo.core.config import load_config
    from lppo.core.logs import setup_logging
    from lppo.core.secrets import redact_url
    from lppo.launcher import Supervisor

    cfg = load_config(args.config, args.overrides)
    setup_logging(cfg.run.log_level, cfg.run.log_format, process="run")
    result = Supervisor(cfg, resume=args.resume).run()
    if result.restarts:
        print(f"actor restarts: {result.restarts}")
    if result.exit_code:
        print(f"lppo run: {result.reason}")
    else:
        print(f"lppo run: {result.reason}; ledger: {redact_url(cfg.ledger_url)}")
    return result.exit_code
