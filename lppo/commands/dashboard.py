"""`lppo dashboard RUN_DIR_OR_URL`: open the Streamlit dashboard on a run's ledger.

A thin wrapper over `streamlit run dashboard/app.py -- RUN_DIR_OR_URL --refresh S`: it first
opens the ledger read-only (a missing or unreadable ledger is one clear message, not a page
of Streamlit output), then becomes Streamlit (`os.execv`, same process id) serving on
`--host`/`--port` (loopback by default) with usage statistics off and no e-mail prompt. The
dashboard has no login: a host beyond loopback is refused unless `--allow-non-loopback` is given
(as `transport.allow_non_loopback` for the learner), and then served with a warning; SSH port
forwarding (README, "Dashboard") is the safer way to reach it from another machine. No
child process: a SIGTERM or SIGINT sent to `lppo dashboard` reaches Streamlit itself, which
stops serving, so nothing is left behind on the port.
The dashboard only reads the ledger; while a run is live it refreshes every `--refresh` s.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "dashboard", help="open the dashboard (Streamlit) on a run's ledger",
        description="Open the read-only Streamlit dashboard on a ledger: run overview, "
        "samples, per-sample trajectories, learning-progress map, actors, SQL.",
    )
    parser.add_argument("target", metavar="RUN_DIR_OR_URL",
                        help="run directory (its ledger.db), SQLite file, or SQLAlchemy URL")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve on (default 127.0.0.1: this machine only)")
    parser.add_argument("--allow-non-loopback", action="store_true",
                        help="allow a --host beyond loopback: anyone who reaches it reads the "
                             "ledger (there is no login)")
    parser.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    parser.add_argument("--refresh", type=float, default=5.0, metavar="S",
                        help="refresh period in seconds while a run is live (default 5)")
    parser.add_argument("--no-browser", action="store_true",
                        help="do not open a browser tab (servers, tests)")
    parser.set_defaults(handler=run)


def streamlit_command(args: argparse.Namespace) -> list[str]:
    """The `streamlit run` command line for `args`."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", args.host, "--server.port", str(args.port),
        "--server.headless", "true" if args.no_browser else "false",
        "--server.showEmailPrompt", "false",
        "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
        "--", args.target, "--refresh", f"{args.refresh:g}",
    ]


def host_warning(args: argparse.Namespace) -> str | None:
    """None for a loopback `--host`; the warning to print for another one that
    `--allow-non-loopback` allows; a `UserError` for another one that it does not."""
    from lppo.core.config.schema import is_loopback
    from lppo.core.errors import UserError

    if is_loopback(args.host):
        return None
    if not args.allow_non_loopback:
        raise UserError(f"--host {args.host}: not a loopback address, and the dashboard has no "
                        "login; pass --allow-non-loopback to serve it beyond this machine, or "
                        f"use SSH port forwarding: ssh -L {args.port}:127.0.0.1:{args.port} "
                        "THIS_HOST")
    return (f"lppo dashboard: WARNING: serving on {args.host}, beyond loopback, with no login: "
            "anyone who reaches this port reads the ledger")


def run(args: argparse.Namespace) -> int:
    from lppo.core.errors import UserError
    from store.queries import LedgerReader

    if args.refresh <= 0 or not 0 < args.port < 65536:
        raise UserError("--refresh must be positive and --port in 1..65535")
    warning = host_warning(args)
    if warning:
        print(warning, file=sys.stderr)
    with LedgerReader(args.target):  # fail here, clearly, if the ledger cannot be read
        pass
    print(f"lppo dashboard: http://{args.host}:{args.port} (Ctrl-C to stop)", flush=True)
    sys.stderr.flush()
    command = streamlit_command(args)
    os.execv(command[0], command)  # returns only by raising OSError
