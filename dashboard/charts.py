"""Altair charts of the dashboard: pure builders from frames to `alt.Chart` objects.

Nothing here reads the ledger or calls Streamlit; pages pass frames from `dashboard.data` and
hand the result to `st.altair_chart`. Colours are fixed per meaning across pages: a sample's
curation status (active, solved, parked), guided against unguided groups, and a group's
outcome in curation (used, or dropped and why).
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from store.models import DROP_REASONS, STATUSES

STATUS_COLORS = {"active": "#4c78a8", "solved": "#54a24b", "parked": "#e45756"}
STATUS_SCALE = alt.Scale(domain=list(STATUSES), range=[STATUS_COLORS[s] for s in STATUSES])
KIND_SCALE = alt.Scale(domain=["unguided", "guided"], range=["#4c78a8", "#f58518"])
OUTCOMES = ["used", *(f"dropped: {r}" for r in DROP_REASONS)]
OUTCOME_SCALE = alt.Scale(domain=OUTCOMES,
                          range=["#54a24b", "#9ecae9", "#e45756", "#bab0ac", "#b279a2"])
PANEL_WIDTH = 820
FIT_X = alt.AutoSizeParams(type="fit-x", contains="padding")
"""Stretch to the container's width, keep the height: with Streamlit's default (fit both
ways) a legend below or above the plot squeezes the plot to a line."""


def _legend(**kw) -> alt.Legend:
    return alt.Legend(orient="bottom", labelLimit=320, **kw)


def lines(df: pd.DataFrame, title: str, *, x: str = "step", y: str = "value",
          color: str | None = "series", y_title: str = "", y_format: str | None = None,
          height: int = 200, x_type: str = "Q", scale: alt.Scale | None = None,
          tooltip: list[str] | None = None) -> alt.Chart:
    """A line chart of long-form `df` (one line per `color` value)."""
    y_axis = alt.Axis(format=y_format) if y_format else alt.Axis()
    enc = {
        "x": alt.X(f"{x}:{x_type}", title=x if x_type != "T" else "time"),
        "y": alt.Y(f"{y}:Q", title=y_title or None, axis=y_axis,
                   scale=alt.Scale(zero=False)),
        "tooltip": tooltip or [x, *([color] if color else []), alt.Tooltip(y, format=".4g")],
    }
    if color:
        single = df[color].nunique() <= 1
        enc["color"] = alt.Color(f"{color}:N", title=None, scale=scale or alt.Undefined,
                                 legend=None if single else _legend())
    points = df[x].nunique() <= 60 if len(df) else False
    return (alt.Chart(df, title=title).mark_line(point=points)
            .encode(**enc).properties(height=height, autosize=FIT_X))


def stacked_bars(df: pd.DataFrame, title: str, *, y: str, color: str, scale: alt.Scale,
                 height: int = 200, y_title: str = "") -> alt.Chart:
    """Bars per step stacked by `color` (e.g. curation outcome)."""
    return (alt.Chart(df, title=title).mark_bar()
            .encode(x=alt.X("step:Q", title="step"),
                    y=alt.Y(f"{y}:Q", stack="zero", title=y_title or y),
                    color=alt.Color(f"{color}:N", title=None, scale=scale, legend=_legend()),
                    tooltip=["step", color, y])
            .properties(height=height, autosize=FIT_X))


def status_area(df: pd.DataFrame, title: str = "Samples by curation status",
                height: int = 200) -> alt.Chart:
    """Stacked area of (step, status, samples)."""
    return (alt.Chart(df, title=title).mark_area(opacity=0.85)
            .encode(x=alt.X("step:Q", title="step"),
                    y=alt.Y("samples:Q", stack="zero", title="samples"),
                    color=alt.Color("status:N", scale=STATUS_SCALE, title=None,
                                    legend=_legend()),
                    tooltip=["step", "status", "samples"])
            .properties(height=height, autosize=FIT_X))


def _status_rules(changes: pd.DataFrame, labels: bool = False) -> alt.Chart:
    base = alt.Chart(changes).encode(
        x="step:Q", color=alt.Color("status:N", scale=STATUS_SCALE, title="status change"),
        tooltip=["step", "previous", "status"])
    rules = base.mark_rule(strokeDash=[5, 3], strokeWidth=2)
    if not labels:
        return rules
    text = base.mark_text(align="left", dx=4, dy=-4, baseline="bottom").encode(
        text="status:N", y=alt.value(0))
    return rules + text


def trajectory(traj: pd.DataFrame, changes: pd.DataFrame,
               width: int = PANEL_WIDTH) -> alt.VConcatChart:
    """One sample against step, panels sharing the x axis: pass rate (unguided and guided
    groups) with the unguided EMA, progress, LP weight, prefix ratio; status changes ruled."""
    x = alt.X("step_seen:Q", title="step")
    base = alt.Chart(traj).properties(width=width, height=140)
    tips = ["step_seen", "attempt_id", "kind", "n_correct", "n", "pass_rate", "ema",
            "progress", "lp_weight", "prefix_ratio", "prefix_term", "status", "dropped_reason"]
    rate = base.mark_point(filled=True, size=70).encode(
        x=x, y=alt.Y("pass_rate:Q", title="pass rate / EMA", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("kind:N", scale=KIND_SCALE, title="group"),
        shape=alt.Shape("kind:N", scale=alt.Scale(domain=["unguided", "guided"],
                                                  range=["circle", "triangle-up"]),
                        title="group"),
        tooltip=tips)
    ema = base.transform_filter("datum.ema != null").mark_line(color="#222").encode(
        x=x, y="ema:Q")

    def panel(field: str, title: str, mark: str = "line") -> alt.LayerChart:
        chart = base.transform_filter(f"datum.{field} != null")
        chart = (chart.mark_line(point=True, interpolate="step-after") if mark == "step"
                 else chart.mark_line(point=True))
        layer = chart.encode(x=x, y=alt.Y(f"{field}:Q", title=title), tooltip=tips)
        return alt.layer(layer, _status_rules(changes)) if len(changes) else alt.layer(layer)

    top = alt.layer(rate, ema, _status_rules(changes, labels=True)) if len(changes) \
        else alt.layer(rate, ema)
    return alt.vconcat(
        top, panel("progress", "progress"), panel("lp_weight", "LP weight"),
        panel("prefix_ratio", "prefix ratio", mark="step"),
    ).resolve_scale(x="shared", color="independent", shape="independent")


def progress_map(points: pd.DataFrame, height: int = 420) -> alt.Chart:
    """Every sample: EMA pass rate (x) against learning progress (y), coloured by status."""
    return (alt.Chart(points, title="Samples by EMA pass rate and learning progress")
            .mark_circle(size=28, opacity=0.6)
            .encode(x=alt.X("ema:Q", title="EMA pass rate", scale=alt.Scale(domain=[0, 1])),
                    y=alt.Y("progress:Q", title="progress (EMA change)"),
                    color=alt.Color("status:N", scale=STATUS_SCALE, title="status"),
                    tooltip=["sample_id", "status", alt.Tooltip("ema:Q", format=".3f"),
                             alt.Tooltip("progress:Q", format="+.3f"),
                             alt.Tooltip("weight:Q", format=".3f"), "prefix_ratio",
                             "attempts", "guided_attempts", "last_seen_step"])
            .properties(height=height, autosize=FIT_X))


def pass_rate_heatmap(bins: pd.DataFrame, height: int = 260) -> alt.Chart:
    """Share of unguided groups per step (x) and pass-rate bin (y)."""
    order = bins.sort_values("order")["bin"].drop_duplicates().tolist()
    return (alt.Chart(bins, title="Pass-rate distribution of unguided groups per step")
            .mark_rect()
            .encode(x=alt.X("step:O", title="step",
                            axis=alt.Axis(labelOverlap=True, labelAngle=0)),
                    y=alt.Y("bin:N", sort=list(reversed(order)), title="group pass rate"),
                    color=alt.Color("share:Q", title="share of groups",
                                    scale=alt.Scale(scheme="viridis")),
                    tooltip=["step", "bin", "groups", alt.Tooltip("share:Q", format=".1%")])
            .properties(height=height, autosize=FIT_X))


def prefix_hist(rescued: pd.DataFrame, height: int = 220) -> alt.Chart:
    """How long the prefixes were while rescued samples were guided."""
    return (alt.Chart(rescued, title="Prefix ratio while guided (mean before the rescue)")
            .mark_bar()
            .encode(x=alt.X("mean_prefix_ratio:Q", bin=alt.Bin(step=0.1),
                            title="prefix ratio"),
                    y=alt.Y("count():Q", title="samples"),
                    tooltip=[alt.Tooltip("count():Q", title="samples")])
            .properties(height=height, autosize=FIT_X))


def rescue_timeline(rescued: pd.DataFrame, height: int = 220) -> alt.Chart:
    """Per rescued sample: first unguided failure -> first guided group -> first unguided pass
    after it, as a rule with points, coloured by prefix ratio."""
    base = alt.Chart(rescued.head(200), title="Rescue timelines (first 200 rescued samples)")
    y = alt.Y("sample_id:N", sort=None, title="sample", axis=None)
    rule = base.mark_rule(opacity=0.6).encode(
        x=alt.X("failed_step:Q", title="step"), x2="rescued_step:Q", y=y,
        color=alt.Color("mean_prefix_ratio:Q", title="prefix ratio",
                        scale=alt.Scale(scheme="oranges")),
        tooltip=["sample_id", "failed_step", "guided_step", "rescued_step", "guided_groups",
                 alt.Tooltip("mean_prefix_ratio:Q", format=".2f")])
    guided = base.mark_point(shape="triangle-up", filled=True, color="#f58518").encode(
        x="guided_step:Q", y=y)
    return alt.layer(rule, guided).properties(height=height, autosize=FIT_X)
