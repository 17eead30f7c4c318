"""Every dashboard page, rendered with Streamlit's AppTest against real ledgers.

The ledgers are written by the store's writer API (`lppo.testing.simulate.simulated_run`): a rich
two-run ledger, a 10,000-sample run, a run with nothing written yet, and a ledger with no
run. Each page must render without an exception or error box and show what it is for.
"""

from __future__ import annotations

import json
import time

import pytest
from streamlit import dataframe_util

from dashboard import data
from lppo.testing.simulate import simulated_run
from store.ledger import Ledger
from store.queries import LedgerReader
from store.records import StepRecord
from tests.dashboard.conftest import PAGES, RICH_DIGESTS, TITLES, folder_digest, problems, texts


def charts(at) -> list:
    return list(at.get("vega_lite_chart"))


def chart_data(chart):
    """The frames a vega-lite chart element carries."""
    return [dataframe_util.convert_arrow_bytes_to_pandas_df(d.data.data)
            for d in chart.proto.datasets]


def chart_titles(at) -> list[str]:
    out = []
    for c in charts(at):
        title = json.loads(c.proto.spec).get("title")
        out.append(title.get("text") if isinstance(title, dict) else title)
    return out


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_renders_a_rich_run(open_app, rich_ledger, page):
    at = open_app(rich_ledger, page)
    assert problems(at) == []
    assert at.title[0].value.startswith(TITLES[page])
    assert at.session_state["run_name"] == "lppo"  # the newest run is picked first


def test_overview_numbers_and_curves(open_app, rich_ledger):
    at = open_app(rich_ledger)
    metrics = {m.label: m.value for m in at.metric}
    with LedgerReader(str(rich_ledger)) as reader:
        summary = reader.summary("lppo")
    assert metrics["Status"] == "running"
    assert metrics["Step"] == "40"
    assert metrics["Samples"] == "200"
    assert metrics["Rollouts"] == f"{summary['groups']['rollouts']:,}"
    titles = chart_titles(at)
    for expected in ("Reward and pass rate", "Loss", "KL of the trained policy", "Entropy",
                     "Prefix-guided share of groups", "Staleness (policy versions)",
                     "Throughput", "Groups per step: used, dropped by reason",
                     "Samples by curation status", "Evaluations"):
        assert expected in titles
    loss = chart_data(charts(at)[titles.index("Loss")])[0]
    assert len(loss) == 40 and set(loss["series"]) == {"loss"}
    kl = chart_data(charts(at)[titles.index("KL of the trained policy")])[0]
    assert set(kl["series"]) == {"to the sampling policy"}  # no reference model in this run
    weights = chart_data(charts(at)[titles.index("LP weights in the batch")])[0]
    assert set(weights["series"]) == {"spread (std)", "share of groups re-weighted"}
    with LedgerReader(str(rich_ledger)) as reader:
        recorded = [s["metrics"]["batch/lp_weight_std"] for s in reader.steps("lppo")
                    if "batch/lp_weight_std" in s["metrics"]]
    drawn = weights[weights["series"] == "spread (std)"]["value"].tolist()
    assert drawn == pytest.approx(recorded) and len(drawn) > 30


def test_overview_compares_runs(open_app, rich_ledger):
    at = open_app(rich_ledger)
    at.multiselect(key="compare_runs").set_value(["baseline"]).run()
    assert problems(at) == []
    titles = chart_titles(at)
    loss = chart_data(charts(at)[titles.index("Loss")])[0]
    assert set(loss["series"]) == {"lppo: loss", "baseline: loss"}
    assert len(loss) == 40 + 30


def test_live_run_refreshes_and_finished_run_does_not(open_app, rich_ledger):
    at = open_app(rich_ledger)
    toggle = at.sidebar.toggle[0]
    assert toggle.label == "Auto-refresh" and toggle.value is True
    at.sidebar.selectbox(key="run_name").set_value("baseline").run()
    assert at.sidebar.toggle[0].value is False and at.sidebar.toggle[0].disabled


def test_samples_table_filters_sorts_searches(open_app, rich_ledger):
    at = open_app(rich_ledger, "samples")
    table = at.dataframe[0].value
    assert len(table) == 200
    assert list(table["progress"]) == sorted(table["progress"], reverse=True)
    at.selectbox(key="f_status").set_value("solved").run()
    solved = at.dataframe[0].value if at.dataframe else None
    assert solved is not None and set(solved["status"]) == {"solved"}
    at.selectbox(key="f_status").set_value("all")
    at.selectbox(key="f_order").set_value("ema")
    at.selectbox(key="f_desc").set_value("ascending").run()
    emas = at.dataframe[0].value["ema"].dropna()
    assert list(emas) == sorted(emas)
    at.text_input(key="f_search").input("Problem 17:").run()
    found = at.dataframe[0].value
    assert list(found["problem"].str.startswith("Problem 17:")) == [True]
    assert "1 samples match" in texts(at)
    assert set(table["selection"].dropna()) <= {"uniform", "recheck"}  # why each was chosen
    assert table["selection"].notna().any() and table["selection_score"].notna().any()


