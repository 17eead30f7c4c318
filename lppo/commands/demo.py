"""`lppo demo`: the embedded demo.

Stage reached so far (foundation): the demo resolves `configs/demo.toml`, creates the run
directory with the resolved config, then runs the wire check (`lppo.wirecheck`): a learner
process and an actor process exchange every message kind of the protocol over real ZeroMQ
sockets on 127.0.0.1, and the learner side verifies every array that crossed. It prints what
it did. The full LPPO demo (tiny model, vLLM actors, ledger) replaces this as it lands.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
from pathlib import Path

from lppo.commands import add_config_args

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.toml"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="run the embedded demo on this machine (CPU, no download)")
    add_config_args(parser, required=False)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lppo.config import load_config, save_config
    from lppo.logs import setup_logging
    from lppo.transport import Endpoints
    from lppo.wirecheck import actor_side, learner_side

    cfg = load_config(args.config or DEFAULT_CONFIG, args.overrides)
    setup_logging(cfg.run.log_level, cfg.run.log_format, process="demo")
    run_dir = cfg.run.run_dir
    saved = save_config(cfg, run_dir / "config.toml")
    ends = Endpoints.from_config(cfg.transport, run_dir)
    print(f"run directory: {run_dir} (resolved config: {saved})")
    print(f"learner endpoints: work {ends.work}, rollouts {ends.rollouts}, weights {ends.weights}")

    actor = mp.get_context("spawn").Process(
        target=actor_side, args=(ends, cfg.transport, "actor-0"), name="actor-0"
    )
    actor.start()
    try:
        report = learner_side(ends, cfg.transport)
    finally:
        actor.join(timeout=10)
        if actor.is_alive():
            actor.kill()
    if actor.exitcode != 0:
        print(f"actor process exited with status {actor.exitcode}")
        return 1
    print(
        f"wire check passed in {report.seconds:.2f} s between this process (learner side) and "
        f"actor-0 (pid {actor.pid}):"
    )
    print(f"  received: {_fmt(report.received)}")
    print(f"  sent:     {_fmt(report.sent)}")
    print(f"  rejected frames: {report.rejected}")
    print("The training pipeline (ledger, verifier, vLLM actors, learner) is not wired into the "
          "demo yet; this run exercised the protocol they share.")
    return 0


def _fmt(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} x{v}" for k, v in counts.items())
