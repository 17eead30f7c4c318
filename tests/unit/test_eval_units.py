"""Evaluation units: the pass@k estimator, per-benchmark metrics and ledger rows, checkpoint
path resolution and benchmark names (no engine started)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest

from actor.eval_report import BenchmarkResult, EvalReport, ProblemResult, paired_gain, pass_at_k
from actor.eval_targets import (
    EvalTargetError,
    latest_checkpoint,
    parse_names,
    resolve_benchmarks,
    resolve_model,
)
from actor.evaluate import engine_config
from lppo.core.config import Config, DataConfig, DatasetSpec, load_config
from lppo.core.errors import UserError
from lppo.core.resources import data_dir

# --------------------------------------------------------------------------------------------
# pass@k
# --------------------------------------------------------------------------------------------


def _brute_force(n: int, c: int, k: int) -> float:
    """Share of the k-subsets of n samples (c of them correct) holding a correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 2, 4, 7])
def test_pass_at_k_matches_the_definition(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(_brute_force(n, c, k), abs=1e-12)


def test_pass_at_k_hand_computed_values():
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 is the share correct
    assert pass_at_k(4, 0, 4) == 0.0 and pass_at_k(4, 1, 4) == 1.0  # n = k: any correct
    assert pass_at_k(200, 1, 100) == pytest.approx(0.5)


def test_pass_at_k_is_stable_for_large_n():
    value = pass_at_k(10_000, 37, 64)
    exact = 1 - math.comb(10_000 - 37, 64) / math.comb(10_000, 64)
    assert value == pytest.approx(exact, rel=1e-9)


@pytest.mark.parametrize(("n", "c", "k"), [(4, 5, 1), (4, -1, 1), (4, 2, 5), (4, 2, 0)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


# --------------------------------------------------------------------------------------------
# benchmark metrics and records
# --------------------------------------------------------------------------------------------


def _problem(key: str, verdicts: list[str], finished: bool = True) -> ProblemResult:
    return ProblemResult(key=key, answer="1", verdicts=verdicts,
                         finish_reasons=["stop" if finished else "length"] * len(verdicts),
                         lengths=[10] * len(verdicts), texts=["x"] * len(verdicts))


def test_benchmark_metrics_average_over_samples_and_problems():
    bench = BenchmarkResult("b", k=4, problems=[
        _problem("p1", ["correct", "wrong", "wrong", "no_answer"]),      # 1/4, solved
        _problem("p2", ["correct"] * 4),                                  # 4/4, solved
        _problem("p3", ["wrong"] * 4, finished=False),                    # 0/4
    ])
    assert bench.n == 3
    assert bench.metrics() == {"pass@1": pytest.approx((0.25 + 1 + 0) / 3),
                               "pass@4": pytest.approx(2 / 3)}
    assert bench.pass_at(2) == pytest.approx((0.5 + 1 + 0) / 3)
    assert bench.metrics()["pass@4"] >= bench.metrics()["pass@1"]
    assert bench.verdict_counts() == {"correct": 5, "wrong": 6, "no_answer": 1}
    assert bench.truncated == pytest.approx(4 / 12)
    rows = bench.records(step=30)
    assert [(r.step, r.benchmark, r.metric, r.n) for r in rows] == [
        (30, "b", "pass@1", 3), (30, "b", "pass@4", 3)]


def test_k1_has_one_metric_and_an_empty_benchmark_no_rows():
    bench = BenchmarkResult("b", k=1, problems=[_problem("p", ["correct"])])
    assert bench.metrics() == {"pass@1": 1.0}
    empty = BenchmarkResult("e", k=4, skipped=["long-1"])
    assert math.isnan(empty.pass_at(1)) and empty.records(step=0) == []
    report = EvalReport(model="m", step=5, k=4, sampling={}, benchmarks=[bench, empty],
                        seconds=1.0)
    assert [(r.benchmark, r.metric) for r in report.records()] == [("b", "pass@1")]
    assert json.loads(json.dumps(report.to_dict()))["benchmarks"][0]["problems"][0]["correct"] == 1


def test_engine_config_takes_eval_sampling_and_the_model():
    cfg = load_config(overrides=['actor.sampling.stop=["\\nQ:"]', "learner.eval.temperature=0.7",
                                 "learner.eval.top_p=0.9", "actor.sampling.max_tokens=300"])
    ec = engine_config(cfg, "/models/x", tokenizer="/tok")
    s = ec.actor.sampling
    assert (s.temperature, s.top_p, s.max_tokens, s.stop) == (0.7, 0.9, 300, ["\nQ:"])
    assert (ec.model.path, ec.model.tokenizer) == ("/models/x", "/tok")
    assert cfg.actor.sampling.temperature == 1.0 and cfg.model.path != "/models/x"  # untouched
    with_max = load_config(overrides=["learner.eval.max_tokens=64"])
    assert engine_config(with_max).actor.sampling.max_tokens == 64


def test_eval_max_tokens_must_fit_the_model_length():
    with pytest.raises(UserError, match="learner.eval.max_tokens"):
        load_config(overrides=["model.max_model_len=2048", "data.max_prompt_tokens=1024",
                               "actor.sampling.max_tokens=512", "learner.eval.max_tokens=4096"])


# --------------------------------------------------------------------------------------------
# checkpoint resolution
# --------------------------------------------------------------------------------------------


def _model_dir(path: Path, tokenizer: bool = True) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    if tokenizer:
        (path / "tokenizer.json").write_text("{}")
    return path


def _checkpoint(run_dir: Path, step: int, tokenizer: bool = True) -> Path:
    ckpt = run_dir / "checkpoints" / f"step_{step}"
    _model_dir(ckpt / "model", tokenizer)
    (ckpt / "state.json").write_text(json.dumps({"step": step, "version": step}))
    return ckpt


def test_checkpoint_directory_gives_its_model_folder_and_step(tmp_path):
    ckpt = _checkpoint(tmp_path / "run", 40)
    ref = resolve_model(ckpt)
    assert (ref.path, ref.step, ref.kind, ref.tokenizer) == (str(ckpt / "model"), 40,
                                                            "checkpoint", None)
    assert ref.checkpoint == ckpt
    assert resolve_model(ckpt / "model").step == 40  # named by its model folder
    assert resolve_model(str(ckpt), step=40).step == 40


def test_run_directory_and_checkpoints_folder_give_the_newest_checkpoint(tmp_path):
    run = tmp_path / "run"
    _checkpoint(run, 10)
    newest = _checkpoint(run, 120)
    _checkpoint(run, 9)
    (run / "checkpoints" / "step_200.tmp" / "model").mkdir(parents=True)  # incomplete: ignored
    (run / "checkpoints" / "step_300").mkdir()  # no state.json: ignored
    assert latest_checkpoint(run / "checkpoints") == newest
    assert resolve_model(run).step == 120
    assert resolve_model(run / "checkpoints").path == str(newest / "model")


def test_plain_model_folder_is_step_zero_unless_given(tmp_path):
    model = _model_dir(tmp_path / "m")
    assert (resolve_model(model).step, resolve_model(model).kind) == (0, "model")
    assert resolve_model(model, step=17).step == 17


def test_tokenizer_falls_back_when_the_model_folder_has_none(tmp_path):
    ckpt = _checkpoint(tmp_path / "run", 3, tokenizer=False)
    assert resolve_model(ckpt, fallback_tokenizer="base/model").tokenizer == "base/model"
    bare = _model_dir(tmp_path / "bare", tokenizer=False)
    assert resolve_model(bare, fallback_tokenizer="tok").tokenizer == "tok"


def test_hub_names_pass_when_online_and_must_be_cached_offline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    ref = resolve_model("Qwen/Qwen2.5-Math-7B", step=5)
    assert (ref.path, ref.step, ref.kind) == ("Qwen/Qwen2.5-Math-7B", 5, "hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EvalTargetError, match="not in the Hugging Face cache"):
        resolve_model("Qwen/Qwen2.5-Math-7B")


@pytest.mark.parametrize("target", ["runs/nope/checkpoints/step_3", "./missing", "/no/such/dir"])
def test_missing_paths_are_user_errors(tmp_path, monkeypatch, target):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EvalTargetError, match="no such checkpoint"):
        resolve_model(target)


def test_unusable_checkpoints_are_user_errors(tmp_path):
    ckpt = _checkpoint(tmp_path / "run", 8)
    with pytest.raises(EvalTargetError, match="belongs to step 8"):
        resolve_model(ckpt, step=9)
    with pytest.raises(EvalTargetError, match="--step"):
        resolve_model(ckpt, step=-1)
    (ckpt / "state.json").write_text('{"version": 8}')
    with pytest.raises(EvalTargetError, match="integer 'step'"):
        resolve_model(ckpt)
    (ckpt / "state.json").write_text("{not json")
    with pytest.raises(EvalTargetError, match="cannot read"):
        resolve_model(ckpt)
    broken = tmp_path / "run2" / "checkpoints" / "step_1"
    broken.mkdir(parents=True)
    (broken / "state.json").write_text('{"step": 1}')
    with pytest.raises(EvalTargetError, match="model/config.json"):
        resolve_model(broken)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EvalTargetError, match="no checkpoint"):
        resolve_model(empty)
    (tmp_path / "file.bin").write_text("x")
    with pytest.raises(EvalTargetError, match="is a file"):
        resolve_model(tmp_path / "file.bin")


# --------------------------------------------------------------------------------------------
# benchmarks
# --------------------------------------------------------------------------------------------


def _data(tmp_path: Path) -> DataConfig:
    return DataConfig(eval=[DatasetSpec(name="heldout", path=tmp_path / "eval.jsonl",
                                        format="generic", id_field="id", limit=50)])


def test_benchmark_names_map_to_config_entries_then_shipped_sets(tmp_path):
    assert parse_names(" math500, aime24,,gsm8k ") == ["math500", "aime24", "gsm8k"]
    specs = resolve_benchmarks(["heldout", "math500", "gsm8k", "aime25", "amc23", "aime24"],
                               _data(tmp_path))
    by_name = {s.name: s for s in specs}
    assert list(by_name) == ["heldout", "math500", "gsm8k", "aime25", "amc23", "aime24"]
    assert by_name["heldout"].path == tmp_path / "eval.jsonl"
    assert by_name["gsm8k"].path == data_dir() / "gsm8k" / "test.jsonl"
    assert by_name["gsm8k"].format == "gsm8k"
    assert by_name["math500"].answer_field == "answer"


def test_benchmark_limit_and_defaults(tmp_path):
    data = _data(tmp_path)
    assert [s.name for s in resolve_benchmarks([], data)] == ["heldout"]
    limited = resolve_benchmarks(["heldout", "aime24"], data, limit=7)
    assert [s.limit for s in limited] == [7, 7]
    assert resolve_benchmarks(["heldout"], data, limit=500)[0].limit == 50  # the tighter one


def test_bad_benchmark_names_are_user_errors(tmp_path):
    with pytest.raises(EvalTargetError, match="unknown benchmark 'math5000'.*math500"):
        resolve_benchmarks(["math5000"], _data(tmp_path))
    with pytest.raises(EvalTargetError, match="more than once"):
        resolve_benchmarks(["aime24", "aime24"], _data(tmp_path))
    with pytest.raises(EvalTargetError, match="no benchmarks"):
        resolve_benchmarks([], Config().data)


def _report(rates: dict[str, int], k: int = 4) -> EvalReport:
    problems = [_problem(key, ["correct"] * c + ["wrong"] * (k - c)) for key, c in rates.items()]
    return EvalReport(model="m", step=0, k=k, sampling={}, seconds=0.0,
                      benchmarks=[BenchmarkResult("b", k=k, problems=problems)])


def test_paired_gain_compares_the_same_problems():
    before = _report({"p1": 0, "p2": 2, "p3": 4, "only-before": 4})
    after = _report({"p1": 2, "p2": 3, "p3": 4, "only-after": 0})
    g = paired_gain(before, after)
    diffs = [0.5, 0.25, 0.0]  # p1, p2, p3; unmatched problems are left out
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    assert g.n == 3 and g.gain == pytest.approx(0.25)
    assert g.before == pytest.approx(0.5) and g.after == pytest.approx(0.75)
    assert g.stderr == pytest.approx(sd / math.sqrt(3)) and g.z == pytest.approx(mean / g.stderr)


def test_paired_gain_edge_cases():
    same = _report({"p1": 1, "p2": 3})
    assert paired_gain(same, same).z == 0.0
    assert paired_gain(_report({"p1": 1, "p2": 1}), _report({"p1": 2, "p2": 2})).z == math.inf
    with pytest.raises(ValueError, match=">= 2 problems"):
        paired_gain(_report({"p1": 1}), _report({"p1": 2}))


def test_paired_gain_from_per_problem_values():
    from actor.eval_report import PairedGain

    g = PairedGain.of([0.1, 0.5, 0.9], [0.2, 0.5, 1.0])
    assert g.n == 3 and g.gain == pytest.approx(0.2 / 3)
    assert g.before == pytest.approx(0.5) and g.after == pytest.approx(1.7 / 3)
    with pytest.raises(ValueError, match="3 before but 2 after"):
        PairedGain.of([0.1, 0.5, 0.9], [0.2, 0.5])
    with pytest.raises(ValueError, match=">= 2 problems"):
        PairedGain.of([0.1], [0.2])
