"""Real-model outputs through the reward pool: the verdict each must get, under the defaults.

`tests/data/real_model_outputs.jsonl`: completions of SmolLM2-135M-Instruct on GSM8K (rambling,
cut off at max_tokens, numbers restated from the problem, negations), two quoted from a
training run's report, and answers in units, percentages, thousands and clock times written in
the same style. Each row: `gold`, `finish_reason`, `text`, the `verdict` it must get with the default
`actor.reward` (marked answers only, unfinished completions not judged) and its
`former_verdict` under the former defaults (`require_anchor = false`, `judge_unfinished =
true`), which scored many of them correct.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actor.reward import RewardPool
from lppo.core.config.schema import RewardConfig

ROWS = [json.loads(line) for line in
        (Path(__file__).parents[1] / "data" / "real_model_outputs.jsonl").read_text().splitlines()]


def _verdicts(cfg: RewardConfig) -> list[str]:
    with RewardPool(cfg) as pool:
        futures = [pool.submit(r["gold"], [r["text"]], [r["finish_reason"]]) for r in ROWS]
        return [f.result(timeout=120)[0].verdict.value for f in futures]


def test_every_output_gets_its_verdict_under_the_defaults():
    got = _verdicts(RewardConfig(workers=2))
    wrong = [(r["text"][-80:], r["verdict"], v) for r, v in zip(ROWS, got, strict=True)
             if v != r["verdict"]]
    assert wrong == []


def test_the_former_defaults_scored_many_of_them_correct():
    got = _verdicts(RewardConfig(workers=2, require_anchor=False, judge_unfinished=True))
    assert got == [r["former_verdict"] for r in ROWS]
    spurious = [r for r in ROWS if r["former_verdict"] == "correct" and r["verdict"] != "correct"]
    assert len(spurious) >= 12
    assert {r["finish_reason"] for r in spurious} == {"stop", "length"}


@pytest.mark.parametrize("kind", ["unfinished", "no_answer", "wrong", "correct"])
def test_the_set_covers(kind):
    assert sum(r["verdict"] == kind for r in ROWS) >= 4
