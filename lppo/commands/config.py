"""`lppo config show|check CONFIG [--set ...]`: print or validate a resolved config."""

from __future__ import annotations

import argparse
import sys

from lppo.commands import add_config_args


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("config", help="show or check a config file")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="print the resolved config (defaults filled in) as TOML")
    add_config_args(show)
    show.add_argument("--docs", action="store_true",
                      help="precede every key with its description and default (as comments)")
    show.set_defaults(handler=run_show)
    check = actions.add_parser("check", help="validate a config; exit 2 with every problem found")
    add_config_args(check)
    check.add_argument("--strict", action="store_true",
                       help="also check that what the config names exists: the model folder "
                            "and tokenizer, every data set (each row read), the ledger's URL")
    check.set_defaults(handler=run_check)


def run_show(args: argparse.Namespace) -> int:
    from lppo.core.config import dump_config, load_config

    sys.stdout.write(dump_config(load_config(args.config, args.overrides), docs=args.docs))
    return 0


def run_check(args: argparse.Namespace) -> int:
    from lppo.core.config import load_config

    cfg = load_config(args.config, args.overrides)
    if args.strict:
        from lppo.checks import strict_check

        report = strict_check(cfg)
        for note in report.notes:
            print(f"  {note}")
        if report.problems:
            print(f"{args.config}: {len(report.problems)} problem(s):", file=sys.stderr)
            for problem in report.problems:
                print(f"  {problem}", file=sys.stderr)
            return 2
    checked = "" if args.strict else "; --strict also checks the files and URLs it names"
    print(f"{args.config}: ok (run {cfg.run.name!r}, model {cfg.model.path!r}){checked}")
    return 0