def test_clicking_a_sample_opens_its_trajectory(open_app, rich_ledger):
    at = open_app(rich_ledger, "samples")
    wanted = int(at.dataframe[0].value["sample_id"].iloc[3])
    at.session_state["sample_table"] = {"selection": {"rows": [3], "columns": [],
                                                      "cells": []}}
    at.run()
    assert problems(at) == []
    assert at.title[0].value == "Sample trajectory"
    assert at.query_params["sample"] == str(wanted)
    assert at.number_input(key="traj_sample").value == wanted


def _guided_sample(ledger) -> tuple[int, int]:
    """(sample id, groups) of the `lppo` sample with the most groups, guided at least once."""
    with LedgerReader(str(ledger)) as reader:
        res = reader.sql(
            "SELECT sample_id, count(*) FROM rollout_groups WHERE run_id = "
            "(SELECT id FROM runs WHERE name = 'lppo') GROUP BY sample_id "
            "HAVING max(prefix_len) > 0 ORDER BY count(*) DESC, sample_id LIMIT 1")
    return res.rows[0]


def test_trajectory_shows_curves_solution_and_rollouts(open_app, rich_ledger):
    sid, n_groups = _guided_sample(rich_ledger)
    at = open_app(rich_ledger, "trajectory", sample=str(sid))
    assert problems(at) == []
    metrics = {m.label: m.value for m in at.metric}
    assert {"Status", "EMA pass rate", "Progress", "LP weight", "Prefix ratio"} <= set(metrics)
    (chart,) = charts(at)
    spec = json.loads(chart.proto.spec)
    assert len(spec["vconcat"]) == 4
    traj = chart_data(chart)[0]
    assert len(traj) == n_groups and traj["guided"].any()
    html = texts(at)
    with LedgerReader(str(rich_ledger)) as reader:
        (problem,) = reader.sql(f"SELECT problem FROM samples WHERE id = {sid}").rows[0]
    assert problem.startswith("Problem ") and problem in html
    assert "<mark" in html and "Highlighted: the prefix" in html
    assert len(at.expander) == min(10, n_groups)
    assert "correct" in at.expander[0].label and "step" in at.expander[0].label
    assert all("chosen by " in e.label for e in at.expander)  # the policy (and its score)
    assert at.code[0].value.startswith("Let me work through this")
    at.selectbox(key="traj_shown").set_value("all").run()
    assert len(at.expander) == n_groups
    # a guided group that a step used says what its prefix tokens were trained with
    taught = [e.label for e in at.expander if "prefix off_policy (A +" in e.label]
    assert taught and all("all with it" in label for label in taught)
    assert any("with the prefix" in m.value for m in at.markdown)


def test_trajectory_of_unknown_sample_says_so(open_app, rich_ledger):
    at = open_app(rich_ledger, "trajectory", sample="999999")
    assert any("no sample with id 999999" in e for e in problems(at))
    assert list(at.exception) == []


def test_progress_map(open_app, rich_ledger):
    at = open_app(rich_ledger, "progress_map")
    assert problems(at) == []
    titles = chart_titles(at)
    assert titles[:2] == ["Samples by EMA pass rate and learning progress",
                          "Pass-rate distribution of unguided groups per step"]
    scatter = chart_data(charts(at)[0])[0]
    assert set(scatter["status"]) <= {"active", "solved", "parked"} and len(scatter) > 100
    heat = chart_data(charts(at)[1])[0]
    assert abs(heat.groupby("step")["share"].sum() - 1).max() < 1e-9
    with LedgerReader(str(rich_ledger)) as reader:
        res = reader.sql("SELECT count(*) FROM sample_state")  # sanity: a real ledger
    assert res.rows[0][0] == 400
    if "Prefix ratio while guided (mean before the rescue)" in titles:
        assert len(at.dataframe[0].value) > 0


def test_actors(open_app, rich_ledger):
    at = open_app(rich_ledger, "actors")
    assert problems(at) == []
    totals = at.dataframe[0].value
    assert set(totals["actor_id"]) == {"actor-0", "actor-1", "actor-2"}
    assert (totals["rollouts_per_s"] > 0).all()
    assert chart_titles(at) == ["Rollouts/s per actor", "Completion tokens/s per actor",
                                "Mean staleness of arriving groups", "Weight version used"]
    rates = chart_data(charts(at)[0])[0]
    assert set(rates["actor_id"]) == {"actor-0", "actor-1", "actor-2"}


