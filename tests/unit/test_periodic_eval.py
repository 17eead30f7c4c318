"""Periodic evaluation: JSON reports become eval_results rows; scheduling rules."""

from __future__ import annotations

from learner.periodic_eval import PeriodicEval, records_from_report
from lppo.core.config import Config


def test_report_to_records():
    report = {"step": 6, "benchmarks": [
        {"name": "a", "n": 10, "metrics": {"pass@1": 0.25, "pass@4": 0.5}},
        {"name": "empty", "n": 0, "metrics": {"pass@1": float("nan")}},
    ]}
    rows = records_from_report(report)
    assert [(r.step, r.benchmark, r.metric, r.value, r.n) for r in rows] == [
        (6, "a", "pass@1", 0.25, 10), (6, "a", "pass@4", 0.5, 10)]


def test_disabled_without_eval_sets_or_interval(tmp_path):
    cfg = Config.model_validate({"run": {"output_dir": str(tmp_path)},
                                 "learner": {"eval_every": 5}})
    ev = PeriodicEval(cfg, tmp_path / "c.toml")
    assert not ev.enabled
    ev.maybe_start(5, 5)
    assert ev.proc is None and ev.poll() == [] and ev.finish() == []
