"""Configuration and data errors end with one clear message and a non-zero exit, never a
traceback, for every process a user starts."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli
from tests.integration.run_files import small_run_config, write_task


@pytest.fixture()
def files(tiny_model, tmp_path):
    paths = write_task(tmp_path, train={1: 4}, held_out={1: 2})
    return tmp_path, tiny_model, paths["train"]


def _one_message(out, *needles: str) -> None:
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout
    for needle in needles:
        assert needle in out.stderr, out.stderr[-2000:]


def test_bad_data_row_names_file_and_line(files):
    root, model, train = files
    lines = train.read_text().splitlines()
    lines[2] = '{"id": "x", "problem": "What is 1 + 1?"'  # truncated JSON
    train.write_text("\n".join(lines) + "\n")
    cfg = small_run_config(root, model, train)
    _one_message(run_cli("learner", str(cfg), timeout=300), "train.jsonl:3", "invalid JSON")
    assert not (root / "runs" / "it" / "ledger.db").exists()  # nothing written


def test_missing_model_is_named(files):
    root, _, train = files
    cfg = small_run_config(root, root / "no-such-model", train)
    _one_message(run_cli("learner", str(cfg), timeout=300), "model.path", "no-such-model")


def test_invalid_config_for_run_learner_actor(files):
    root, model, train = files
    cfg = small_run_config(root, model, train)
    for command in ("run", "learner", "actor", "demo", "eval"):
        out = run_cli(command, str(cfg), "--set", "learner.lr=fast", timeout=120)
        _one_message(out, "learner.lr: expected float > 0, got 'fast'")


def test_bad_learner_address(files):
    root, model, train = files
    cfg = small_run_config(root, model, train)
    _one_message(run_cli("actor", str(cfg), "--learner", "http://x", timeout=120),
                 "--learner: expected tcp://HOST[:PORT]")
