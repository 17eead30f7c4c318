"""The LPPO dashboard: a read-only Streamlit view of a run's sample ledger.

    lppo dashboard RUN_DIR_OR_URL                      # what users run
    streamlit run dashboard/app.py -- RUN_DIR_OR_URL [--refresh S]

This entry script draws the sidebar (ledger, run picker, auto-refresh; `dashboard.context`)
and declares the pages with `st.navigation`; each page under `views/` renders one view from
cached, read-only ledger queries (`dashboard.data`). Nothing here writes to the ledger.

The folder is `views/`, not `pages/`: Streamlit treats a `pages/` folder next to the entry
script as the older file-based navigation, and then (in `AppTest`, for one) reruns a page
without this script, dropping the sidebar and the run picker.
"""

from __future__ import annotations

import streamlit as st

import dashboard.charts  # noqa: F401  (Altair, ~0.5 s to import: once per server, up front)
from dashboard.context import VIEWS, setup, view_file

st.set_page_config(page_title="LPPO dashboard", page_icon=":material/insights:",
                   layout="wide")

# URL paths are the file names (/samples, /trajectory?sample=ID, ...), which is also how
# AppTest.switch_page finds a page before the first run.
PAGES = [st.Page(view_file(name), title=title, icon=icon, default=i == 0)
         for i, (name, (title, icon)) in enumerate(VIEWS.items())]

page = st.navigation(PAGES)
if setup() is not None:
    page.run()
