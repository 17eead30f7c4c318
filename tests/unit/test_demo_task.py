"""The demo's arithmetic task: deterministic, disjoint splits, every written step correct.

Pure Python (no torch): `lppo.demo.task` and the recipe bookkeeping of `lppo.demo.warmstart`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace

import pytest

from lppo.demo import task
from lppo.demo.warmstart import DemoRecipe, SFTConfig, lr_at

COUNTS = {1: 60, 2: 60, 3: 60}
STEP = re.compile(
    r"^(?P<a>\d+)(?P<op>[+*])(?P<b>\d+): (?P<x>\d)(?P<op2>[+*])(?P<y>\d)(?:\+(?P<c>\d))?"
    r"=(?P<s>\d+), so far (?P<far>\d+)(?:, carry (?P<k>\d))?$"
)


def _expr(problem: str) -> str:
    m = re.fullmatch(r"What is ([\d +*]+)\?", problem)
    assert m, problem
    return m.group(1)


def test_generation_is_deterministic_and_levels_are_as_asked():
    a = task.generate(3, COUNTS)
    b = task.generate(3, COUNTS)
    assert a == b
    assert task.generate(4, COUNTS) != a
    assert {lv: sum(p.level == lv for p in a) for lv in task.LEVELS} == COUNTS
    assert len({p.problem for p in a}) == len(a)
    assert len({p.id for p in a}) == len(a)


def test_more_of_one_level_keeps_the_others():
    a = task.generate(0, {1: 10, 2: 10, 3: 10})
    b = task.generate(0, {1: 10, 2: 50, 3: 10})
    assert [p for p in a if p.level != 2] == [p for p in b if p.level != 2]


def test_ids_are_stable_functions_of_the_problem():
    p = task.generate(0, {1: 1})[0]
    again = [q for q in task.generate(0, {1: 5, 3: 5}) if q.problem == p.problem]
    assert again and again[0].id == p.id
    assert re.fullmatch(r"arith-[0-9a-f]{12}", p.id)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_answers_are_correct_and_stated_last(seed):
    for p in task.generate(seed, COUNTS):
        assert str(eval(_expr(p.problem))) == p.answer  # noqa: S307 - digits and + * only
        last = p.solution.split("\n")[-1]
        assert last == f"The answer is {p.answer}."
        assert task.final_answer(p.solution) == p.answer
        assert re.findall(r"\d+", p.solution)[-1] == p.answer  # what math-verify reads


def _check_block(steps: list[re.Match]) -> int:
    """Check one written-out operation (its column lines); return its result."""
    first = steps[0]
    a0, b0, op = int(first["a"]), int(first["b"]), first["op"]
    a, b, carry, far = a0, b0, 0, ""
    for i, m in enumerate(steps):
        assert (int(m["a"]), int(m["b"])) == (a, b) and m["op"] == m["op2"] == op
        assert (int(m["x"]), int(m["y"])) == (a % 10, b % 10)
        assert int(m["c"] or 0) == carry and m["c"] != "0"
        s = (a % 10) * (b % 10) if op == "*" else (a % 10) + (b % 10)
        assert int(m["s"]) == s + carry
        if i == len(steps) - 1:
            far = m["s"] + far
            assert m["far"] == far and m["k"] is None
        else:
            far = str(int(m["s"]) % 10) + far
            carry = int(m["s"]) // 10
            assert m["far"] == far and int(m["k"] or 0) == carry
        a, b = a // 10, (b if op == "*" else b // 10)
    assert a == 0 and (op == "*" or b == 0)
    assert int(far) == (a0 * b0 if op == "*" else a0 + b0)
    return int(far)


def test_every_written_step_is_right():
    for p in task.generate(11, COUNTS):
        steps = [STEP.match(line) for line in p.solution.split("\n")[:-1]]
        assert all(steps), p.solution
        blocks = [[m for m in steps if m["op"] == "*"], [m for m in steps if m["op"] == "+"]]
        assert [len(b) > 0 for b in blocks] == [p.level == 3, True]
        assert steps[-1]["op"] == "+"
        result = _check_block(blocks[0]) if blocks[0] else None
        if result is not None:
            assert int(blocks[1][0]["a"]) == result  # the addition chains on the product
        assert str(_check_block(blocks[1])) == p.answer


def test_column_steps_edge_cases():
    assert task.column_steps(99, "+", 1) == [
        "99+1: 9+1=10, so far 0, carry 1", "9+0: 9+0+1=10, so far 100"]
    assert task.column_steps(5, "*", 0) == ["5*0: 5*0=0, so far 0"]
    with pytest.raises(ValueError):
        task.column_steps(12, "*", 10)
    with pytest.raises(ValueError):
        task.column_steps(12, "-", 3)


def test_level_two_always_carries():
    for p in task.generate(5, {2: 200}):
        assert "carry" in p.solution


def test_split_is_disjoint_and_held_out_is_stable():
    held, train = task.split(0, {1: 20, 2: 20}, {1: 50, 2: 50, 3: 30})
    assert not {p.problem for p in held} & {p.problem for p in train}
    held2, train2 = task.split(0, {1: 20, 2: 20}, {1: 80, 2: 10})
    assert held2 == held
    assert len(train2) == 90


def test_recipe_sets_are_disjoint():
    r = DemoRecipe(held_out=(20, 20, 20), rl_train=(30, 30, 30), sft_pool=(40, 40, 40))
    sets = [{p.problem for p in s} for s in r.problem_sets()]
    assert [len(s) for s in sets] == [60, 90, 120]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])


def test_measure_set_is_held_out_and_leaves_the_recipe_sets_alone():
    r = DemoRecipe(held_out=(20, 20, 20), rl_train=(30, 30, 30), sft_pool=(40, 40, 40))
    before = r.problem_sets()
    extra = r.measure_set(25)
    assert [sum(p.level == lv for p in extra) for lv in task.LEVELS] == [25, 25, 25]
    seen = {p.problem for s in before for p in s}
    assert len({p.problem for p in extra}) == 75 and not seen & {p.problem for p in extra}
    assert r.problem_sets() == before and r.measure_set(25) == extra
    more = r.measure_set(30)  # more problems extend the set, level by level
    for lv in task.LEVELS:
        assert [p for p in more if p.level == lv][:25] == [p for p in extra if p.level == lv]


def test_write_split_jsonl_in_the_generic_format(tmp_path):
    paths = task.write_split(tmp_path, 0, train={1: 5, 3: 5}, held_out={1: 3, 2: 3})
    rows = [json.loads(line) for line in paths["train"].read_text().splitlines()]
    assert len(rows) == 10
    assert set(rows[0]) == {"id", "level", "problem", "solution", "answer"}
    assert all(isinstance(r["answer"], str) for r in rows)
    evals = task.read_jsonl(paths["eval"])
    assert [p.level for p in evals] == [1, 1, 1, 2, 2, 2]
    assert not {r["id"] for r in rows} & {p.id for p in evals}
    assert not list(tmp_path.glob(".*tmp"))


def test_solution_prefix_keeps_whole_lines_and_never_the_answer():
    for p in task.generate(2, COUNTS):
        for ratio in (0.0, 0.3, 0.5, 0.9, 0.99):
            pre = task.solution_prefix(p.solution, ratio)
            assert p.solution.startswith(pre)
            assert pre == "" or pre.endswith("\n")
            assert len(pre) <= ratio * len(p.solution)
            assert task.ANSWER_PREFIX not in pre
            assert f"so far {p.answer}" not in pre
        assert task.solution_prefix(p.solution, 0.99) == "".join(
            line + "\n" for line in p.solution.split("\n")[:-2])
    p = task.generate(2, {3: 1})[0]
    assert task.solution_prefix(p.solution, 0.5).count("\n") >= 2
    with pytest.raises(ValueError):
        task.solution_prefix(p.solution, 1.0)


def test_final_answer_reader():
    assert task.final_answer("x\nThe answer is 317.") == "317"
    assert task.final_answer("The answer is 1. The answer is 42") == "42"
    assert task.final_answer("so far 317") is None
    assert task.final_answer("The answer is .") is None


def test_recipe_key_covers_everything():
    base = DemoRecipe()
    assert base.key() == DemoRecipe().key()
    changed = [replace(base, task_seed=1), replace(base, model_seed=1),
               replace(base, sft=replace(base.sft, steps=base.sft.steps + 1)),
               replace(base, spec=replace(base.spec, num_layers=base.spec.num_layers + 1)),
               replace(base, held_out=(1, 1, 1))]
    keys = {r.key() for r in changed}
    assert base.key() not in keys and len(keys) == len(changed)


def test_lr_schedule():
    sft = SFTConfig(steps=100, warmup_steps=10, lr=1e-3, min_lr_ratio=0.1)
    assert lr_at(0, sft) == pytest.approx(1e-4)
    assert lr_at(9, sft) == pytest.approx(1e-3)
    assert lr_at(10, sft) == pytest.approx(1e-3)
    assert lr_at(99, sft) == pytest.approx(1e-4, rel=0.05)
    lrs = [lr_at(s, sft) for s in range(10, 100)]
    assert lrs == sorted(lrs, reverse=True)


def test_lppo_demo_imports_without_torch():
    code = ("import sys; import lppo.demo, lppo.demo.task, lppo.demo.tiny, lppo.demo.warmstart, "
            "lppo.demo.measure; bad = [m for m in ('torch', 'transformers', 'tokenizers', 'vllm') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_measure_prompts_and_scores():
    from lppo.demo import measure

    problems = task.generate(0, {1: 2, 3: 2})
    prompts, prefixes = measure.prompts_for(problems, 0.5)
    for p, prompt, pre in zip(problems, prompts, prefixes, strict=True):
        assert prompt == f"Question: {p.problem}\nAnswer: {pre}"
    scores = measure.score(problems, [p.solution for p in problems[:3]] + ["The answer is 0."])
    assert (scores[1].correct, scores[1].n, scores[3].correct, scores[3].n) == (2, 2, 1, 2)
    assert scores[3].accuracy == 0.5
