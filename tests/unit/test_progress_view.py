"""The live progress view of `lppo run` (lppo/progress.py) while the ledger comes into being."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

from lppo.core.config import load_config
from lppo.progress import ProgressView
from store.db import ensure_schema, writer_engine

DEMO = Path(__file__).resolve().parents[2] / "configs" / "demo.toml"


def _view(tmp_path: Path) -> ProgressView:
    cfg = load_config(DEMO, [f"run.output_dir={tmp_path.as_posix()!r}".replace("'", '"')])
    cfg.run.run_dir.mkdir(parents=True)
    return ProgressView(cfg, stream=io.StringIO())


def _force(view: ProgressView) -> None:
    view._next = 0.0  # refresh now, not after REFRESH_S
    view.refresh({"learner": True})


def test_a_ledger_file_without_its_schema_yet_is_waited_for(tmp_path):
    """The learner creates ledger.db, then migrates it: a refresh in between must not raise
    (it once killed `lppo run` at start: "ledger.db is empty")."""
    view = _view(tmp_path)
    _force(view)  # no file yet
    assert view.latest is None and view.error is None
    sqlite3.connect(view.cfg.run.run_dir / "ledger.db").close()  # file, no schema
    _force(view)
    assert view.latest is None
    assert view.error is not None and "empty" in view.error
    ensure_schema(writer_engine(view.cfg.ledger_url), writable=True)
    _force(view)  # readable; the learner has not registered its run yet
    assert view.latest is None and "no run 'demo'" in view.error
