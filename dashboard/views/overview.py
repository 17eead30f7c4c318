"""Overview page: where a run stands and how it trains, step by step; runs side by side.

Headline numbers from `LedgerReader.summary`; per-step curves from `data.steps` (train steps
joined with per-step group aggregates): reward and pass rate, loss, KL, entropy, groups used
and dropped by reason, prefix-guided share, the spread of the LP weights applied and the
share of groups they re-weighted, staleness, throughput, and samples by curation status.
Picking other runs under "Compare" draws their curves on the same axes.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, data, frames
from dashboard.context import Ctx, show
from lppo.core.vocab import SampleStatus

CURVES = {
    "Reward and pass rate": ({"mean_reward": "mean reward",
                              "unguided_pass_rate": "unguided pass rate",
                              "guided_pass_rate": "guided pass rate"}, None),
    "Loss": ({"loss": "loss"}, None),
    # `kl` is the step's approximate KL between the trained policy and the policy that sampled
    # (ratio - 1 - log ratio); `kl_ref` is recorded only when a reference model is loaded.
    "KL of the trained policy": ({"kl": "to the sampling policy",
                                  "kl_ref": "to the reference model"}, None),
    "Entropy": ({"entropy": "entropy"}, None),
    "Prefix-guided share of groups": ({"guided_share": "guided share"}, ".0%"),
    "LP weights in the batch": ({"lp_weight_std": "spread (std)",
                                 "lp_weight_not_one": "share of groups re-weighted"}, None),
    "Staleness (policy versions)": ({"mean_staleness": "mean staleness (trained groups)",
                                     "group_staleness": "mean staleness (all groups)"}, None),
    "Throughput": ({"rollouts_per_s": "rollouts/s"}, None),
    "Generated tokens/s": ({"tokens_per_s": "tokens/s"}, None),
}


def headline(ctx: Ctx) -> None:
    s = data.summary(ctx.target, ctx.run_id, ctx.version)
    g, samples, last = s["groups"], s["samples"], (s["steps"]["last"] or {})
    cols = st.columns(6)
    cols[0].metric("Status", s["status"])
    cols[1].metric("Step", last.get("step", "-"))
    cols[2].metric("Samples", f"{samples['total']:,}",
                   help=" · ".join(f"{k} {samples[k]:,}" for k in SampleStatus))
    cols[3].metric("Solved / parked", f"{samples['solved']:,} / {samples['parked']:,}")
    cols[4].metric("Rescued by prefixes", f"{s['rescued_by_prefix']:,}",
                   help="Samples that failed unguided, were then guided by a prefix, and "
                   "later passed unguided (docs/queries.md 1)")
    cols[5].metric("Rollouts", f"{g['rollouts']:,}",
                   help=f"{g['groups']:,} groups, {g['used']:,} trained on, "
                   f"{g['guided']:,} guided, from {g['actors']} actors")
    dropped = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in g["dropped"].items())
    ug = g["unguided_pass_rate"]
    st.caption(f"Groups dropped by curation: {dropped}. Unguided pass rate over the run "
               f"{ug:.1%}." if ug is not None else f"Groups dropped by curation: {dropped}.")


def runs_table(ctx: Ctx) -> list[str]:
    """The ledger's runs (a table) and the ones picked for comparison."""
    runs = pd.DataFrame(ctx.runs)
    others = [n for n in runs["name"] if n != ctx.run["name"]]
    with st.expander(f"Runs in this ledger ({len(runs)})", expanded=len(runs) > 1):
        shown = runs.assign(started=pd.to_datetime(runs["started_at"], unit="s"),
                            updated=pd.to_datetime(runs["updated_at"], unit="s"))
        st.dataframe(shown[["id", "name", "status", "last_step", "samples", "started",
                            "updated", "code_version"]], hide_index=True, width="stretch")
        picked = st.multiselect("Compare with", others, key="compare_runs",
                                help="Draw these runs' curves next to the selected run's")
    return [ctx.run["name"], *picked]


def compare_frame(ctx: Ctx, names: list[str]) -> pd.DataFrame:
    """Per-step frames of the named runs, stacked with a `run` column."""
    by_name = {r["name"]: r for r in ctx.runs}
    parts = []
    for name in names:
        run = by_name[name]
        df = data.steps(ctx.target, int(run["id"]), float(run["updated_at"] or 0.0))
        parts.append(df.assign(run=name))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def curves(df: pd.DataFrame, compare: bool) -> None:
    """The per-step line charts, two to a row; with several runs, one line per run."""
    items = list(CURVES.items())
    for i in range(0, len(items), 2):
        cols = st.columns(2)
        for col, (title, (columns, fmt)) in zip(cols, items[i:i + 2], strict=False):
            if compare:
                long = frames.long_form(df, "step", columns, extra=["run"])
                long["series"] = long["run"] + ": " + long["series"]
            else:
                long = frames.long_form(df, "step", columns)
            if long.empty:
                col.caption(f"{title}: nothing recorded yet")
                continue
            col.altair_chart(charts.lines(long, title, y_format=fmt), width="stretch")


def curation(df: pd.DataFrame) -> None:
    cols = st.columns(2)
    outcomes = frames.drop_counts(df)
    if outcomes.empty:
        cols[0].caption("Groups used / dropped: nothing recorded yet")
    else:
        cols[0].altair_chart(charts.stacked_bars(
            outcomes, "Groups per step: used, dropped by reason", y="groups", color="outcome",
            scale=charts.OUTCOME_SCALE), width="stretch")
    status = frames.status_counts(df)
    if status.empty:
        cols[1].caption("Samples by status: nothing recorded yet")
    else:
        cols[1].altair_chart(charts.status_area(status), width="stretch")


def render(ctx: Ctx) -> None:
    st.title(f"Run {ctx.run['name']}")
    headline(ctx)
    names = runs_table(ctx)
    df = compare_frame(ctx, names)
    own = df[df["run"] == ctx.run["name"]] if len(df) else df
    if own.empty:
        st.info("No steps yet: curves appear once the learner records groups.")
        return
    st.subheader("Training" + (f": {', '.join(names)}" if len(names) > 1 else ""))
    curves(df, compare=len(names) > 1)
    st.subheader(f"Curation: {ctx.run['name']}")
    curation(own)
    ev = data.evals(ctx.target, ctx.run_id, ctx.version)
    if len(ev):
        ev = ev.assign(series=ev["benchmark"] + " " + ev["metric"])
        st.altair_chart(charts.lines(ev, "Evaluations", y_format=".1%"), width="stretch")


show(render)
