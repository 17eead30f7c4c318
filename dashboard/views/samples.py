"""Samples page: every sample of the run in one table, filtered, sorted and searched in SQL.

Filters (status, data set, guided or not, text in the problem), the sort key and the page
are pushed down to `LedgerReader.samples` (indexed on `(run_id, status, progress)`), so a
run of any size sends one page of rows to the browser. Clicking a row opens the sample's
trajectory; so does typing its id. "last chosen by" and "score": why the sample's latest
group was dispatched (the selection policy, or curation's revisit/recheck) and the value it
was ranked by.
"""

from __future__ import annotations

import streamlit as st

from dashboard import data
from dashboard.context import Ctx, open_sample, show
from lppo.core.vocab import SampleStatus
from store.queries import SAMPLE_SORT_KEYS

PAGE_SIZES = (100, 500, 1000, 5000)
TABLE_KEY = "sample_table"
COLUMNS = ["sample_id", "status", "attempts", "guided_attempts", "ema", "progress", "weight",
           "prefix_ratio", "pass_rate", "guided_pass_rate", "last_seen_step",
           "status_since_step", "selection", "selection_score", "dataset", "source_key",
           "problem"]


def filters(ctx: Ctx) -> dict:
    """The filter, sort and paging widgets; returns the arguments of `data.sample_table`."""
    c = st.columns([1, 1.2, 1.4, 2, 1.2, 1])
    status = c[0].selectbox("Status", ["all", *(s.value for s in SampleStatus)], key="f_status")
    sets = data.datasets(ctx.target, ctx.run_id, ctx.version)
    dataset = c[1].selectbox("Data set", ["all", *sets], key="f_dataset")
    guided = c[2].selectbox("Prefix guidance", ["all", "guided at least once", "never guided"],
                            key="f_guided")
    search = c[3].text_input("Search problems", key="f_search", placeholder="text in problem")
    order_by = c[4].selectbox("Sort by", SAMPLE_SORT_KEYS, key="f_order")
    order = c[5].selectbox("Order", ["descending", "ascending"], key="f_desc")
    return {
        "status": None if status == "all" else status,
        "dataset": None if dataset == "all" else dataset,
        "guided": {"all": None, "guided at least once": True, "never guided": False}[guided],
        "search": search.strip() or None,
        "order_by": order_by, "descending": order == "descending",
    }


def paging(total: int) -> tuple[int, int]:
    """(limit, offset) from the page-size and page widgets."""
    c = st.columns([1, 1, 4])
    size = c[0].selectbox("Rows per page", PAGE_SIZES, index=1, key="f_page_size")
    pages = max(1, -(-total // size))
    page = c[1].number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1,
                             step=1, key="f_page")
    return size, (int(page) - 1) * size


def table(df) -> int | None:
    """The sample table; returns the id of a clicked row (None: no click)."""
    cfg = {
        "sample_id": st.column_config.NumberColumn("sample", format="%d"),
        "guided_attempts": st.column_config.NumberColumn("guided", format="%d"),
        "ema": st.column_config.ProgressColumn("EMA", min_value=0.0, max_value=1.0,
                                               format="%.2f"),
        "progress": st.column_config.NumberColumn("progress", format="%+.3f"),
        "weight": st.column_config.NumberColumn("LP weight", format="%.3f"),
        "prefix_ratio": st.column_config.NumberColumn("prefix ratio", format="%.2f"),
        "pass_rate": st.column_config.NumberColumn("last pass rate", format="%.2f"),
        "guided_pass_rate": st.column_config.NumberColumn("last guided", format="%.2f"),
        "last_seen_step": st.column_config.NumberColumn("last seen", format="%d"),
        "status_since_step": st.column_config.NumberColumn("status since", format="%d"),
        "selection": st.column_config.TextColumn("last chosen by"),
        "selection_score": st.column_config.NumberColumn("score", format="%.3f"),
        "problem": st.column_config.TextColumn("problem", width="large"),
    }
    event = st.dataframe(df[[c for c in COLUMNS if c in df.columns]], key=TABLE_KEY,
                         hide_index=True, width="stretch", height=560, column_config=cfg,
                         on_select="rerun", selection_mode="single-row")
    rows = event.selection.rows if event else []
    return int(df["sample_id"].iloc[rows[0]]) if rows and rows[0] < len(df) else None


def render(ctx: Ctx) -> None:
    st.title("Samples")
    args = filters(ctx)
    sort = {"order_by": args.pop("order_by"), "descending": args.pop("descending")}
    total = data.sample_count(ctx.target, ctx.run_id, ctx.version, **args)
    limit, offset = paging(total)
    df = data.sample_table(ctx.target, ctx.run_id, ctx.version, limit=limit, offset=offset,
                           **sort, **args)
    if df.empty:
        st.info("No samples match." if total == 0 and ctx.run["samples"] else
                "This run has no samples yet.")
    else:
        st.caption(f"{total:,} samples match; rows {offset + 1:,}-{offset + len(df):,}, "
                   f"sorted by {sort['order_by']}{' descending' if sort['descending'] else ''}."
                   " Click a row to open its trajectory.")
        clicked = table(df)
        if clicked is not None:
            open_sample(clicked)
    c = st.columns([1, 1, 4])
    sid = c[0].number_input("Open sample id", min_value=0, step=1, value=None,
                            key="open_sample_id", placeholder="sample id")
    if c[1].button("Open", key="open_sample_button", disabled=sid is None):
        open_sample(int(sid))


show(render)
