"""Cached reads for the dashboard: every ledger query a page makes goes through here.

One `LedgerReader` per ledger and server process (`st.cache_resource`): a read-only engine
(SQLite `mode=ro`, PostgreSQL read-only sessions) with a statement timeout. Query results are
cached with `st.cache_data` and a short TTL, and keyed by the run's `updated_at` (the time of
its last ledger write, `version` below): while a run is live every write makes the next
refresh read fresh rows, a finished run is read once per TTL at most, and pages that ask for
the same rows share them. The run list itself, which carries `updated_at`, has the shortest
TTL.

Results are plain data (frames, dicts, lists) so Streamlit can copy them out of the cache.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import frames, queries
from lppo.core.config.schema import StoreConfig
from store.queries import LedgerReader

RUNS_TTL_S = 2.0
"""The run list (status, `updated_at`): how stale "is it live, did it change" may be."""
DATA_TTL_S = 30.0
"""Everything else; also keyed by the run's `updated_at`, so a live run refreshes sooner."""


@st.cache_resource(show_spinner=False)
def reader(target: str) -> LedgerReader:
    """The process's reader for `target` (run directory, SQLite file or URL)."""
    cfg = StoreConfig()
    return LedgerReader(target, statement_timeout_s=cfg.statement_timeout_s,
                        row_limit=cfg.row_limit, busy_timeout_ms=cfg.busy_timeout_ms)


@st.cache_data(ttl=RUNS_TTL_S, show_spinner=False)
def runs(target: str) -> pd.DataFrame:
    """Every run, newest first: id, name, status, times, last step, sample count."""
    return pd.DataFrame(reader(target).runs(), columns=[
        "id", "name", "status", "code_version", "started_at", "updated_at", "ended_at",
        "last_step", "samples"])


@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def summary(target: str, run_id: int, version: float) -> dict[str, Any]:
    return reader(target).summary(run_id)


@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def steps(target: str, run_id: int, version: float) -> pd.DataFrame:
    """Per step: train-step metrics, curation counts, pass rates, rates (`frames.step_frame`)."""
    r = reader(target)
    return frames.step_frame(queries.step_curves(r, run_id), r.steps(run_id))


@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def evals(target: str, run_id: int, version: float) -> pd.DataFrame:
    return pd.DataFrame(reader(target).evals(run_id),
                        columns=["step", "benchmark", "metric", "value", "n"])


@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def actors(target: str, run_id: int, version: float) -> pd.DataFrame:
    """Per (step, actor): rates over the step's window, staleness, weight version."""
    return frames.actor_frame(queries.actor_steps(reader(target), run_id),
                              steps(target, run_id, version))


@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def datasets(target: str, run_id: int, version: float) -> list[str]:
    return queries.datasets(reader(target), run_id)


@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def sample_table(target: str, run_id: int, version: float, *, order_by: str, descending: bool,
                 limit: int, offset: int, **filters: Any) -> pd.DataFrame:
    """One page of the sample table (`LedgerReader.samples`)."""
    return pd.DataFrame(reader(target).samples(run_id, order_by=order_by, descending=descending,
                                               limit=limit, offset=offset, **filters))


@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def sample_count(target: str, run_id: int, version: float, **filters: Any) -> int:
    """How many samples match the sample-table filters."""
    return queries.count_samples(reader(target), run_id, **filters)


@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def points(target: str, run_id: int, version: float) -> pd.DataFrame:
    """Every sample of the run: status, EMA, progress, weight, prefix ratio."""
    return pd.DataFrame(queries.sample_points(reader(target), run_id), columns=[
        "sample_id", "status", "ema", "progress", "weight", "prefix_ratio", "attempts",
        "guided_attempts", "last_seen_step"])


@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def pass_rate_bins(target: str, run_id: int, version: float) -> pd.DataFrame:
    return frames.pass_rate_bins(queries.pass_rate_counts(reader(target), run_id))


@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def rescued(target: str, run_id: int, version: float) -> pd.DataFrame:
    return pd.DataFrame(queries.rescued(reader(target), run_id), columns=[
        "sample_id", "dataset", "source_key", "failed_step", "guided_step", "rescued_step",
        "guided_groups", "mean_prefix_ratio", "max_prefix_ratio", "mean_prefix_tokens"])


@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def sample(target: str, sample_id: int) -> dict[str, Any]:
    """Problem, answer, expert solution and metadata (raises UserError for an unknown id)."""
    return reader(target).sample(sample_id)


@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def sample_state(target: str, run_id: int, version: float, sample_id: int) -> dict | None:
    return queries.sample_state(reader(target), run_id, sample_id)


@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def trajectory(target: str, run_id: int, version: float, sample_id: int) -> list[dict]:
    """The sample's groups in order, each with its `rollouts` (texts included)."""
    return reader(target).trajectory(sample_id, run_id, texts=True)


@st.cache_data(ttl=DATA_TTL_S, show_spinner=False)
def default_sample(target: str, run_id: int, version: float) -> int | None:
    return queries.default_sample(reader(target), run_id)
