"""One verification with math-verify, inside a worker process: parse gold, parse output, compare.

This module imports math-verify (and so sympy) at import time; only worker processes and tests
import it. The pool's parent never does.

Timeouts. math-verify guards `parse` and `verify` with `signal.alarm` in whole seconds and
turns its own timeout into "no answer" / "not equal", which would hide a timeout as a wrong
answer. So its timeouts are switched off here and each step runs under `soft_deadline`, an
interval timer (float seconds) that raises `DeadlineExceeded`, a `BaseException` that
math-verify's `except Exception` clauses let through; the verdict is then `timeout`. A timer
cannot interrupt work inside C code (a 370-million-digit integer power, a regex), which is
why the parent also enforces a hard deadline by killing the worker.

Gold answers are parsed as `\\boxed{answer}` with LaTeX and plain-expression extraction, as
AReaL's MathVerifyWorker does. Outputs: by default only the answer the output marks is read
(`lppo.core.answers.marked_answer`: the last `\\boxed{}`, else the text after the last
`####` / "final answer" / "answer is" / "answer:"); then math-verify parses it with `\\boxed{}`
first and `first_match` mode: the answer the model marked is its answer, even if it does not
parse.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

import math_verify.grader
import math_verify.parser
from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from actor.reward.verdict import Verdict
from lppo.core.answers import clean_output, gold_to_latex, marked_answer

GOLD_TARGETS = (LatexExtractionConfig(), ExprExtractionConfig())


def silence_timeout_warnings() -> None:
    """math-verify warns once that its timeouts are off; here they are off on purpose."""
    math_verify.parser.TIMEOUT_WARNING_SHOWN = True
    math_verify.grader.TIMEOUT_WARNING_SHOWN = True


class DeadlineExceeded(BaseException):  # noqa: N818 (a signal, like KeyboardInterrupt)
    """Raised by `soft_deadline`'s timer; a BaseException so library code cannot swallow it."""


def _on_alarm(signum, frame):
    raise DeadlineExceeded()


@contextmanager
def soft_deadline(seconds: float) -> Iterator[None]:
    """Raise `DeadlineExceeded` in this (main) thread if the block runs past `seconds`."""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


PRED_TARGETS = (
    LatexExtractionConfig(boxed_match_priority=0),
    ExprExtractionConfig(),
)
"""Extraction targets for the text that is read as the answer: `\\boxed{}` first."""


def parse_gold(answer: str) -> list:
    """math-verify's parse of a stored gold answer; an empty list means unparsable."""
    return parse(
        gold_to_latex(answer),
        extraction_config=GOLD_TARGETS,
        fallback_mode="first_match",
        parsing_timeout=None,
    )


def judge(gold: list, output: str, require_anchor: bool) -> Verdict:
    """Verdict for one (already cleaned and bounded) output against a parsed gold answer.

    With `require_anchor`, only the answer the output marks is read (`marked_answer`), and an
    output that marks none has `no_answer`; without, math-verify reads the whole output.
    """
    text = marked_answer(output) if require_anchor else output
    if text is None:
        return Verdict.NO_ANSWER
    pred = parse(
        text,
        extraction_config=PRED_TARGETS,
        fallback_mode="first_match",
        extraction_mode="first_match",
        parsing_timeout=None,
    )
    if not pred:
        return Verdict.NO_ANSWER
    return Verdict.CORRECT if verify(gold, pred, timeout_seconds=None) else Verdict.WRONG


def judge_text(
    gold_answer: str, output: str, require_anchor: bool = True, max_chars: int = 20_000
) -> Verdict:
    """Gold string and output in, verdict out, in this process and without deadlines.

    The output is cleaned as the pool cleans it. For tests and benchmarks; actors use
    `RewardPool`, which adds deadlines and isolation.
    """
    silence_timeout_warnings()
    gold = parse_gold(gold_answer)
    if not gold:
        return Verdict.UNPARSABLE_GOLD
    return judge(gold, clean_output(output, max_chars)[0], require_anchor)
