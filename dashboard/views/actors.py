"""Actors page: how each generation actor keeps up, over the run's wall-clock time.

Per actor and step window (from the previous step's end to this one's): rollouts/s and
completion tokens/s that reached the learner, the mean staleness of its groups (policy
versions between generating and arriving) and the newest weight version it generated with;
a table of totals per actor. Derived from `rollout_groups` arrival times (`received_at`), so
an actor that stalls shows as a dip, one that lags on weights as a flat version line.
"""

from __future__ import annotations

import streamlit as st

from dashboard import charts, data, frames
from dashboard.context import Ctx, show

PANELS = (
    ("Rollouts/s per actor", "rollouts_per_s", "rollouts/s"),
    ("Completion tokens/s per actor", "tokens_per_s", "tokens/s"),
    ("Mean staleness of arriving groups", "mean_staleness", "policy versions"),
    ("Weight version used", "weight_version", "policy version"),
)


def totals(df) -> None:
    out = frames.actor_totals(df)
    cfg = {c: st.column_config.NumberColumn(format="%.2f")
           for c in ("rollouts_per_s", "tokens_per_s", "mean_staleness")}
    st.dataframe(out, hide_index=True, width="stretch", column_config=cfg)


def render(ctx: Ctx) -> None:
    st.title("Actors")
    df = data.actors(ctx.target, ctx.run_id, ctx.version)
    if df.empty:
        st.info("No rollout groups yet: actor curves appear once groups arrive.")
        return
    st.caption(f"{df['actor_id'].nunique()} actors, {int(df['rollouts'].sum()):,} rollouts in "
               f"{int(df['groups'].sum()):,} groups. Rates are per step window of wall-clock "
               "time (previous step's end to this step's end).")
    totals(df)
    x = "time:T" if df["time"].notna().any() else "step:Q"
    for i in range(0, len(PANELS), 2):
        cols = st.columns(2)
        for col, (title, field, unit) in zip(cols, PANELS[i:i + 2], strict=True):
            long = df.dropna(subset=[field])
            col.altair_chart(charts.lines(
                long, title, x=x.split(":")[0], x_type=x.split(":")[1], y=field,
                color="actor_id", y_title=unit,
                tooltip=["step", "actor_id", "groups", "rollouts", field]), width="stretch")


show(render)
