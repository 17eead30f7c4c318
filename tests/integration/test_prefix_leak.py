"""No answer leaks through a prefix: for the first 200 expert solutions of every
shipped data set and of the demo's task, at every ratio and in both boundary modes, the prefix
the learner cuts holds no answer marker, and the real verifier (math-verify, through the reward
pool) scores an empty or a garbage completion after it as not correct, even when it is shown the
prefix too. The actor verifies the completion alone (`actor/loop.py`), so this is the stronger
property: neither half can leak. Prefixes are cut as the learner cuts them
(`learner.algo.prefix.prepare_solution`, then `learner.certify.certify_cuts`), with the demo's
byte-level BPE tokenizer (any text encodes).
"""

from __future__ import annotations

import random

import pytest

from actor.reward import RewardPool, Verdict
from learner.algo.prefix import ANSWER_MARKERS, prepare_solution
from learner.certify import certify_cuts
from lppo.core.config.schema import RewardConfig
from lppo.core.resources import SHIPPED_DATA
from lppo.demo import task
from store import datasets

RATIOS = tuple(round(0.1 * i, 1) for i in range(1, 10)) + (0.99,)
PER_SET = 200
GARBAGE = ("", " blah")
"""Completions that state nothing: empty, and a word that is no answer."""


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from lppo.demo.tiny import build_tokenizer

    return build_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def pool():
    """The verifier reading outputs as loosely as it can (no answer marker needed), as the
    learner's own check does: a prefix must not state the answer in any form it reads."""
    with RewardPool(RewardConfig(workers=2, timeout_s=10.0, require_anchor=False)) as p:
        yield p


def _solutions(name: str) -> list[tuple[str, str, str]]:
    """(source key, solution, answer) of the first `PER_SET` rows with a solution."""
    if name == "demo":
        rng = random.Random(16)
        problems = [task.make_problem(task.LEVELS[i % 3], rng) for i in range(PER_SET)]
        return [(p.id, p.solution, p.answer) for p in problems]
    spec = datasets.shipped(name)
    if not spec.path.exists():
        pytest.skip(f"{spec.path} is not shipped in this checkout")
    rows = [r for r in datasets.read_dataset(spec) if r.solution][:PER_SET]
    return [(r.source_key, r.solution, r.answer) for r in rows]


def _prefixes(tokenizer, rows: list[tuple[str, str, str]]) -> list[tuple[str, str, set[str]]]:
    """(key, answer, every distinct prefix) per row, cut as the learner cuts: syntactically
    (`prepare_solution`), then checked by the verifier (`certify_cuts`)."""
    out = {key: set() for key, _, _ in rows}
    for mode in ("line", "sentence"):
        cuts = [prepare_solution(tokenizer, solution, mode, answer) for _, solution, answer in rows]
        certified, _ = certify_cuts(tokenizer, [(a, c) for (_, _, a), c in zip(rows, cuts, strict=True)],
                                    RewardConfig(workers=2, timeout_s=10.0))
        for (key, _, _), c in zip(rows, certified, strict=True):
            out[key].update(tokenizer.decode(c.prefix(r)) for r in RATIOS)
    return [(key, answer, out[key]) for key, _, answer in rows]


@pytest.mark.parametrize("name", [*SHIPPED_DATA, "demo"])
def test_no_prefix_lets_an_empty_or_garbage_completion_pass(tokenizer, pool, name):
    rows = _solutions(name)
    if not rows:
        pytest.skip(f"{name}: no expert solutions")
    checks, given = [], 0
    for key, answer, prefixes in _prefixes(tokenizer, rows):
        for prefix in prefixes:
            assert not any(m in prefix for m in ANSWER_MARKERS), (key, prefix)
            if prefix:
                given += 1
                texts = [prefix + g for g in GARBAGE]
                checks.append((key, prefix, pool.submit(answer, texts, ["stop"] * len(texts))))
    leaks = [(key, prefix[-80:]) for key, prefix, future in checks
             if any(s.verdict == Verdict.CORRECT for s in future.result(timeout=300))]
    assert leaks == [], f"{name}: {len(leaks)} of {given} prefixes state the answer: {leaks[:5]}"
    if name in ("gsm8k_train", "demo"):  # line-by-line solutions: most get a prefix
        assert given >= len(rows)


@pytest.mark.parametrize(("key", "stating"), [
    ("train.jsonl:37", "Tommy earned $30 * 1/2 = $15."),       # answer 15, line 2 of 3
    ("train.jsonl:31", "Ann and Cate eat 2 x 4 x 75% = 6 pieces."),  # answer 6, line 3 of 5
])
def test_real_solutions_stating_the_answer_early_are_cut_before_that_line(tokenizer, pool, key,
                                                                          stating):
    spec = datasets.shipped("gsm8k_train")
    if not spec.path.exists():
        pytest.skip(f"{spec.path} is not shipped in this checkout")
    (row,) = [r for r in datasets.read_dataset(spec) if r.source_key == key]
    head = row.solution[:row.solution.index(stating)]
    # the old cut (before the *last* occurrence of the answer) would have handed out the
    # stating line, and the verifier reads it as the answer
    leaked = pool.submit(row.answer, [head + stating + "\n"], ["stop"]).result(timeout=60)
    assert leaked[0].verdict == Verdict.CORRECT
    for mode in ("line", "sentence"):
        cuts = prepare_solution(tokenizer, row.solution, mode, row.answer)
        assert tokenizer.decode(cuts.prefix(0.99)) == head


def test_verdict_needs_the_answer_in_the_completion(pool):
    # The demo's level-3 shape: the prefix holds every column but the last; the completion
    # must still write the result itself.
    gold = "317"
    complete = pool.submit(gold, ["2+0: 2+0+1=3, so far 317\nThe answer is 317."], ["stop"])
    assert complete.result(timeout=60)[0].verdict == Verdict.CORRECT
    empty = pool.submit(gold, [""], ["stop"])
    assert empty.result(timeout=60)[0].verdict != Verdict.CORRECT


def test_the_verifier_stops_a_cut_before_an_unsimplified_answer(tokenizer):
    # MATH train algebra/1167's shape: the line before the answer holds an expression equal to
    # it, which no syntactic rule reads as 255; math-verify does.
    solution = "We pair the factors.\n$(2^4 - 1^4)(2^4 + 1^4) = 2^8 - 1^8$.\nSo $\\boxed{255}$."
    cuts = prepare_solution(tokenizer, solution, "line", "255")
    assert tokenizer.decode(cuts.prefix(0.99)) == solution[:solution.index("So")]
    (certified,), shortened = certify_cuts(tokenizer, [("255", cuts)],
                                           RewardConfig(workers=1, timeout_s=10.0))
    assert shortened == 1
    assert tokenizer.decode(certified.prefix(0.99)) == "We pair the factors.\n"
