"""What every page shares: which ledger and run it shows, and live refresh.

The ledger comes from the command line (`streamlit run dashboard/app.py -- TARGET
[--refresh S]`, which `lppo dashboard TARGET` runs), else from the `LPPO_DASHBOARD_TARGET`
environment variable (tests, containers), else from a box in the sidebar. `app.py` calls
`setup()` once per rerun: it draws the sidebar (ledger, run picker, refresh toggle) and puts
a `Ctx` in the session; each page hands its `render(ctx)` to `show()`, which re-reads the
run's status and, while the run is `running` and auto-refresh is on, reruns the page body as a
fragment every few seconds (`st.fragment(run_every=...)`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import streamlit as st
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from dashboard import data
from lppo.core.errors import UserError

APP = Path(__file__).with_name("app.py").resolve()
VIEWS = {  # page -> (title, icon); the page's script is views/<page>.py, its URL /<page>
    "overview": ("Overview", ":material/monitoring:"),  # the default page, at /
    "samples": ("Samples", ":material/table_rows:"),
    "trajectory": ("Sample trajectory", ":material/timeline:"),
    "progress_map": ("Learning-progress map", ":material/scatter_plot:"),
    "actors": ("Actors", ":material/dns:"),
    "sql": ("SQL", ":material/terminal:"),
}
ENV_TARGET = "LPPO_DASHBOARD_TARGET"
ENV_REFRESH = "LPPO_DASHBOARD_REFRESH_S"
DEFAULT_REFRESH_S = 5.0
CTX_KEY = "lppo_ctx"


@dataclass(frozen=True)
class Ctx:
    """The ledger and run a page shows. `run` is the run's row of `data.runs` (None: the
    ledger has no runs yet); `version` is its `updated_at`, the cache key of its data."""

    target: str
    run: dict[str, Any] | None
    runs: list[dict[str, Any]]
    auto_refresh: bool
    refresh_s: float

    @property
    def run_id(self) -> int | None:
        return None if self.run is None else int(self.run["id"])

    @property
    def version(self) -> float:
        return 0.0 if self.run is None else float(self.run["updated_at"] or 0.0)

    @property
    def live(self) -> bool:
        return self.run is not None and self.run["status"] == "running"

    def refreshed(self) -> Ctx:
        """The same run with its current status and `updated_at` (a cheap cached read)."""
        if self.run is None:
            return self
        rows = data.runs(self.target)
        now = rows[rows["id"] == self.run["id"]].to_dict("records")
        return replace(self, run=now[0]) if now else self


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Arguments after `--` of `streamlit run dashboard/app.py -- TARGET [--refresh S]`."""
    parser = argparse.ArgumentParser(prog="dashboard/app.py", add_help=False)
    parser.add_argument("target", nargs="?", default=None)
    parser.add_argument("--refresh", type=float, default=None)
    args, _unknown = parser.parse_known_args(argv)
    return args


def launch_options() -> tuple[str | None, float]:
    """(target, refresh seconds) from the command line when this app is the script that
    `streamlit run` started, else from the environment."""
    target, refresh = None, None
    if sys.argv and Path(sys.argv[0]).resolve() == APP:
        args = parse_args(sys.argv[1:])
        target, refresh = args.target, args.refresh
    target = target or os.environ.get(ENV_TARGET) or None
    if refresh is None:
        refresh = float(os.environ.get(ENV_REFRESH) or DEFAULT_REFRESH_S)
    return target, max(1.0, refresh)


def setup() -> Ctx | None:
    """Sidebar (ledger, run, refresh) and the session's `Ctx`; None when no ledger is open
    (the reason is on the page)."""
    st.session_state.pop(CTX_KEY, None)
    target, refresh_s = launch_options()
    with st.sidebar:
        st.markdown("### LPPO dashboard")
        if target is None:
            target = st.text_input("Ledger", key="target_box",
                                   placeholder="runs/NAME or postgresql+psycopg://...",
                                   help="A run directory, a ledger.db file or a database URL")
    if not target:
        st.info("Open a ledger: `lppo dashboard RUN_DIR_OR_URL`, or type one in the sidebar.")
        return None
    if not _opens(target):
        return None
    st.sidebar.caption(f"Ledger: `{display_url(data.reader(target).url)}`")
    runs = data.runs(target).to_dict("records")
    ctx = Ctx(target=target, run=None, runs=runs, auto_refresh=False, refresh_s=refresh_s)
    if runs:
        ctx = _sidebar_run(ctx)
    st.session_state[CTX_KEY] = ctx
    return ctx


def _opens(target: str) -> bool:
    """Whether the ledger opens read-only; if not, the reason is shown on the page."""
    try:
        data.reader(target)
    except UserError as exc:
        st.error(f"Cannot open the ledger: {exc}")
        return False
    return True


def _sidebar_run(ctx: Ctx) -> Ctx:
    names = [r["name"] for r in ctx.runs]
    with st.sidebar:
        name = st.selectbox("Run", names, key="run_name",
                            help="Runs in this ledger, newest first")
        run = next(r for r in ctx.runs if r["name"] == name)
        live = run["status"] == "running"
        updated = _when(run["updated_at"])
        st.caption(f"**{run['status']}** · step {_int(run['last_step'])} · "
                   f"{_int(run['samples'])} samples · last write {updated}")
        # One key per (run, live): a run that finishes gets a fresh, off toggle.
        auto = st.toggle("Auto-refresh", value=live, key=f"auto_refresh_{name}_{live}",
                         disabled=not live,
                         help=f"Reload this page's data every {ctx.refresh_s:g} s while the "
                         "run is live" if live else "The run is not running")
    return replace(ctx, run=run, auto_refresh=bool(auto and live))


def show(render: Callable[[Ctx], None], *, refresh: bool = True) -> None:
    """Run a page body with the session's `Ctx`: as a fragment that reruns every
    `refresh_s` while the run is live and auto-refresh is on (`refresh=False`: never)."""
    ctx: Ctx | None = st.session_state.get(CTX_KEY)
    if ctx is None:
        st.info("No ledger open: see the sidebar.")
        return
    if ctx.run is None:
        st.info("The ledger has no runs yet. Start one with `lppo run CONFIG` or "
                "`lppo demo`; this page fills in once it writes.")
        return
    if refresh and ctx.auto_refresh:
        st.fragment(run_every=ctx.refresh_s)(lambda: _live(ctx, render))()
    else:
        render(ctx)


def _live(ctx: Ctx, render: Callable[[Ctx], None]) -> None:
    """One fragment rerun: fresh run status; a run that stopped gets a full rerun (which
    turns auto-refresh off), a live one its page body again."""
    fresh = ctx.refreshed()
    if not fresh.live:
        st.rerun(scope="app")
    render(fresh)


def display_url(url: str) -> str:
    """A ledger URL for the page: a SQLite file's path, any other URL without its password."""
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _when(ts: float | None) -> str:
    if ts is None or ts != ts:
        return "never"
    return datetime.fromtimestamp(float(ts)).strftime("%Y-%m-%d %H:%M:%S")


def _int(value: Any) -> str:
    if value is None or value != value:
        return "-"
    return f"{int(value):,}"


def open_sample(sample_id: int) -> None:
    """Go to the sample trajectory page for `sample_id` (its id also lands in the URL)."""
    st.session_state["sample_id"] = int(sample_id)
    st.switch_page(view_file("trajectory"), query_params={"sample": str(int(sample_id))})


def view_file(page: str) -> str:
    """The script of `page` (a key of VIEWS), relative to app.py."""
    return f"views/{page}.py"
