"""`lppo sql RUN_DIR_OR_URL "SELECT ..."`: read-only SQL over a run's ledger.

Prints an aligned table (or `--csv` / `--json`). Only SELECT, WITH, EXPLAIN and VALUES run,
on a connection that cannot write anyway (see `store.sql`); a statement timeout and a row limit
apply (defaults: `store.statement_timeout_s`, `store.row_limit`). RUN_DIR means
`RUN_DIR/ledger.db`; a URL (`postgresql+psycopg://...`) points at a shared ledger. The tables
and ten example queries are in docs/queries.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from typing import Any

from lppo.core.config.schema import StoreConfig

MAX_CELL = 60  # table cells longer than this are cut (CSV and JSON are never cut)


def register(sub: argparse._SubParsersAction) -> None:
    defaults = StoreConfig()
    parser = sub.add_parser(
        "sql", help="run a read-only SQL query on a ledger",
        description="Run one read-only query (SELECT, WITH, EXPLAIN, VALUES) on a ledger. "
        "Tables: runs, samples, sample_state, rollout_groups, rollouts, train_steps, "
        "eval_results (docs/queries.md).",
    )
    parser.add_argument("target", metavar="RUN_DIR_OR_URL",
                        help="run directory (its ledger.db), SQLite file, or SQLAlchemy URL")
    parser.add_argument("query", metavar="QUERY", help='e.g. "SELECT * FROM runs"')
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="print CSV with a header row")
    fmt.add_argument("--json", action="store_true", help="print a JSON list of objects")
    parser.add_argument("--limit", type=int, default=defaults.row_limit, metavar="N",
                        help=f"most rows returned (default {defaults.row_limit})")
    parser.add_argument("--timeout", type=float, default=defaults.statement_timeout_s,
                        metavar="S", help="cancel the query after S seconds "
                        f"(default {defaults.statement_timeout_s:g})")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lppo.core.errors import UserError
    from store.queries import LedgerReader
    from store.sql import MAX_RESULT_BYTES

    if args.limit < 1 or args.timeout <= 0:
        raise UserError("--limit and --timeout must be positive")
    with LedgerReader(args.target, statement_timeout_s=args.timeout,
                      row_limit=args.limit) as reader:
        result = reader.sql(args.query)
    out = sys.stdout
    if args.json:
        json.dump([dict(zip(result.columns, row, strict=True)) for row in result.rows], out,
                  default=str, indent=1)
        out.write("\n")
    elif args.csv:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows(["" if v is None else v for v in row] for row in result.rows)
    else:
        out.write(format_table(result.columns, result.rows))
        n = len(result.rows)
        out.write(f"({n} row{'s' if n != 1 else ''})\n")
    if result.stopped_by == "rows":
        print(f"lppo sql: stopped at the row limit of {args.limit} (--limit to change)",
              file=sys.stderr)
    elif result.stopped_by == "bytes":
        print(f"lppo sql: stopped at {MAX_RESULT_BYTES:,} bytes of values (the console's "
              "limit); select fewer or shorter columns", file=sys.stderr)
    return 0


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An aligned text table with a header rule; numbers right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(row[i], int | float) or row[i] is None for row in rows)
               for i in range(len(columns))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w)
                 for v, w, num in zip(values, widths, numeric, strict=True)]
        return " | ".join(parts).rstrip() + "\n"

    header = line(list(columns))
    rule = "-+-".join("-" * w for w in widths) + "\n"
    return header + rule + "".join(line(r) for r in cells)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value == 0 or 1e-4 <= abs(value) < 1e15:  # fixed point: timestamps stay readable
            return f"{value:.6f}".rstrip("0").rstrip(".")
        return f"{value:.6g}"
    text = str(value).replace("\n", "\\n")
    return text if len(text) <= MAX_CELL else text[:MAX_CELL - 3] + "..."
