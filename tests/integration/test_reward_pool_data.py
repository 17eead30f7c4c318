"""Every gold answer of every shipped data set parses, as the ledger stores it, and the
verifier accepts it back; MATH-500's expert solutions verify against their answers.

Gold answers come from the store's own importer (`store.datasets.read_dataset`), so this checks
exactly what actors will verify against. The two largest sets are marked `slow`.
"""

from __future__ import annotations

import json

import pytest

from actor.reward import RewardPool, Verdict
from lppo.core.config.schema import RewardConfig
from lppo.core.resources import SHIPPED_DATA, data_dir

datasets = pytest.importorskip("store.datasets")

LARGE = {"gsm8k_train", "math_train"}


@pytest.fixture(scope="module")
def pool():
    with RewardPool(RewardConfig(workers=2, timeout_s=10.0)) as p:
        yield p


def _params() -> list:
    return [pytest.param(name, marks=[pytest.mark.slow] if name in LARGE else [], id=name)
            for name in SHIPPED_DATA]


def _answered_as(gold: str) -> str:
    return f"Putting it together, the final answer is $\\boxed{{{gold}}}$."


@pytest.mark.parametrize("name", _params())
def test_every_gold_answer_parses_and_verifies(pool, name):
    spec = datasets.shipped(name)
    if not spec.path.exists():
        pytest.skip(f"{spec.path} is not shipped in this checkout")
    records = datasets.read_dataset(spec)
    assert records, f"{name}: no rows"
    futures = [(r, pool.submit(r.answer, [_answered_as(r.answer)], ["stop"])) for r in records]
    failed = []
    for record, future in futures:
        scored = future.result(timeout=120)[0]
        if scored.verdict != Verdict.CORRECT:
            failed.append((record.source_key, record.answer, scored.verdict.value, scored.detail))
    assert failed == [], f"{name}: {len(failed)} of {len(records)} gold answers: {failed[:10]}"


def test_math500_expert_solutions_verify_against_their_answers(pool):
    path = data_dir() / "math500" / "test.jsonl"
    if not path.exists():
        pytest.skip(f"{path} is not shipped in this checkout")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    futures = [pool.submit(row["answer"], [row["solution"]], ["stop"]) for row in rows]
    verdicts = [f.result(timeout=120)[0].verdict for f in futures]
    wrong = [(row["unique_id"], v.value) for row, v in zip(rows, verdicts, strict=True)
             if v != Verdict.CORRECT]
    assert wrong == []
