"""The pure string functions of `lppo.core.answers`: gold extraction, cleaning, format check."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lppo.core.answers import (
    clean_output,
    extract_boxed,
    extract_hash_answer,
    gold_to_latex,
    has_boxed_answer,
    marked_answer,
    strip_math_delimiters,
)
from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so $\\boxed{5}$.", "5"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{ 12 }", "12"),
        ("first \\boxed{1} then \\boxed{2}", "2"),
        ("\\boxed{\\boxed{5}}", "\\boxed{5}"),
        ("\\boxed{a \\boxed{b} c} and later nothing", "a \\boxed{b} c"),
        ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),
        ("\\boxed{\\left\\{ x \\right.}", "\\left\\{ x \\right."),
        ("\\boxed{\\begin{pmatrix}1\\\\2\\end{pmatrix}}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"),
        ("\\fbox{9}", "9"),
        ("\\boxed 5.", "5."),
        ("\\boxed {7}", "7"),
        ("\\boxed{}", ""),
        ("\\boxed{3} then a cut-off \\boxed{\\frac{1}{", "3"),
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


@pytest.mark.parametrize("text", ["no answer", "\\boxed{\\frac{1}{2}", "\\boxedx{3}", "\\boxed"])
def test_extract_boxed_none(text):
    assert extract_boxed(text) is None


def test_extract_boxed_deep_nesting_is_linear():
    text = "\\boxed{" + "{" * 50_000 + "1" + "}" * 50_000 + "}"
    assert extract_boxed(text) == "{" * 50_000 + "1" + "}" * 50_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("She sold 48/2 = <<48/2=24>>24 clips.\n#### 72", "72"),
        ("#### 1,080", "1080"),
        ("#### -3", "-3"),
        ("#### 109,200,000", "109200000"),
        ("#### 0.5", "0.5"),
        ("a #### 1\nb #### 2", "2"),
        ("no marker", None),
        ("####   ", None),
    ],
)
def test_extract_hash_answer(text, expected):
    assert extract_hash_answer(text) == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("$\\frac{1}{2}$", "\\frac{1}{2}"),
        ("$$x$$", "x"),
        ("\\(x+1\\)", "x+1"),
        ("\\[y\\]", "y"),
        ("  7 ", "7"),
        ("$69$,$84$", "$69$,$84$"),
    ],
)
def test_strip_math_delimiters(answer, expected):
    assert strip_math_delimiters(answer) == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("5", "\\boxed{5}"),
        ("$\\frac12$", "\\boxed{\\frac12}"),
        ("\\boxed{5}", "\\boxed{5}"),
        ("\\boxed{5} and \\boxed{6}", "\\boxed{\\boxed{5} and \\boxed{6}}"),
    ],
)
def test_gold_to_latex(answer, expected):
    assert gold_to_latex(answer) == expected


def test_clean_output_keeps_the_tail_and_says_so():
    text = "x" * 1000 + "\\boxed{5}"
    cleaned, cut = clean_output(text, 100)
    assert cut and len(cleaned) == 100 and cleaned.endswith("\\boxed{5}")
    assert clean_output("short", 100) == ("short", False)


def test_clean_output_removes_nul_and_surrogates_and_reads_fbox():
    cleaned, cut = clean_output("a\x00b\ud800c \\fbox{1}", 100)
    assert cleaned == "ab?c \\boxed{1}" and not cut
    cleaned.encode("utf-8")


@pytest.mark.parametrize(
    ("text", "ok"),
    [("so \\boxed{5}", True), ("\\boxed{}", False), ("\\boxed{5", False), ("5", False)],
)
def test_has_boxed_answer(text, ok):
    assert has_boxed_answer(text) is ok


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so 5 + 2 = 7.\n#### 7", "7"),
        ("Final Answer: The final answer is $7$. I hope it is correct.",
         "$7$. I hope it is correct."),                         # the last marker wins
        ("The answer is:\n\n$$18$$", "$$18$$"),                  # answer on the next line
        ("**Answer:** 18 dollars", "18 dollars"),
        ("The correct answer is 12.", "12."),
        ("the final answer: 3/4 of a cup", "3/4 of a cup"),
        ("The answer is 7:12 pm.", "$\\text{7:12}$ pm."),        # a clock time stays whole
        ("It is \\boxed{3}, or maybe \\boxed{7}", "It is \\boxed{3}, or maybe \\boxed{7}"),
        ("The answer is " + "9" * 500, "9" * 200),               # bounded
    ],
)
def test_marked_answer(text, expected):
    assert marked_answer(text) == expected


@pytest.mark.parametrize("text", [
    "The solution is from above answer, 4%.",    # "answer" without "is" or ":"
    "She needs to save that 7:12 ... Crazy car drivers hit Oklahoma * West to",
    "We compute 3 + 4 and get 7",
    "The answer is",                             # a marker and nothing after it
    "Since 13-2 = 8 lego sets are left, the answer is not 2.",   # a negation marks nothing
    "\\boxed{5",                                  # an unclosed box marks nothing
    "",
])
def test_marked_answer_none(text):
    assert marked_answer(text) is None


def test_importing_the_package_stays_light():
    code = (
        "import sys, actor, actor.reward; "
        "heavy = [m for m in ('sympy', 'math_verify', 'torch', 'vllm') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
