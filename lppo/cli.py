"""The `lppo` command: a thin dispatcher over `lppo.commands.*`.

Each subcommand lives in its own module under `lppo/commands/` with `register(subparsers)`
adding its parser and a `run(args) -> int` function set as the parser's `handler`. This file
imports nothing heavy: torch and vLLM are imported inside the commands that need them, after
the config has been parsed, so `lppo --help` and `lppo config check` stay fast.

Errors in user input (`UserError`) end as one message on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from lppo.errors import UserError

# Modules under lppo.commands, in the order `lppo --help` lists them.
COMMANDS = ("demo", "run", "config", "learner", "actor", "eval", "sql", "ledger", "dashboard")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lppo",
        description="Asynchronous actor-learner RLVR with LPPO (prefix-guided sampling, "
        "learning-progress weighting, online curation) and a SQL sample ledger.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"lppo.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UserError as exc:
        print(f"lppo {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"lppo {args.command}: interrupted", file=sys.stderr)
        return 130


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lppo")
    except PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
