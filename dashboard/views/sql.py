"""SQL page: one read-only query at a time over the ledger, with the docs' examples.

The statement goes through `LedgerReader.sql`: only SELECT, WITH, EXPLAIN and VALUES are
accepted, and it runs on a connection that cannot write anyway (SQLite `mode=ro`, PostgreSQL
read-only transactions), with the store's statement timeout and row limit. A refused or
failed statement is shown as an error with the reason, never run. Results come as a table
and a CSV download. The examples are docs/queries.md's (they look at the latest run).
"""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from dashboard import data, examples
from dashboard.context import Ctx, show
from lppo.core.errors import UserError
from store.sql import MAX_RESULT_BYTES

OWN = "(your own query)"
TEXT_KEY = "sql_text"
RESULT_KEY = "sql_result"


def _load_example() -> None:
    """Selectbox callback: put the chosen example's SQL in the query box."""
    chosen = st.session_state["sql_example"]
    for ex in examples.load():
        if ex.title == chosen:
            st.session_state[TEXT_KEY] = ex.sql
            st.session_state.pop(RESULT_KEY, None)


def run_query(ctx: Ctx, statement: str, limit: int) -> None:
    """Run `statement`; keep its result (or the refusal) in the session for display."""
    start = time.perf_counter()
    try:
        res = data.reader(ctx.target).sql(statement, row_limit=limit)
    except UserError as exc:
        st.session_state[RESULT_KEY] = {"error": str(exc)}
        return
    st.session_state[RESULT_KEY] = {
        "frame": pd.DataFrame(res.rows, columns=res.columns), "stopped_by": res.stopped_by,
        "seconds": time.perf_counter() - start, "limit": limit,
    }


def result() -> None:
    out = st.session_state.get(RESULT_KEY)
    if out is None:
        return
    if "error" in out:
        st.error(out["error"], icon=":material/block:")
        return
    df = out["frame"]
    note = {"rows": f" (stopped at the row limit of {out['limit']:,})",
            "bytes": f" (stopped at {MAX_RESULT_BYTES:,} bytes of values, the console's limit)",
            None: ""}[out["stopped_by"]]
    st.caption(f"{len(df):,} rows{note} in {out['seconds'] * 1e3:.0f} ms")
    st.dataframe(df, hide_index=True, width="stretch", height=min(600, 38 + 35 * len(df)))
    st.download_button("Download CSV", df.to_csv(index=False).encode("utf-8"),
                       file_name="ledger-query.csv", mime="text/csv", key="sql_csv")


def render(ctx: Ctx) -> None:
    st.title("SQL")
    st.caption("Read-only: SELECT, WITH, EXPLAIN and VALUES only, on a connection that "
               "cannot write. Tables and more examples: docs/queries.md.")
    found = examples.load()
    titles = [ex.title for ex in found]
    if TEXT_KEY not in st.session_state:
        st.session_state[TEXT_KEY] = found[0].sql if found else "SELECT * FROM runs"
    choice = st.selectbox("Example", [*titles, OWN], key="sql_example",
                          on_change=_load_example)
    desc = next((ex.description for ex in found if ex.title == choice), "")
    if desc:
        st.caption(desc)
    with st.form("sql_form"):
        statement = st.text_area("Query", key=TEXT_KEY, height=260)
        c = st.columns([1, 4])
        limit = c[0].number_input("Row limit", min_value=1, max_value=100_000,
                                  value=min(1000, data.reader(ctx.target).row_limit), step=100,
                                  key="sql_limit")
        submitted = st.form_submit_button("Run query", type="primary")
    if submitted or RESULT_KEY not in st.session_state:
        run_query(ctx, statement, int(limit))
    result()


show(render, refresh=False)
