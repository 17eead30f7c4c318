"""The embedded demo end to end, shortened: real learner and vLLM actor processes, real
ledger, held-out evaluation before and after.

What it runs: `lppo.demo.pipeline.run_demo`, what `lppo demo` runs, on `configs/demo.toml`
with `STEPS` learner steps instead of 40. The warm-started model is cached under `runs/_cache`
(shared with `make demo`; built once, ~3 min on 2 cores).

What it asserts, and what it does not. The run finishes, every step is recorded, the report
is complete, and held-out accuracy has not collapsed, measured two ways:

- sampled pass@1 (k = 8, temperature 1): after >= before - `MAX_DROP_SE` paired standard
  errors (`actor.evaluate.paired_gain`; ~1.1 points, so a drop of ~3.3 points fails);
- the exact probability of writing each held-out expert solution
  (`lppo.demo.measure.expert_solution_probability`, no sampling noise; its standard error is
  the problems' spread only, 0.4-0.8 points in 10-20 step runs): after >= before -
  `MAX_DROP_SE` standard errors, so a drop of ~2 points fails.

A learner that pushes the wrong way (sign, token alignment, stale weights) loses far more: at
3x the demo's learning rate the exact measure fell 8.8 and 10.4 points in 10 steps (z = -6.8,
-7.1), and at 10x a weaker warm start fell from 42.5% to 2.4% sampled accuracy.

It does not assert a gain beyond noise, which issue 7 asks for, because the demo's RL does not
produce one reliably. The exact measure, free of sampling noise, shows why: at the demo's
learning rate the true held-out gain after 10-20 steps was -0.1 to +1.2 points in six runs
(z <= 2.0), and the 40-step demo run's final weights -0.5 points; higher rates lose accuracy
(docs/benchmarks.md, "Demo").
"""

from __future__ import annotations

import pytest

from lppo.config import load_config
from store.testing import free_ports
from tests.conftest import ROOT

STEPS = 10
MAX_DROP_SE = 3.0


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the warm start alone can take 25 min on a busy 2-core machine
def test_short_demo_runs_end_to_end_without_losing_accuracy(tmp_path):
    from lppo.demo.pipeline import report, run_demo
    from lppo.demo.warmstart import DemoRecipe

    work, rollouts, weights = free_ports(3)
    cfg = load_config(ROOT / "configs" / "demo.toml", [
        f'run.output_dir="{tmp_path.as_posix()}"', f"learner.max_steps={STEPS}",
        f"transport.work_port={work}", f"transport.rollout_port={rollouts}",
        f"transport.weights_port={weights}",
    ])
    result = run_demo(cfg, cache_root=ROOT / "runs" / "_cache")
    text = report(result)
    print(text)
    assert result.exit_code == 0 and result.steps == STEPS
    assert result.groups >= STEPS * cfg.learner.batch_groups
    assert sum(result.statuses.values()) == sum(DemoRecipe().rl_train)  # one row per problem
    assert (tmp_path / "demo" / "ledger.db").is_file() and "lppo dashboard" in text
    assert 0.3 < result.accuracy_before < 0.9  # the warm start's regime (~0.59)
    for gain in (result.gain, result.exact):
        assert gain is not None and gain.n == sum(DemoRecipe().held_out) and gain.stderr > 0
        assert gain.gain >= -MAX_DROP_SE * gain.stderr, text
    assert 0.3 < result.exact.before < 0.9
