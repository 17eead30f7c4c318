"""The ablation bench's arithmetic (pure: runs in, numbers and lines out) and its arms."""

from __future__ import annotations

import pytest

from bench import ablation
from bench.ablation_parts import Grid, _steps_to
from bench.probe_parts import mean_se, summarize
from lppo.core.config import load_config


def _run(arm: str, seed: int, final: float, hard: float) -> dict:
    levels = {"L3": final, "L3_hard": hard, "sel_L3": final, "sel_L3_hard": hard,
              "L1": 90.0, "L2": 25.0}
    levels.update({f"{k}_step0": v for k, v in (("L3", 0.3), ("L3_hard", -6.0),
                                                ("sel_L3", 0.3), ("sel_L3_hard", -6.0),
                                                ("L1", 93.0), ("L2", 22.0))})
    return {"arm": arm, "seed": seed, "final_levels": levels, "wall_s": 60.0,
            "l3_curve": {0: {"L3": 0.3}, 20: {"L3": final}}, "visits_min": 10,
            "visits_mean": 12.0, "rescued": 2, "statuses": {"solved": 1}, "groups": 900,
            "signal_share": 0.25, "rollouts_per_trained": 32.0}


def test_paired_differences_are_per_seed():
    grid = Grid.__new__(Grid)
    grid.results = {("grpo", 0): _run("grpo", 0, 0.40, -6.1),
                    ("grpo", 1): _run("grpo", 1, 0.34, -6.0),
                    ("pg_sft", 0): _run("pg_sft", 0, 0.38, -5.5),
                    ("pg_sft", 1): _run("pg_sft", 1, 0.36, -5.6)}
    row = grid._arm_numbers("pg_sft", 0.1, "grpo")
    # seed 0: 0.08 - 0.10 = -0.02; seed 1: 0.06 - 0.04 = +0.02 -> mean 0, se 0.02
    assert row["L3_vs_grpo"] == pytest.approx((0.0, 0.02))
    assert row["L3_hard_vs_grpo"][0] == pytest.approx(0.5)
    assert row["steps_to_target"] == [None, None]
    assert grid._arm_numbers("grpo", 0.1, "grpo")["L3_vs_grpo"] is None
    lines = grid.report(0.05, "grpo")["lines"]
    assert any(line.startswith("pg_sft") and "vs grpo" in line for line in lines)
    assert row["signal_share"] == (0.25, 0.0) and "signal 0.250 +- 0.000 of groups" in \
        "\n".join(lines)


def test_steps_to_target_and_mean_se():
    curve = {0: {"L3": 0.3}, 20: {"L3": 0.35}, 40: {"L3": 0.41}, 60: {"L3": 0.39}}
    assert _steps_to(curve, 0.1) == 40 and _steps_to(curve, 0.2) is None
    assert mean_se([1.0]) == (1.0, 0.0)
    assert mean_se([1.0, 3.0]) == (2.0, 1.0)


def test_probe_summary_pairs_with_the_baseline():
    results = {"masked": {0: [{"hard_logp": -5.0, "exact": 0.01}, {"hard_logp": -5.1,
                                                                      "exact": 0.01}]},
               "sft": {0: [{"hard_logp": -5.0, "exact": 0.01}, {"hard_logp": -4.7,
                                                                   "exact": 0.02}]}}
    out = summarize(results, "masked")
    assert out["numbers"]["sft"]["hard_logp"]["paired"] == pytest.approx(0.4)
    assert out["numbers"]["sft"]["exact"]["delta"] == pytest.approx(1.0)   # points


@pytest.mark.parametrize("arm", list(ablation.ARMS))
def test_every_arm_is_a_valid_config(arm):
    args = ablation.parse(["--arms", arm])
    cfg = load_config(ablation.ROOT / "configs" / "demo.toml", ablation.arm_overrides(arm, args))
    assert cfg.learner.max_staleness == 0 and cfg.actor.engine == "transformers"
    assert cfg.lppo.pg.enabled == (not arm.startswith(("grpo", "lp_")))
    assert cfg.lppo.lp.enabled == (arm.startswith(("lp_", "sel_", "upd_")) or arm == "full")
    if arm.startswith("sel_"):  # `full` with another selection policy
        assert cfg.learner.selection != "lppo" and cfg.lppo.pg.sft_coef == 1.0
    if arm.startswith("upd_"):  # `full` with one training option on
        options = (cfg.learner.ppo_epochs, cfg.learner.mini_batches, cfg.learner.mask_truncated,
                   cfg.actor.reward.overlong_buffer)
        assert options != (1, 1, False, 0) and cfg.lppo.pg.sft_coef == 1.0


def test_arms_do_not_inherit_the_demo_configs_prefix_options():
    args = ablation.parse([])
    masked = load_config(ablation.ROOT / "configs" / "demo.toml",
                         ablation.arm_overrides("pg_masked", args))
    assert masked.lppo.pg.sft_coef == 0.0 and not masked.lppo.pg.prefix_terms
    full = load_config(ablation.ROOT / "configs" / "demo.toml",
                       ablation.arm_overrides("full", args))
    assert full.lppo.pg.sft_coef == 1.0 and full.lppo.lp.enabled
