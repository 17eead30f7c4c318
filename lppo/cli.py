"""The `lppo` command: a thin dispatcher over `lppo.commands.*`.

Each subcommand lives in its own module under `lppo/commands/` with `register(subparsers)`
adding its parser and a `run(args) -> int` function set as the parser's `handler`. This file
imports nothing heavy: torch and vLLM are imported inside the commands that need them, after
the config has been parsed, so `lppo --help` and `lppo config check` stay fast.

Errors in user input (`UserError`) end as one message on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from collections.abc import Sequence

from lppo.core.errors import UserError, one_line

# Modules under lppo.commands, in the order `lppo --help` lists them.
COMMANDS = ("demo", "run", "config", "learner", "actor", "eval", "sql", "ledger", "dashboard",
            "replay")


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
    except Exception as exc:
        full = _disk_full(exc)
        if full is None:
            raise  # a bug: its traceback is what a maintainer needs
        print(f"lppo {args.command}: error: {one_line(full)}: free some space, then run "
              "again (with --resume to continue a run)", file=sys.stderr)
        return 1


def _disk_full(exc: BaseException) -> OSError | None:
    """The `No space left on device` (or quota) error behind `exc`, if that is what it is."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lppo")
    except PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
