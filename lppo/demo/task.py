"""The demo's synthetic arithmetic task: graded problems with written-out expert solutions.

Why: the embedded demo needs a task with verifiable answers, expert solutions to
take prefixes from, and a difficulty ladder a tiny model climbs in minutes on a CPU: easy
problems it mostly solves after a short warm start, hard ones it solves only with a hint.

Levels (all generated deterministically from a seed, pure Python):

1. `a + b`, two 2-digit numbers.
2. `a + b`, a 3-digit number and a 2- or 3-digit one, at least one carry into the tens or
   hundreds (the addition that finishes a level-3 problem is of this kind).
3. `a * d + c`: a 2-digit number times a digit, plus a 2-digit number: two sub-computations
   chained, the first one (the multiplication) the hard part.

Every solution is written column by column, right to left, one line per column. Each line
restates what is left of the two operands, so the digits it works on are always the last ones
before the operator and the colon, then writes the column's sum, the result so far and the
carry. The first lines of a solution (the prefix PG-sampling shows) thus leave only the same
easy, local steps to finish::

    47*6: 7*6=42, so far 2, carry 4
    4*6: 4*6+4=28, so far 282
    282+35: 2+5=7, so far 7
    28+3: 8+3=11, so far 17, carry 1
    2+0: 2+0+1=3, so far 317
    The answer is 317.

The last line states the final answer (math-verify reads the last number); the line before it
already shows the answer as its result so far, so prefixes should stop before both
(`solution_prefix` does). `write_split`
writes disjoint train and held-out files in the generic `problem`/`solution`/`answer` JSONL
format the ledger's importer reads (plus `id` and `level`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

LEVELS = (1, 2, 3)
"""The difficulty levels, easiest first."""

ANSWER_PREFIX = "The answer is "


@dataclass(frozen=True)
class Problem:
    """One task item in the generic import format, plus its level and a stable id."""

    id: str
    """Stable id: a hash of the problem text (the same problem always gets the same id)."""
    level: int
    """Difficulty level, 1 (easiest) to 3."""
    problem: str
    """The question, e.g. `What is 47 + 35?`."""
    solution: str
    """Expert step-by-step solution, lines separated by `\\n`; the last line states the answer."""
    answer: str
    """The final number, as a string."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


# --------------------------------------------------------------------------------------------
# written-out arithmetic
# --------------------------------------------------------------------------------------------


def _digits(n: int) -> list[int]:
    """Digits of a non-negative integer, least significant first."""
    return [int(ch) for ch in reversed(str(n))]


def column_steps(a: int, op: str, b: int) -> list[str]:
    """Written-out `a + b`, or `a * b` with `b` a single digit: one line per column.

    Each line starts with what is left of the operands (`275+42:`, then `27+4:`, then
    `2+0:`), so the digits it works on are always the last ones before `+` and `:`: every
    column is the same local step, whatever its place. Then the column's sum (with the carry
    in, when there is one), the result so far and the carry out; the last column writes its
    whole sum in front of the result so far.
    """
    if op not in "+*" or len(op) != 1:
        raise ValueError(f"op: expected '+' or '*', got {op!r}")
    if op == "*" and not 0 <= b <= 9:
        raise ValueError(f"column_steps: the multiplier must be one digit, got {b}")
    lines: list[str] = []
    far, carry = "", 0
    while True:
        x, y = a % 10, b % 10
        s = (x + y if op == "+" else x * y) + carry
        head = f"{a}{op}{b}: {x}{op}{y}" + (f"+{carry}" if carry else "") + f"={s}"
        a //= 10
        if op == "+":
            b //= 10
        if a == 0 and (op == "*" or b == 0):
            lines.append(f"{head}, so far {s}{far}")
            return lines
        far, carry = f"{s % 10}{far}", s // 10
        lines.append(f"{head}, so far {far}" + (f", carry {carry}" if carry else ""))


def _with_answer(lines: list[str], answer: int) -> str:
    return "\n".join([*lines, f"{ANSWER_PREFIX}{answer}."])


# --------------------------------------------------------------------------------------------
# levels
# --------------------------------------------------------------------------------------------


def _has_carry(a: int, b: int) -> bool:
    """Whether adding `a + b` carries into a column (an overflow of the last column does not
    count: the last column writes its whole sum)."""
    da, db = _digits(a), _digits(b)
    carry = 0
    for i in range(max(len(da), len(db)) - 1):
        carry = ((da[i] if i < len(da) else 0) + (db[i] if i < len(db) else 0) + carry) // 10
        if carry:
            return True
    return False


def _level1(rng: random.Random) -> tuple[str, list[str], int]:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    return f"What is {a} + {b}?", column_steps(a, "+", b), a + b


def _level2(rng: random.Random) -> tuple[str, list[str], int]:
    while True:
        a = rng.randint(100, 999)
        b = rng.randint(100, 999) if rng.random() < 0.5 else rng.randint(10, 99)
        if rng.random() < 0.5:
            a, b = b, a
        if _has_carry(a, b):
            return f"What is {a} + {b}?", column_steps(a, "+", b), a + b


