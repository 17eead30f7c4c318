"""Reader API and the documented queries, on a simulated run, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest

from lppo.errors import UserError
from store.ledger import Ledger
from store.queries import LedgerReader
from store.simulate import populate
from tests.conftest import ROOT
from tests.store.conftest import BACKENDS, make_url

QUERIES = re.findall(r"```sql\n(.*?)```", (ROOT / "docs" / "queries.md").read_text(), re.S)
SAMPLES, STEPS = 120, 24


@pytest.fixture(scope="module", params=BACKENDS)
def reader(request, tmp_path_factory):
    urls = make_url(request, request.param, tmp_path_factory.mktemp("ledger"))
    url = next(urls)
    with Ledger(url) as ledger:
        populate(ledger, "first", samples=20, steps=3, seed=1)
        populate(ledger, "sim", samples=SAMPLES, steps=STEPS, seed=0)
    with LedgerReader(url) as rd:
        yield rd
    next(urls, None)


def test_docs_have_ten_queries():
    assert len(QUERIES) >= 10


@pytest.mark.parametrize("index", range(len(QUERIES)))
def test_documented_query_runs(reader, index):
    result = reader.sql(QUERIES[index])
    assert result.columns
    assert result.rows, f"query {index + 1} returned nothing on a simulated run"


def test_runs_and_summary(reader):
    runs = reader.runs()
    assert [r["name"] for r in runs] == ["sim", "first"]
    assert runs[0]["last_step"] == STEPS and runs[0]["samples"] == SAMPLES
    summary = reader.summary()
    assert summary["name"] == "sim" and summary["status"] == "finished"
    assert summary["samples"]["total"] == SAMPLES
    rollouts = reader.sql("SELECT count(*) FROM rollouts r JOIN rollout_groups g "
                          "ON g.id = r.group_id WHERE g.run_id = "
                          f"{summary['id']}").rows[0][0]
    groups = summary["groups"]
    assert groups["rollouts"] == rollouts
    assert groups["used"] + sum(groups["dropped"].values()) <= groups["groups"]  # rest: pending
    assert summary["steps"]["count"] == STEPS
    assert summary["evals"][0]["benchmark"] == "synthetic_eval"
    assert reader.summary("first")["samples"]["total"] == 20


def test_sample_table_filters_and_sorts(reader):
    rows = reader.samples(order_by="ema", descending=True, limit=10)
    emas = [r["ema"] for r in rows if r["ema"] is not None]
    assert emas == sorted(emas, reverse=True)
    solved = reader.samples(status="solved", limit=1000)
    assert solved and all(r["status"] == "solved" for r in solved)
    guided = reader.samples(guided=True, limit=1000)
    assert guided and all(r["guided_attempts"] > 0 for r in guided)
    assert reader.samples(search="Problem 7:", limit=5)[0]["source_key"] == "p7"
    assert len(reader.samples(limit=7, offset=3)) == 7
    with pytest.raises(UserError, match="cannot sort"):
        reader.samples(order_by="problem; DROP TABLE runs")


def test_trajectory_is_the_sample_history(reader):
    top = reader.samples(order_by="attempts", limit=1)[0]
    steps = reader.trajectory(top["sample_id"], texts=True)
    assert len(steps) == top["attempts"] + top["guided_attempts"]
    assert [s["step_seen"] for s in steps] == sorted(s["step_seen"] for s in steps)
    assert steps[-1]["ema"] == pytest.approx(top["ema"])
    assert all(len(s["rollouts"]) == s["n"] for s in steps)
    assert "boxed" in steps[0]["rollouts"][0]["text"]
    assert reader.rollouts(steps[0]["group_id"]) == steps[0]["rollouts"]
    assert "rollouts" not in reader.trajectory(top["sample_id"])[0]


def test_curves(reader):
    curation = reader.curation()
    assert [c["step"] for c in curation] == list(range(1, STEPS + 1))
    assert all(c["samples_active"] is not None for c in curation)
    actors = reader.actors()
    assert {a["actor_id"] for a in actors} == {"actor-0", "actor-1"}
    assert sum(a["groups"] for a in actors) == sum(c["groups"] for c in curation)
    assert len(reader.steps()) == STEPS and len(reader.evals()) == 2


def test_unknown_run_names_the_known_ones(reader):
    with pytest.raises(UserError, match="no run 'nope'.*first, sim"):
        reader.summary("nope")
