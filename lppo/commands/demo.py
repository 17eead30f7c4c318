"""`lppo demo [CONFIG] [--set ...]`: the embedded demo (see lppo/demo/pipeline.py)."""

from __future__ import annotations

import argparse

from lppo.commands import add_config_args, invoked_as


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo", help="run the embedded demo: warm-started tiny model, LPPO with vLLM actors on "
                     "this CPU, held-out accuracy before and after (nothing downloaded)")
    add_config_args(parser, required=False)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import logging
    import os
    import warnings

    from lppo.core.config import load_config
    from lppo.core.resources import shipped_file

    # The demo's output is its progress and summary: vLLM's start-up chatter (in this process
    # for the evaluations, and in the actors' log files) is cut to errors unless the user set
    # a level. `lppo run` / `lppo eval` keep vLLM's default.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    if os.environ["VLLM_LOGGING_LEVEL"] == "ERROR":
        logging.getLogger("vllm").setLevel(logging.ERROR)  # also its import-time messages
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"vllm\.")
    from lppo.core.logs import setup_logging

    cfg = load_config(args.config or shipped_file("configs/demo.toml"), args.overrides)
    setup_logging(cfg.run.log_level, cfg.run.log_format, process="demo")
    from lppo.demo.pipeline import report, run_demo

    result = run_demo(cfg)
    print(report(result, invoked_as()))
    return result.exit_code
