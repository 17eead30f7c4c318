"""`lppo actor CONFIG [--learner tcp://HOST:PORT] [--actor-id ID]`: run one actor process."""

from __future__ import annotations

import argparse

from lppo.commands import add_config_args


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("actor", help="run an actor: generate and verify rollouts for a learner")
    add_config_args(parser)
    parser.add_argument(
        "--learner", metavar="tcp://HOST:PORT",
        help="learner work address (default: this machine's addresses from transport.*)",
    )
    parser.add_argument("--actor-id", help="stable actor name (default: actor-<random>)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lppo.core.config import load_config
    from lppo.core.logs import setup_logging

    cfg = load_config(args.config, args.overrides)
    from actor.loop import new_actor_id

    actor_id = args.actor_id or new_actor_id()
    setup_logging(cfg.run.log_level, cfg.run.log_format, process=actor_id)
    from actor.main import run_actor

    return run_actor(cfg, actor_id, args.learner)
