"""Learning-progress map: the whole curriculum at once.

Every sample by EMA pass rate against learning progress, coloured by curation status (click
a point, then open its trajectory); how the pass rates of unguided groups spread over steps
(a heatmap: all-wrong and all-correct groups are what curation drops); and the samples that
prefix-guided sampling rescued (failed unguided, then guided, later passed unguided:
docs/queries.md 1) with how long their prefixes were while they were guided.
"""

from __future__ import annotations

import altair as alt
import streamlit as st

from dashboard import charts, data
from dashboard.context import Ctx, open_sample, show
from lppo.core.vocab import SampleStatus

MAP_KEY = "progress_map_chart"


def sample_map(ctx: Ctx) -> None:
    points = data.points(ctx.target, ctx.run_id, ctx.version)
    seen = points.dropna(subset=["ema"])
    counts = points["status"].value_counts()
    cols = st.columns(4)
    cols[0].metric("Samples", f"{len(points):,}")
    for col, status in zip(cols[1:], tuple(SampleStatus), strict=True):
        col.metric(status.capitalize(), f"{int(counts.get(status, 0)):,}")
    if seen.empty:
        st.info("No sample has an unguided pass rate yet.")
        return
    pick = alt.selection_point(fields=["sample_id"], name="pick", on="click")
    chart = charts.progress_map(seen).add_params(pick)
    event = st.altair_chart(chart, width="stretch", on_select="rerun", key=MAP_KEY,
                            selection_mode="pick")
    st.caption(f"{len(seen):,} samples with an unguided pass rate "
               f"({len(points) - len(seen):,} not yet seen unguided). Click a point to pick it.")
    picked = (event.selection.get("pick") or []) if event else []
    if picked:
        sid = int(picked[0]["sample_id"])
        if st.button(f"Open sample {sid}", key="map_open"):
            open_sample(sid)


def heatmap(ctx: Ctx) -> None:
    bins = data.pass_rate_bins(ctx.target, ctx.run_id, ctx.version)
    if bins.empty:
        st.caption("Pass-rate distribution: no unguided groups yet.")
        return
    st.altair_chart(charts.pass_rate_heatmap(bins), width="stretch")


def rescued(ctx: Ctx) -> None:
    st.subheader("Rescued by prefixes")
    df = data.rescued(ctx.target, ctx.run_id, ctx.version)
    if df.empty:
        st.caption("No sample has been rescued yet: none failed unguided, was then guided "
                   "by a prefix, and later passed unguided.")
        return
    st.caption(f"{len(df):,} sample{'s' if len(df) != 1 else ''} failed unguided, then "
               "guided by an expert prefix, later passed unguided. Prefixes while guided:")
    cols = st.columns(2)
    cols[0].altair_chart(charts.prefix_hist(df), width="stretch")
    cols[1].altair_chart(charts.rescue_timeline(df), width="stretch")
    cfg = {c: st.column_config.NumberColumn(format="%.2f")
           for c in ("mean_prefix_ratio", "max_prefix_ratio")}
    cfg["mean_prefix_tokens"] = st.column_config.NumberColumn(format="%.0f")
    st.dataframe(df, hide_index=True, width="stretch", height=300, column_config=cfg)


def render(ctx: Ctx) -> None:
    st.title("Learning-progress map")
    sample_map(ctx)
    heatmap(ctx)
    rescued(ctx)


show(render)
