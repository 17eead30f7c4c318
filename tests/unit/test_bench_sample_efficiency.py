"""The sample-efficiency benchmark's summary (pure: rows in, numbers and lines out)."""

from __future__ import annotations

import pytest

from bench.sample_efficiency import print_summary, steps_to_target, summarize

GAIN = 0.025


def _row(method: str, seed: int, curve: dict[int, float]) -> dict:
    hit = steps_to_target(curve, GAIN)
    return {"method": method, "seed": seed, "curve": curve, "steps_to_target": hit,
            "seconds_to_target": None if hit is None else 10.0 * hit,
            "final_accuracy": curve[max(curve)]}


def test_target_is_a_gain_over_step_0():
    assert steps_to_target({0: 0.50, 5: 0.51, 10: 0.53, 15: 0.52}, 0.02) == 10
    assert steps_to_target({0: 0.50, 5: 0.51}, 0.02) is None
    assert steps_to_target({0: 0.50, 5: 0.49}, 0.0) == 0  # the base already meets it


def test_ratio_only_when_every_run_reached_the_target(capsys):
    rows = [_row("lppo", 0, {0: 0.57, 10: 0.61}), _row("grpo", 0, {0: 0.57, 10: 0.58, 20: 0.62}),
            _row("lppo", 1, {0: 0.58, 10: 0.59, 20: 0.59}),
            _row("grpo", 1, {0: 0.58, 10: 0.61, 20: 0.61})]
    summary = summarize(rows, ["lppo", "grpo"])
    lppo = summary["methods"]["lppo"]
    assert (lppo["runs"], lppo["reached"], lppo["steps"]["mean"]) == (2, 1, 10)
    assert lppo["gain"]["mean"] == pytest.approx((0.04 + 0.01) / 2)
    print_summary(summary, GAIN)
    out = capsys.readouterr().out
    # LPPO's one hit at step 10 against GRPO's 15 would read 1.5: the miss must not vanish.
    assert "GRPO / LPPO" not in out and "(LPPO 1/2, GRPO 2/2)" in out

    rows[2] = _row("lppo", 1, {0: 0.58, 10: 0.59, 20: 0.61})
    print_summary(summarize(rows, ["lppo", "grpo"]), GAIN)
    assert "GRPO / LPPO: 1.00" in capsys.readouterr().out  # (20 + 10) / (10 + 20)


def test_final_accuracy_is_compared_by_seed():
    rows = [_row("lppo", 0, {0: 0.50, 40: 0.62}), _row("grpo", 0, {0: 0.50, 40: 0.60}),
            _row("lppo", 1, {0: 0.55, 40: 0.58}), _row("grpo", 1, {0: 0.55, 40: 0.60}),
            _row("lppo", 2, {0: 0.55, 40: 0.70})]  # no GRPO run with seed 2: not paired
    paired = summarize(rows, ["lppo", "grpo"])["lppo_minus_grpo_final"]
    assert paired["n"] == 2
    assert paired["mean"] == pytest.approx(0.0) and paired["max"] == pytest.approx(0.02)
