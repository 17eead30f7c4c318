"""Answer equivalence with math-verify as configured for rewards (in-process, no pool).

Each case is (gold answer as stored in the ledger, an output that must be `correct`, an output
that must be `wrong`): the wrong counterpart makes sure the verifier is not simply lenient.
Outputs are model-style: text around the answer, `\\boxed{}` nesting, units, percentages.
"""

from __future__ import annotations

import pytest

from actor.reward.verdict import Verdict
from actor.reward.verify import judge_text

CASES: list[tuple[str, str, str, str]] = [
    # id, gold, correct output, wrong output
    # fractions, decimals, integers
    ("frac-decimal", "\\frac{1}{2}", "So the probability is $\\boxed{0.5}$.", "$\\boxed{0.25}$"),
    ("decimal-frac", "0.75", "The answer is \\boxed{\\frac{3}{4}}", "\\boxed{\\frac{4}{3}}"),
    ("dfrac-slash", "\\dfrac{14}{3}", "\\boxed{14/3}", "\\boxed{3/14}"),
    ("tfrac", "\\tfrac{3}{56}", "$\\boxed{\\frac{3}{56}}$", "$\\boxed{\\frac{3}{65}}$"),
    ("frac-unreduced", "\\frac{3}{2}", "\\boxed{\\frac{6}{4}}", "\\boxed{\\frac{2}{3}}"),
    ("frac-shorthand", "\\frac{1}{2}", "\\boxed{\\frac12}", "\\boxed{\\frac13}"),
    ("mixed-decimal", "1.25", "\\boxed{\\frac{5}{4}}", "\\boxed{1.2}"),
    ("float-gold-int", "27.0", "They meet \\boxed{27} miles from A.", "\\boxed{28}"),
    ("int-gold-float", "27", "\\boxed{27.0}", "\\boxed{27.5}"),
    ("repeating-approx", "\\frac{1}{3}", "\\boxed{0.333333}", "\\boxed{0.3}"),
    ("sqrt-frac", "\\frac{\\sqrt{2}}{2}", "\\boxed{\\frac{1}{\\sqrt{2}}}", "\\boxed{\\sqrt{2}}"),
    ("sqrt-simplify", "3\\sqrt{13}", "\\boxed{\\sqrt{117}}", "\\boxed{13\\sqrt{3}}"),
    ("pi", "2\\pi", "\\boxed{2\\pi}", "\\boxed{\\pi}"),
    ("pi-frac", "-\\frac{\\pi}{6}", "\\boxed{-\\pi/6}", "\\boxed{\\pi/6}"),
    # \boxed{} nesting and placement
    ("boxed-nested", "5", "\\boxed{\\boxed{5}}", "\\boxed{\\boxed{6}}"),
    ("boxed-twice-same", "7", "\\boxed{7}, that is \\boxed{7}", "\\boxed{7}, that is \\boxed{3}"),
    ("boxed-in-display", "12", "$$\\boxed{12}$$", "$$\\boxed{21}$$"),
    ("boxed-braces-inside", "\\frac{1}{4}", "\\boxed{{\\frac{1}{4}}}", "\\boxed{{\\frac{1}{5}}}"),
    ("boxed-fbox", "9", "\\fbox{9}", "\\fbox{8}"),
    ("boxed-after-text", "42", "Step 1 ... Step 9. Final: \\boxed{42}.", "Final: \\boxed{24}."),
    ("boxed-beats-later-number", "3", "\\boxed{3} (checked with 4 cases)", "\\boxed{4} (we had 3)"),
    # units and text around answers
    ("units-cm", "5\\text{ cm}", "The side is \\boxed{5 \\text{ cm}}", "\\boxed{6 \\text{ cm}}"),
    ("units-gold-bare", "18", "She pays \\boxed{18 \\text{ dollars}}",
     "\\boxed{19 \\text{ dollars}}"),
    ("degrees", "90^\\circ", "\\boxed{90^\\circ}", "\\boxed{45^\\circ}"),
    ("degrees-bare", "90^\\circ", "\\boxed{90}", "\\boxed{180}"),
    ("dollar-sign", "\\$32", "\\boxed{\\$32}", "\\boxed{\\$23}"),
    ("text-word", "\\text{Evelyn}", "\\boxed{\\text{Evelyn}}", "\\boxed{\\text{Bob}}"),
    ("text-choice", "\\text{(C)}", "\\boxed{\\text{(C)}}", "\\boxed{\\text{(D)}}"),
    ("answer-is", "18", "The final answer is $18$. I hope it is correct.",
     "The final answer is $81$."),
    ("plain-number-end", "72", "Natalia sold 48 + 24 = 72 clips.\n#### 72",
     "48/2 = 24 clips\n#### 24"),
    ("thousands-sep", "1080", "The total is \\boxed{1,080}", "\\boxed{1,800}"),
    ("thousands-gold", "1,080", "\\boxed{1080}", "\\boxed{1008}"),
    ("demo-style", "317", "12 + 305 = 317\nThe answer is 317.",
     "12 + 306 = 318\nThe answer is 318."),
    ("text-around", "4", "Therefore, there are $\\boxed{4}$ ways.",
     "Therefore, there are $\\boxed{5}$ ways."),
    # intervals and inequalities
    ("interval-closed-open", "[2,5)", "\\boxed{[2, 5)}", "\\boxed{[2, 5]}"),
    ("interval-inf", "(-\\infty,3]", "\\boxed{(-\\infty, 3]}", "\\boxed{(-\\infty, 3)}"),
    ("interval-union", "(-\\infty,1)\\cup(2,\\infty)",
     "\\boxed{(-\\infty,1) \\cup (2,\\infty)}", "\\boxed{(-\\infty,1] \\cup (2,\\infty)}"),
    ("interval-open", "(0,1)", "\\boxed{(0, 1)}", "\\boxed{(0, 2)}"),
    ("inequality", "x>3", "\\boxed{x > 3}", "\\boxed{x < 3}"),
    # matrices and vectors
    ("pmatrix-col", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
     "\\boxed{\\begin{pmatrix}1\\\\2\\end{pmatrix}}",
     "\\boxed{\\begin{pmatrix}2\\\\1\\end{pmatrix}}"),
    ("pmatrix-2x2", "\\begin{pmatrix} 1 & 0 \\\\ 0 & 1 \\end{pmatrix}",
     "\\boxed{\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}}",
     "\\boxed{\\begin{pmatrix}0&1\\\\1&0\\end{pmatrix}}"),
    ("bmatrix-frac", "\\begin{pmatrix} \\frac{1}{2} \\\\ 3 \\end{pmatrix}",
     "\\boxed{\\begin{bmatrix}0.5\\\\3\\end{bmatrix}}",
     "\\boxed{\\begin{pmatrix}2\\\\3\\end{pmatrix}}"),
    # sets, tuples, lists
    ("set-order", "\\{1,2,3\\}", "\\boxed{\\{3,2,1\\}}", "\\boxed{\\{1,2,4\\}}"),
    ("list-order", "3, 5, 7", "\\boxed{7, 5, 3}", "\\boxed{3, 5}"),
    ("roots-list", "1,-2", "The roots are \\boxed{-2, 1}", "\\boxed{-1, 2}"),
    ("tuple-point", "(6,31,-1)", "\\boxed{(6, 31, -1)}", "\\boxed{(6, -1, 31)}"),
    ("polar-point", "\\left( 3, \\frac{\\pi}{2} \\right)", "\\boxed{(3, \\frac{\\pi}{2})}",
     "\\boxed{(3, \\pi)}"),
    ("empty-set", "\\emptyset", "\\boxed{\\emptyset}", "\\boxed{\\{0\\}}"),
    # negatives
    ("negative", "-50", "\\boxed{-50}", "\\boxed{50}"),
    ("negative-frac", "-\\frac{1}{3}", "\\boxed{\\frac{-1}{3}}", "\\boxed{\\frac{1}{3}}"),
    ("negative-decimal", "-0.5", "\\boxed{-\\frac{1}{2}}", "\\boxed{0.5}"),
    ("negative-power", "-256", "\\boxed{-2^8}", "\\boxed{(-2)^9 + 768}"),
    # percentages
    ("percent-bare", "10\\%", "\\boxed{10\\%}", "\\boxed{20\\%}"),
    ("percent-number", "10\\%", "\\boxed{10}", "\\boxed{11}"),
    ("percent-fraction", "25\\%", "\\boxed{0.25}", "\\boxed{0.5}"),
    ("percent-word", "40", "The discount is 40 percent, so \\boxed{40\\%}", "\\boxed{60\\%}"),
    # leading zeros (AIME)
    ("aime-leading-zero-gold", "025", "\\boxed{25}", "\\boxed{52}"),
    ("aime-leading-zero-pred", "25", "\\boxed{025}", "\\boxed{052}"),
    ("aime-both-zero", "073", "\\boxed{073}", "\\boxed{037}"),
    ("aime-zero-gold-text", "080", "So $m+n = \\boxed{80}$.", "So $m+n = \\boxed{8}$."),
    # expressions and equations
    ("poly-factored", "x^2+2x", "\\boxed{x(x+2)}", "\\boxed{x(x+1)}"),
    ("poly-expanded", "x^3+3x-6", "\\boxed{x^3 + 3x - 6}", "\\boxed{x^3 + 3x + 6}"),
    ("equation-rhs", "y=2x+3", "\\boxed{y = 2x + 3}", "\\boxed{y = 3x + 2}"),
    ("assignment", "x=5", "\\boxed{x = 5}", "\\boxed{x = -5}"),
    ("complex", "6-5i", "\\boxed{6 - 5i}", "\\boxed{6 + 5i}"),
    ("trig", "\\cot x", "\\boxed{\\frac{\\cos x}{\\sin x}}", "\\boxed{\\tan x}"),
    ("exponent", "2^{1009}", "\\boxed{2^{1009}}", "\\boxed{2^{1008}}"),
    ("binomial", "\\binom{6}{2}", "\\boxed{15}", "\\boxed{30}"),
    ("sqrt-number", "\\sqrt{51}", "\\boxed{\\sqrt{51}}", "\\boxed{\\sqrt{15}}"),
]


