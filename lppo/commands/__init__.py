"""Subcommands of the `lppo` CLI, one module each (see `lppo.cli`)."""

from __future__ import annotations

import argparse


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
