"""Entry point of one actor process: config first, then the heavy imports, then the loop.

    lppo actor CONFIG [--learner tcp://HOST:PORT] [--actor-id ID] [--set ...]

Without `--learner`, the actor connects to the addresses the config gives for this machine
(`transport.*`, tcp or ipc). The engine (vLLM by default) and the reward pool are created here,
after the config has been validated, and torn down on exit whatever the cause.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import zmq

from lppo.core.config import Config
from lppo.core.transport import ActorSockets, Endpoints

log = logging.getLogger(__name__)


def run_actor(cfg: Config, actor_id: str, learner: str | None = None) -> int:
    """Run one actor until Shutdown or SIGTERM; returns the process exit status."""
    from actor.engine import create_engine
    from actor.loop import Actor
    from actor.reward import RewardPool
    from lppo.core.cpus import pin_from_env
    from lppo.core.signals import stop_on_signals

    if (cores := pin_from_env()) is not None:
        log.info("actor %s pinned to cores %s", actor_id, cores)
    if learner:
        ends = Endpoints.for_learner(learner, cfg.transport)
    else:
        ends = Endpoints.from_config(cfg.transport, cfg.run.run_dir)
    log.info("actor %s: learner at %s, model %s", actor_id, ends.work, cfg.model.path)
    ctx = zmq.Context()
    socks = ActorSockets.connect(ctx, ends, cfg.transport, actor_id)
    engine = None
    try:
        with RewardPool(cfg.actor.reward) as pool:
            engine = create_engine(cfg)
            actor = Actor(cfg, actor_id, engine, pool, socks,
                          learner_host=urlsplit(ends.work).hostname or "127.0.0.1")
            stop_on_signals(actor.stop)
            stats = actor.run()
        log.info("actor %s done: %d groups, %d completions, %d tokens, %d weight loads",
                 actor_id, stats.groups_sent, stats.completions, stats.tokens, stats.weight_loads)
        return 0
    finally:
        if engine is not None:
            engine.close()
        socks.close()
        ctx.term()
