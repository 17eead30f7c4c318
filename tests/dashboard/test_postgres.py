"""The dashboard on PostgreSQL: the same queries give the same rows as on SQLite, and every
page renders from a PostgreSQL ledger (read-only sessions).

One simulated run is written to both backends through the writer API with the same seed and
clock; `dashboard.queries` must then agree row for row. Skips, saying why, where the
PostgreSQL server binaries are absent (`lppo.testing.postgres.PG_MISSING`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from dashboard import queries
from lppo.testing.postgres import PG_MISSING, PgCluster, find_pg_bin
from lppo.testing.simulate import simulated_run
from store.ledger import Ledger
from store.queries import LedgerReader
from tests.dashboard.conftest import PAGES, problems

RUN = {"samples": 60, "steps": 25, "seed": 7, "start_at": 1_700_000_000.0}


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip(PG_MISSING)
    cluster = PgCluster(bin_dir).start()
    try:
        url = cluster.create_database("dashboard")
        with Ledger(url) as ledger:
            simulated_run(ledger, "pg-run", **RUN)
        yield url
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("pg-twin") / "ledger.db"
    with Ledger(str(path)) as ledger:
        simulated_run(ledger, "pg-run", **RUN)
    return str(path)


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9,
                                                                 abs_tol=1e-9)
    return a == b


def _rows_equal(left: list[dict], right: list[dict]) -> None:
    assert len(left) == len(right) > 0
    for x, y in zip(left, right, strict=True):
        assert x.keys() == y.keys()
        assert {k: type(v) for k, v in x.items() if v is not None} == \
            {k: type(v) for k, v in y.items() if v is not None}
        bad = {k: (x[k], y[k]) for k in x if not _same(x[k], y[k])}
        assert bad == {}, bad


@pytest.mark.parametrize("query", ["step_curves", "actor_steps", "pass_rate_counts",
                                   "rescued", "sample_points"])
def test_queries_agree_between_backends(pg_url, sqlite_url, query):
    with LedgerReader(pg_url) as pg, LedgerReader(sqlite_url) as lite:
        _rows_equal(getattr(queries, query)(pg, pg.run_id()),
                    getattr(queries, query)(lite, lite.run_id()))


def test_sample_filters_agree_between_backends(pg_url, sqlite_url):
    with LedgerReader(pg_url) as pg, LedgerReader(sqlite_url) as lite:
        for filters in ({}, {"status": "solved"}, {"guided": True}, {"search": "Problem 1"},
                        {"dataset": "synthetic", "guided": False}):
            assert (queries.count_samples(pg, pg.run_id(), **filters)
                    == queries.count_samples(lite, lite.run_id(), **filters))
        assert queries.datasets(pg, pg.run_id()) == ["synthetic"]
        assert queries.default_sample(pg, 1) == queries.default_sample(lite, 1)
        assert queries.sample_state(pg, 1, 5) == queries.sample_state(lite, 1, 5)


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_renders_from_postgresql(open_app, pg_url, page):
    at = open_app(pg_url, page)
    assert problems(at) == []
    assert at.title
