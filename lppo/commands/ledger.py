"""`lppo ledger upgrade|import|summary`: look after a run's sample ledger.

- `upgrade RUN_DIR_OR_URL` migrates an older ledger to this lppo's schema (the learner does it
  on start too; readers such as the dashboard never do).
- `import CONFIG [--set ...]` reads every data set of `data.train` and `data.eval` (a bad row
  fails with its file, line and reason before anything is written) and imports them into the
  run's ledger in one transaction, reporting duplicates and overlaps between data sets; every
  row is read before the ledger is opened, so bad data creates no ledger.
- `summary RUN_DIR_OR_URL [--run NAME]` prints a run's summary as JSON (times in ISO 8601 UTC).
- `check RUN_DIR_OR_URL [--run NAME]` checks a run's rows (`store.check`): one line per
  violation and exit status 1, or `0 violations`.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from lppo.commands import add_config_args


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("ledger", help="upgrade a ledger, import data sets, summarise a run")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser("upgrade", help="migrate a ledger to the current schema")
    up.add_argument("target", metavar="RUN_DIR_OR_URL")
    up.set_defaults(handler=run_upgrade)
    imp = actions.add_parser("import", help="import the config's data sets into its ledger")
    add_config_args(imp)
    imp.set_defaults(handler=run_import)
    summary = actions.add_parser("summary", help="print a run's summary as JSON")
    summary.add_argument("target", metavar="RUN_DIR_OR_URL")
    summary.add_argument("--run", default=None, help="run name (default: the latest run)")
    summary.set_defaults(handler=run_summary)
    check = actions.add_parser("check", help="check a run's rows for consistency (exit 1 on "
                                             "any violation)")
    check.add_argument("target", metavar="RUN_DIR_OR_URL")
    check.add_argument("--run", default=None, help="run name (default: the latest run)")
    check.set_defaults(handler=run_check)


def run_upgrade(args: argparse.Namespace) -> int:
    from store.db import current_revision, ensure_schema, head_revision, resolve_url, writer_engine

    engine = writer_engine(resolve_url(args.target))
    try:
        before = current_revision(engine)
        ensure_schema(engine, writable=True)
    finally:
        engine.dispose()
    head = head_revision()
    if before == head:
        print(f"{args.target}: already at schema {head}")
    else:
        print(f"{args.target}: schema {before or '(empty)'} -> {head}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from lppo.core.config import load_config
    from lppo.core.errors import UserError
    from store.datasets import import_records, read_datasets
    from store.ledger import Ledger

    cfg = load_config(args.config, args.overrides)
    specs = [*cfg.data.train, *cfg.data.eval]
    if not specs:
        raise UserError(f"{args.config}: no data sets in data.train or data.eval")
    records = read_datasets(specs)  # a bad row fails here, before a ledger is created
    with Ledger.open(cfg) as ledger:
        result = import_records(ledger, records)
    for name, res in result.datasets.items():
        extra = "".join(f", {n} also in {other}" for other, n in res.overlaps.items())
        print(f"{name}: {res.rows} rows, {res.inserted} new, {res.existing} already there, "
              f"{len(res.duplicates)} duplicates skipped{extra}")
    return 0


def run_summary(args: argparse.Namespace) -> int:
    from store.queries import LedgerReader

    with LedgerReader(args.target) as reader:
        summary = reader.summary(args.run)
    for key in ("started_at", "updated_at", "ended_at"):  # unix seconds -> ISO 8601, UTC
        if isinstance(summary.get(key), int | float):
            summary[key] = datetime.fromtimestamp(summary[key], UTC).isoformat(timespec="seconds")
    json.dump(summary, sys.stdout, indent=1, default=str)
    sys.stdout.write("\n")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from store.check import check_run
    from store.queries import LedgerReader

    with LedgerReader(args.target) as reader:
        violations = check_run(reader, args.run)
        name = reader.summary(args.run)["name"]
    for v in violations:
        print(f"{v.rule}: {v.detail}")
    print(f"run {name}: {len(violations)} violations")
    return 1 if violations else 0
