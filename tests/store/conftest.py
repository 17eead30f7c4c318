"""Ledger test fixtures: a private PostgreSQL 15 cluster and a `ledger_url` for each backend.

Every test that takes `ledger_url` runs twice: against a SQLite file in its tmp_path and
against a fresh database in a throwaway PostgreSQL cluster started once per session (initdb
on a free port under a temporary folder, as an unprivileged user; see `lppo.testing.postgres`). Where
the PostgreSQL server binaries are absent the PostgreSQL half skips, saying so; nothing else
skips.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from lppo.testing.postgres import PG_MISSING, PgCluster, find_pg_bin

BACKENDS = ("sqlite", "postgresql")
_names = itertools.count()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip(PG_MISSING)
    cluster = PgCluster(bin_dir).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def make_url(request: pytest.FixtureRequest, backend: str, folder) -> Iterator[str]:
    """A fresh, empty ledger URL on `backend` (a SQLite file in `folder`, or a new database)."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'ledger.db'}"
        return
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    name = f"ledger_{next(_names)}"
    yield cluster.create_database(name)
    cluster.drop_database(name)


@pytest.fixture(params=BACKENDS)
def ledger_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    yield from make_url(request, request.param, tmp_path)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param