def test_sql_page_runs_examples_and_refuses_writes(open_app, rich_ledger):
    at = open_app(rich_ledger, "sql")
    assert problems(at) == []
    assert at.download_button[0].label == "Download CSV"
    assert "sample_id" in at.dataframe[0].value.columns  # example 1 ran
    at.selectbox(key="sql_example").set_value("6. Samples by status and data set").run()
    assert "GROUP BY s.dataset, st.status" in at.text_area(key="sql_text").value
    assert set(at.dataframe[0].value.columns) >= {"dataset", "status", "samples"}
    at.text_area(key="sql_text").input("DELETE FROM runs")
    at.button[0].click().run()
    assert any("refused" in e for e in problems(at))
    assert list(at.exception) == []
    at.text_area(key="sql_text").input("SELECT name FROM runs ORDER BY id")
    at.button[0].click().run()
    assert list(at.dataframe[0].value["name"]) == ["baseline", "lppo"]


@pytest.mark.parametrize(("query", "words"), [
    ("SELECT hex(fts3_tokenizer('simple'))", "fts3_tokenizer() is not allowed"),
    ("SELECT fts3_tokenizer('simple', x'4141414141414141')", "fts3_tokenizer() is not allowed"),
    ("SELECT randomblob(300000000) AS x FROM (VALUES (1), (2))", "exceed"),
    ("SELECT 'a\x00'", "NUL character"),  # (a lone surrogate cannot reach the page: the
])                                         # widget channel is UTF-8; lppo sql is tested)
def test_sql_page_refuses_what_could_hurt_the_server(open_app, rich_ledger, query, words):
    at = open_app(rich_ledger, "sql")
    at.session_state["sql_text"] = query  # as the server holds it (a browser cannot send all)
    start = time.monotonic()
    at.button[0].click().run()
    assert time.monotonic() - start < 10
    assert any(words in e for e in problems(at)), problems(at)
    assert list(at.exception) == []
    at.text_area(key="sql_text").input("SELECT count(*) AS n FROM runs")
    at.button[0].click().run()  # the same server goes on answering
    assert list(at.dataframe[0].value["n"]) == [2]


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_renders_an_empty_run(open_app, empty_run_ledger, page):
    at = open_app(empty_run_ledger, page)
    assert problems(at) == []
    assert at.title[0].value.startswith(TITLES[page])
    if page in ("overview", "actors"):
        assert "No" in texts(at)


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_renders_a_ledger_without_runs(open_app, no_runs_ledger, page):
    at = open_app(no_runs_ledger, page)
    assert problems(at) == []
    if page != "sql":
        assert "The ledger has no runs yet" in texts(at)


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_renders_10000_samples(open_app, big_ledger, page):
    at = open_app(big_ledger, page)
    assert problems(at) == []
    if page == "samples":
        assert "10,000 samples match; rows 1-500" in texts(at)
        at.selectbox(key="f_page_size").set_value(5000)
        at.number_input(key="f_page").set_value(2).run()
        assert len(at.dataframe[0].value) == 5000
        assert "rows 5,001-10,000" in texts(at)
    if page == "progress_map":
        assert {m.label: m.value for m in at.metric}["Samples"] == "10,000"


def test_unreadable_ledger_is_one_message(open_app, tmp_path):
    at = open_app(tmp_path / "missing")
    assert list(at.exception) == []
    assert any("Cannot open the ledger" in e and "no ledger at" in e for e in problems(at))


def test_zz_rendering_left_the_ledger_untouched(rich_ledger):
    """Last in this module: every page above read the rich ledger; none changed a byte."""
    assert folder_digest(rich_ledger.parent) == RICH_DIGESTS[rich_ledger]


def test_live_run_shows_new_writes_after_the_short_ttl(open_app, tmp_path):
    """A `running` run: auto-refresh on; a step written and the run ended meanwhile show on
    the next rerun (the run list expires after RUNS_TTL_S, data is keyed by updated_at)."""
    path = tmp_path / "ledger.db"
    with Ledger(str(path)) as writer:
        run_id, _ = simulated_run(writer, "live", samples=30, steps=3, finished=False)
    at = open_app(path)
    assert {m.label: m.value for m in at.metric}["Step"] == "3"
    assert at.sidebar.toggle[0].value is True
    with Ledger(str(path)) as writer:
        writer.write(run_id, steps=[StepRecord(step=4, policy_version=4, loss=0.25)])
        writer.end_run(run_id)
    time.sleep(data.RUNS_TTL_S + 0.2)
    at.run()
    assert problems(at) == []
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Step"] == "4" and metrics["Status"] == "finished"
    assert at.sidebar.toggle[0].value is False and at.sidebar.toggle[0].disabled
