"""Subcommands of the `lppo` CLI, one module each (see `lppo.cli`)."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def add_config_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """The CONFIG positional and repeated `--set dotted.key=value` overrides."""
    parser.add_argument(
        "config", nargs=None if required else "?", metavar="CONFIG",
        help="TOML config file, or the name of a config lppo ships (demo, gsm8k-smollm2-135m, ...)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set learner.lr=1e-6 (repeatable; values are "
        "parsed as TOML, falling back to a string)",
    )


def invoked_as() -> str:
    """How to type `lppo` again, as this process was started: `lppo` where that name on PATH
    is this very program, else the path it was started by (`.venv/bin/lppo` under `make
    demo`), else `python -m lppo.cli`."""
    started = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if started is None or started.name != "lppo":
        return f"{sys.executable} -m lppo.cli"
    found = shutil.which("lppo")
    if found and Path(found).resolve() == started.resolve():
        return "lppo"
    return str(started)
