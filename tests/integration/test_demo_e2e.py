"""The embedded demo end to end, shortened: real learner and vLLM actor processes, real
ledger, held-out evaluation before and after.

What it runs: `lppo.demo.pipeline.run_demo`, what `lppo demo` runs, on `configs/demo.toml`
(the trusted set of 96 problems, LP + PG with the supervised prefix term) with `STEPS`
learner steps instead of 80. The warm-started model is cached under `runs/_cache` (shared with
`make demo`; built once, 1.5-3 min on 2 cores).

What it asserts. The run finishes, every step is recorded, every sample of the trusted set is
visited, the report is complete (hard level, rescues), and:

- **held-out exact-match accuracy rises beyond noise on the hard level, and does not fall
  overall.** The measure is the probability that the policy writes a held-out problem's
  expert solution verbatim and stops (`lppo.demo.measure.expert_solution_probability`), on
  1,000 held-out problems per level (`pipeline.EXACT_PER_LEVEL`, disjoint from every training
  set): the expected exact-match accuracy of one sample at temperature 1, computed with one
  teacher-forced pass. It has no sampling noise, so the only noise in a gain is which problems
  were drawn: the paired standard error over problems. The test asks for `MIN_GAIN_SE` = 3
  standard errors on the 1,000 problems of level 3 (by chance: ~0.1%, one sided, normal
  approximation), and for no drop beyond `MAX_DROP_SE` on all 3,000. Observed after 20 steps:
  level 3 z = 6.1, 5.9, 5.0 in three runs; all levels z = 9.5, 2.3 and 0.3 (level 1 fell
  0.5-1.0 points in the last two while level 2 rose), so 20 steps do not reliably lift the
  average over levels, which the full 80-step demo does (z = 7.9, docs/benchmarks.md): the
  hard level is what the method is for and what this short run asks of it.
- **sampled pass@1 did not collapse** (k = 8, temperature 1, the 300 problems of the demo's
  evaluation): after >= before - `MAX_DROP_SE` paired standard errors
  (`actor.eval_report.paired_gain`); its sampling noise (~0.9 points) is of the size of the gain.

A learner that pushes the wrong way (sign, token alignment, stale weights) is far from the
gains asked for: at 10x the demo's rate the exact measure fell 8.8 and 10.4 points in 10 steps
(z = -6.8, -7.1, on the earlier 600-problem demo).
"""

from __future__ import annotations

import pytest

from lppo.core.config import load_config
from lppo.testing.postgres import free_ports
from tests.conftest import ROOT

STEPS = 20
MIN_GAIN_SE = 3.0
MAX_DROP_SE = 3.0


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the warm start alone can take 25 min on a busy 2-core machine
def test_short_demo_gains_held_out_accuracy_beyond_noise(tmp_path):
    from lppo.demo.pipeline import EXACT_PER_LEVEL, report, run_demo
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
    assert sum(result.statuses.values()) == sum(DemoRecipe().trusted)  # one row per problem
    assert result.visits[0] >= 1 and result.guided_groups > 0
    assert set(result.exact_levels) == {1, 2, 3}
    assert all(g.n == EXACT_PER_LEVEL for g in result.exact_levels.values())
    assert "hard level 3" in text and "rescued" in text
    assert (tmp_path / "demo" / "ledger.db").is_file() and "lppo dashboard" in text
    assert 0.3 < result.accuracy_before < 0.9  # the warm start's regime (~0.40)
    assert result.gain is not None and result.gain.n == sum(DemoRecipe().held_out)
    assert result.exact is not None and result.exact.n == 3 * EXACT_PER_LEVEL
    assert result.gain.stderr > 0 and result.exact.stderr > 0
    assert 0.3 < result.exact.before < 0.9
    assert result.exact.gain >= -MAX_DROP_SE * result.exact.stderr, text
    hard = result.exact_levels[3]
    assert hard.gain >= MIN_GAIN_SE * hard.stderr, text
    assert result.gain.gain >= -MAX_DROP_SE * result.gain.stderr, text
