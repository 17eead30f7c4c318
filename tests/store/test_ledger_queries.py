"""Reader API and the documented queries, on a simulated run, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest

from lppo.core.errors import UserError
from lppo.testing.simulate import populate
from store.ledger import Ledger
from store.queries import LedgerReader
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


# history as (step, prefix ratio, prefix tokens, correct of 4[, of them without the prefix]),
# and whether the sample is rescued
HISTORIES = {
    "fail, guided, pass": ([(1, 0.0, 0, 0), (2, 0.5, 3, 2), (4, 0.0, 0, 1)], True),
    "guided first, never failed unguided": ([(1, 0.5, 3, 4), (2, 0.0, 0, 2)], False),
    "passed before it was guided": ([(1, 0.0, 0, 0), (2, 0.0, 0, 3), (3, 0.5, 3, 1)], False),
    "guided, failed again": ([(1, 0.0, 0, 0), (2, 0.6, 4, 0), (3, 0.0, 0, 0)], False),
    "all in one step, in arrival order": ([(5, 0.0, 0, 0), (5, 0.5, 3, 0), (5, 0.0, 0, 4)], True),
    "guided only by an empty cut": ([(1, 0.0, 0, 0), (2, 0.5, 0, 1), (3, 0.0, 0, 1)], False),
    "rescued twice, counted once": ([(1, 0.0, 0, 0), (2, 0.7, 5, 1), (3, 0.5, 3, 2),
                                     (4, 0.0, 0, 2), (5, 0.0, 0, 0), (6, 0.5, 3, 4),
                                     (7, 0.0, 0, 4)], True),
    # mixed groups (the 5th number: completions without the prefix, the last ones)
    "a mixed group's unguided part passes later": ([(1, 0.0, 0, 0), (2, 0.5, 3, 4, 1),
                                                    (3, 0.5, 3, 4, 1)], True),
    "failed in a mixed group's unguided part": ([(1, 0.5, 3, 2, 2), (2, 0.5, 3, 1, 2),
                                                 (3, 0.0, 0, 1)], True),
    "passed only with the prefix": ([(1, 0.0, 0, 0), (2, 0.5, 3, 2, 2), (3, 0.5, 3, 3, 1)],
                                    False),
}


@pytest.fixture(params=BACKENDS)
def known_history(request, tmp_path):
    from tests.store.helpers import group, setup_run

    urls = make_url(request, request.param, tmp_path)
    url = next(urls)
    with Ledger(url) as ledger:
        run, ids = setup_run(ledger, n_samples=len(HISTORIES), name="known")
        records = sorted(
            ((event[0], i, j, ids[i], *event[1:]) for i, (history, _) in
             enumerate(HISTORIES.values()) for j, event in enumerate(history)),
            key=lambda r: r[:3])
        ledger.record_groups(run, [
            group(f"s{i}-{j}", sid, step=step, correct=correct, prefix_ratio=ratio,
                  prefix_len=plen, unguided=rest[0] if rest else 0)
            for step, i, j, sid, ratio, plen, correct, *rest in records])
    yield url, ids
    next(urls, None)


def test_one_definition_of_rescued_on_a_known_history(known_history):
    from dashboard import queries as dashboard_queries
    from dashboard.examples import load
    from store.queries import RESCUED_SQL

    url, ids = known_history
    expected = {ids[i] for i, (_, rescued) in enumerate(HISTORIES.values()) if rescued}
    with LedgerReader(url) as reader:
        rows = reader.rescued("known")
        assert {r["sample_id"] for r in rows} == expected
        first = next(r for r in rows if r["sample_id"] == ids[0])
        assert (first["failed_step"], first["guided_step"], first["rescued_step"]) == (1, 2, 4)
        assert first["guided_groups"] == 1 and first["mean_prefix_ratio"] == pytest.approx(0.5)
        twice = next(r for r in rows if r["sample_id"] == ids[6])
        assert twice["rescued_step"] == 4 and twice["guided_groups"] == 2
        assert twice["mean_prefix_ratio"] == pytest.approx(0.6)
        assert reader.summary("known")["rescued_by_prefix"] == len(expected)
        run_id = reader.run_id("known")
        assert dashboard_queries.rescued(reader, run_id) == rows
        (doc,) = [e for e in load() if e.title == "1. Samples rescued by prefixes"]
        assert doc.sql.rstrip(";") == RESCUED_SQL.format(run="(SELECT max(id) FROM runs)")
        documented = reader.sql(doc.sql)
        assert [r[0] for r in documented.rows] == [r["sample_id"] for r in rows]