def _ids(cases):
    return [case[0] for case in cases]


def test_enough_cases():
    assert len(CASES) >= 60
    assert len(set(_ids(CASES))) == len(CASES)


@pytest.mark.parametrize(("gold", "output"), [c[1:3] for c in CASES], ids=_ids(CASES))
def test_equivalent_answer_is_correct(gold, output):
    assert judge_text(gold, output) == Verdict.CORRECT


@pytest.mark.parametrize(("gold", "output"), [(c[1], c[3]) for c in CASES], ids=_ids(CASES))
def test_different_answer_is_wrong(gold, output):
    assert judge_text(gold, output) == Verdict.WRONG


@pytest.mark.parametrize(
    "output",
    ["", "I do not know.", "Let me think about this problem step by step", "\\boxed{}"],
)
def test_nothing_to_parse_is_no_answer(output):
    assert judge_text("5", output) == Verdict.NO_ANSWER


@pytest.mark.parametrize("gold", ["", "   ", "$$"])
def test_empty_gold_is_unparsable(gold):
    assert judge_text(gold, "\\boxed{5}") == Verdict.UNPARSABLE_GOLD


def test_unmarked_numbers_are_no_answer_unless_anchors_are_off():
    output = "We compute 3 + 4 and get 7"
    assert judge_text("7", output) == Verdict.NO_ANSWER
    assert judge_text("7", output, require_anchor=False) == Verdict.CORRECT
    assert judge_text("7", "so the answer is $7$") == Verdict.CORRECT


def test_hedging_between_boxed_answers_is_wrong():
    # math-verify reads several boxed answers as one set: listing candidates is not rewarded.
    assert judge_text("7", "It is \\boxed{3}, or maybe \\boxed{7}") == Verdict.WRONG


def test_fbox_counts_as_boxed():
    assert judge_text("9", "\\fbox{9}") == Verdict.CORRECT
