"""Dashboard test fixtures: real ledgers written by the store's writer API, and `AppTest`s.

Ledgers (built once per session, in tmp folders):

- `rich_ledger`: two runs over the same 200 samples: `baseline` (finished, 30 steps) and
  `lppo` (still `running`, 40 steps), 3 actors, completion texts: every chart has data.
- `big_ledger`: one run over 10,000 samples (a few steps of 150 groups).
- `empty_run_ledger`: a run registered with 20 samples and nothing written yet.
- `no_runs_ledger`: a ledger with its schema and no run.

`open_app(target, page)` renders `dashboard/app.py` with `AppTest` (the ledger passed as
`LPPO_DASHBOARD_TARGET`), switched to `page`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.context import VIEWS, view_file
from lppo.testing.simulate import simulated_run
from store.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "dashboard" / "app.py"
PAGES = {name: view_file(name) for name in VIEWS}
TITLES = {name: "Run" if name == "overview" else title for name, (title, _) in VIEWS.items()}
"""What each page's title starts with (the overview's is "Run NAME")."""


@pytest.fixture(scope="session")
def rich_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rich") / "ledger.db"
    with Ledger(str(path)) as ledger:
        simulated_run(ledger, "baseline", samples=200, steps=30, seed=1)
        simulated_run(ledger, "lppo", samples=200, steps=40, seed=2, finished=False)
    RICH_DIGESTS[path] = folder_digest(path.parent)
    return path


RICH_DIGESTS: dict[Path, dict[str, str]] = {}
"""The rich ledger's files (name -> sha256) right after it was written: the last test of
test_pages.py checks that rendering every page left them byte for byte the same."""


def folder_digest(folder: Path) -> dict[str, str]:
    """sha256 of the database and of a non-empty write-ahead log in `folder`. Left out: an
    empty -wal, and the -shm index, which SQLite readers update (read marks), not data."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir())
            if p.is_file() and p.stat().st_size and not p.name.endswith("-shm")}


@pytest.fixture(scope="session")
def big_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "ledger.db"
    with Ledger(str(path)) as ledger:
        simulated_run(ledger, "big", samples=10_000, steps=6, batch_groups=100, seed=3,
                      text_chars=60)
    return path


@pytest.fixture(scope="session")
def empty_run_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lppo.testing.simulate import synthetic_samples

    path = tmp_path_factory.mktemp("empty") / "ledger.db"
    with Ledger(str(path)) as ledger:
        ids = ledger.import_samples(synthetic_samples(20)).ids
        run_id = ledger.register_run("fresh")
        ledger.add_to_run(run_id, ids)
    return path


@pytest.fixture(scope="session")
def no_runs_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("none") / "ledger.db"
    Ledger(str(path)).close()
    return path


@pytest.fixture
def open_app(monkeypatch: pytest.MonkeyPatch) -> Callable[..., AppTest]:
    def _open(target: Path | str, page: str = "overview", **query: str) -> AppTest:
        monkeypatch.setenv("LPPO_DASHBOARD_TARGET", str(target))
        at = AppTest.from_file(str(APP), default_timeout=60)
        at.query_params.update(query)
        return at.switch_page(PAGES[page]).run()

    return _open


def problems(at: AppTest) -> list[str]:
    """Exceptions and error boxes on the page (expected to be none)."""
    return [str(e.value) for e in at.exception] + [str(e.value) for e in at.error]


def texts(at: AppTest) -> str:
    """Every markdown, caption, info and title text on the page, joined."""
    parts = []
    for kind in ("title", "markdown", "caption", "info", "warning", "subheader"):
        parts += [str(e.value) for e in at.get(kind)]
    return "\n".join(parts)