def _level3(rng: random.Random) -> tuple[str, list[str], int]:
    a, d, c = rng.randint(10, 99), rng.randint(3, 9), rng.randint(10, 99)
    p = a * d
    return f"What is {a} * {d} + {c}?", [*column_steps(a, "*", d), *column_steps(p, "+", c)], p + c


_MAKERS = {1: _level1, 2: _level2, 3: _level3}


def make_problem(level: int, rng: random.Random) -> Problem:
    """One random problem of `level`, drawn with `rng`."""
    if level not in _MAKERS:
        raise ValueError(f"level: expected one of {LEVELS}, got {level}")
    problem, lines, answer = _MAKERS[level](rng)
    pid = "arith-" + hashlib.sha256(problem.encode()).hexdigest()[:12]
    return Problem(pid, level, problem, _with_answer(lines, answer), str(answer))


def generate(seed: int, counts: Mapping[int, int]) -> list[Problem]:
    """`counts[level]` distinct problems per level, the same for the same seed and counts.

    Each level draws from its own RNG stream (seeded from `seed` and the level), so asking for
    more problems of one level never changes the problems of another. Raises if a level cannot
    supply that many distinct problems.
    """
    out: list[Problem] = []
    for level in sorted(counts):
        rng = random.Random(f"lppo-demo-arith/{seed}/{level}")
        seen: set[str] = set()
        tries = 0
        while len(seen) < counts[level]:
            tries += 1
            if tries > 20 * counts[level] + 1000:
                raise ValueError(f"level {level}: cannot draw {counts[level]} distinct problems")
            p = make_problem(level, rng)
            if p.problem not in seen:
                seen.add(p.problem)
                out.append(p)
    return out


def split(seed: int, *counts: Mapping[int, int]) -> list[list[Problem]]:
    """Disjoint problem lists, one per count map (`{level: n}`), drawn in the order given.

    A list drawn earlier never changes when a later count changes, so put the held-out set
    first: `held_out, train = split(seed, {1: 100, ...}, {1: 500, ...})`.
    """
    levels = sorted({lv for c in counts for lv in c})
    total = {lv: sum(c.get(lv, 0) for c in counts) for lv in levels}
    pool = generate(seed, total)
    out: list[list[Problem]] = [[] for _ in counts]
    for lv in levels:
        items = [p for p in pool if p.level == lv]
        start = 0
        for i, c in enumerate(counts):
            n = c.get(lv, 0)
            out[i].extend(items[start:start + n])
            start += n
    return out


def write_jsonl(problems: list[Problem], path: Path) -> Path:
    """Write problems as JSONL, one object per line, atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(p.to_json() + "\n" for p in problems), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_jsonl(path: Path) -> list[Problem]:
    """Problems written by `write_jsonl`."""
    with open(path, encoding="utf-8") as fh:
        return [Problem(**json.loads(line)) for line in fh if line.strip()]


def write_split(out_dir: Path, seed: int, train: Mapping[int, int],
                held_out: Mapping[int, int]) -> dict[str, Path]:
    """Write `train.jsonl` and `eval.jsonl` under `out_dir`; returns {"train": path, "eval": path}.

    Rows have `id`, `level`, `problem`, `solution`, `answer`: import them as `format="generic"`
    with `id_field="id"`. The held-out problems depend only on `seed` and `held_out`.
    """
    ev, tr = split(seed, held_out, train)
    out_dir = Path(out_dir)
    return {"train": write_jsonl(tr, out_dir / "train.jsonl"),
            "eval": write_jsonl(ev, out_dir / "eval.jsonl")}


# --------------------------------------------------------------------------------------------
# answers and prefixes
# --------------------------------------------------------------------------------------------


def final_answer(text: str) -> str | None:
    """The number after the last `The answer is `, or None: the demo's own strict reader.

    The system's reward is math-verify's; this is for quick measurements and tests.
    """
    at = text.rfind(ANSWER_PREFIX)
    if at < 0:
        return None
    rest = text[at + len(ANSWER_PREFIX):]
    digits = ""
    for ch in rest:
        if not (ch.isdigit() or (ch == "-" and not digits)):
            break
        digits += ch
    return digits if digits.strip("-") else None


def solution_prefix(solution: str, ratio: float) -> str:
    """The first whole lines of `solution` covering at most `ratio` of its characters.

    Never reveals the final answer: stops before the answer line and before the last column
    line, whose result so far is already the answer. Ends with a newline unless empty. A
    character-based stand-in for the actor's token-based prefix, used by the demo's
    measurements and the warm start's hinted examples.
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"ratio: expected 0 <= ratio < 1, got {ratio}")
    answer = final_answer(solution)
    budget = ratio * len(solution)
    out, used = [], 0
    for line in solution.split("\n")[:-1]:
        if used + len(line) + 1 > budget or (answer and line.endswith(f" {answer}")):
            break
        out.append(line + "\n")
        used += len(line) + 1
    return "".join(out)


def iter_texts(problems: list[Problem], template: str = "Question: {problem}\nAnswer: "
               ) -> Iterator[str]:
    """Prompt + solution texts, e.g. to train a tokenizer on."""
    for p in problems:
        yield template.format(problem=p.problem) + p.solution
