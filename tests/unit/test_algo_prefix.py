"""PG-sampling (learner.algo.prefix): the ratio's walk, boundaries, the answer, the cut."""

from __future__ import annotations

import random

import pytest

from learner.algo.prefix import (
    SolutionCuts,
    answer_char_start,
    boundary_positions,
    char_to_token,
    choose_ratio,
    cut_prefix,
    next_ratio,
    prepare_solution,
    states_answer,
    token_ends_from_offsets,
    token_ends_from_texts,
)
from learner.algo.progress import SampleStats, update
from lppo.core.config.schema import LPPOConfig, PGConfig
from lppo.demo import task

PG = PGConfig()
CFG = LPPOConfig()


# ---- the ratio ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ratio", "p", "expected"),
    [
        (0.5, 0.0, 0.6),      # still failing: up
        (0.5, 0.5, 0.4),      # at the success threshold: down
        (0.5, 1.0, 0.4),
        (0.5, 0.25, 0.5),     # in between: unchanged
        (0.9, 0.0, 0.9),      # clamped at max_ratio
        (0.85, 0.0, 0.9),
        (0.1, 1.0, 0.0),      # back to unguided
        (0.05, 1.0, 0.0),     # clamped at 0
    ],
)
def test_next_ratio(ratio, p, expected):
    assert next_ratio(ratio, p, PG) == expected


def test_ratio_reaches_exactly_zero_and_exactly_max():
    r = 0.5
    for _ in range(5):
        r = next_ratio(r, 1.0, PG)
    assert r == 0.0
    r = 0.5
    for _ in range(4):
        r = next_ratio(r, 0.0, PG)
    assert r == 0.9 == PG.max_ratio


def test_next_ratio_rejects_bad_pass_rates():
    with pytest.raises(ValueError):
        next_ratio(0.5, -0.1, PG)


def test_choose_ratio_walks_through_guidance_and_back():
    s = SampleStats()
    assert choose_ratio(s, PG) == 0.0                      # unseen: unguided first
    s = update(s, 0.0, False, CFG)
    assert choose_ratio(s, PG) == 0.5                      # unguided failure: r0
    s = update(s, 0.0, True, CFG, ratio=0.5)
    assert choose_ratio(s, PG) == 0.6                      # guided failure: up
    s = update(s, 0.75, True, CFG, ratio=0.6)
    assert choose_ratio(s, PG) == 0.5                      # mostly solved: down
    s = update(s, 0.25, True, CFG, ratio=0.5)
    assert choose_ratio(s, PG) == 0.5                      # in between: stay
    for r in (0.5, 0.4, 0.3, 0.2, 0.1):
        s = update(s, 1.0, True, CFG, ratio=r)
    assert choose_ratio(s, PG) == 0.0                      # at 0: unguided again
    s = update(s, 0.0, False, CFG)
    assert choose_ratio(s, PG) == 0.5                      # fails unguided again: r0
    s = update(s, 0.0, True, CFG, ratio=0.5)
    s = update(s, 0.25, False, CFG)                        # an unguided success ends it
    assert choose_ratio(s, PG) == 0.0


def test_choose_ratio_when_pg_is_off_or_sample_is_fine():
    failing = update(SampleStats(), 0.0, False, CFG)
    assert choose_ratio(failing, PGConfig(enabled=False)) == 0.0
    assert choose_ratio(update(SampleStats(), 0.125, False, CFG), PG) == 0.0
    assert choose_ratio(failing, PGConfig(r0=0.3)) == 0.3


# ---- the cut, hand-made tokens ---------------------------------------------------------------


IDS = list(range(100, 110))
BOUNDS = [3, 6, 9]


@pytest.mark.parametrize(
    ("ratio", "answer_start", "k"),
    [
        (0.0, 8, 0),
        (0.2, 8, 0),        # floor(2) is before the first boundary
        (0.3, 8, 3),        # exactly on a boundary
        (0.5, 8, 3),        # cut back from 5 to 3
        (0.65, 8, 6),       # floor(6.5) = 6
        (0.95, 8, 6),       # 9 would include the answer (token 8): back to 6
        (0.95, 10, 9),
        (0.9, 5, 3),        # answer at 5: at most 5, boundary 3
        (0.9, 0, 0),        # answer first: never a prefix
    ],
)
def test_cut_prefix_by_hand(ratio, answer_start, k):
    assert cut_prefix(IDS, ratio, BOUNDS, answer_start) == IDS[:k]


def test_cut_prefix_edges():
    assert cut_prefix([], 0.5, [], 0) == []
    assert cut_prefix(IDS, 0.9, [], 10) == []
    with pytest.raises(ValueError):
        cut_prefix(IDS, 1.0, BOUNDS, 10)
    with pytest.raises(ValueError):
        cut_prefix(IDS, -0.1, BOUNDS, 10)


TEXTS = ["a", " b", ".", " c", "\n", "d", "?", "\n", "e", " 3", ".", "5", "!"]


def test_boundaries_from_token_texts_line_and_sentence():
    text, ends = token_ends_from_texts(TEXTS)
    assert text == "a b. c\nd?\ne 3.5!"
    assert boundary_positions(text, ends, "line") == [5, 8]
    # '.' before ' c' (3), '?' before '\n' (7), '!' at the end (13); '3.5' is no sentence end
    assert boundary_positions(text, ends, "sentence") == [3, 5, 7, 8, 13]


def test_boundaries_with_merged_and_padded_tokens():
    texts = ["x", ".\n", "y", "\n  ", "z", ". ", "w"]
    text, ends = token_ends_from_texts(texts)
    assert boundary_positions(text, ends, "line") == [2, 4]
    assert boundary_positions(text, ends, "sentence") == [2, 4, 6]
    with pytest.raises(ValueError):
        boundary_positions(text, ends, "paragraph")


def test_token_ends_from_offsets_are_monotone():
    assert token_ends_from_offsets([(0, 1), (1, 3), (1, 3), (3, 4)]) == [1, 3, 3, 4]
    assert token_ends_from_offsets([(0, 2), (0, 1), (2, 5)]) == [2, 2, 5]


def test_char_to_token():
    ends = [1, 3, 3, 4]
    assert [char_to_token(ends, p) for p in range(5)] == [0, 1, 1, 3, 4]


@pytest.mark.parametrize(
    ("text", "answer", "marker"),
    [
        ("We add.\nSo $x = \\boxed{4}$.", None, "So $x"),
        ("a<<1+1=2>>\nb\n#### 72", None, "#### 72"),
        ("#### Step 1\nx = 2\nThus \\boxed{2}.", None, "#### Step"),  # any marker stops it
        ("one\ntwo\nThe answer is 919.\n\n", None, "The answer"),    # no marker: last line
        ("so far 919\nThe answer is 919.", "919", "so far 919"),      # its result states it
        ("x\n\\boxed{12} means 12", "12", "\\boxed"),
        ("x\nThe answer is 5.", "77", "The answer"),                  # gold not found
        # an operand equal to the answer is no statement of it; a result is
        ("He has 3 x 5 = 15 coins.\nHe keeps 20 - 15 = 5.\nSo 5.", "5", "He keeps"),
        ("Food is 30% * $1000=$300\nRent is 10%\nSo 300 in all.", "300", "Food is"),
        ("Let $y = \\frac{1}{2}$.\nThen $y^2$ is small.\nSo $\\frac{1}{2}$.", "\\frac{1}{2}",
         "Let $y"),
    ],
)
def test_answer_char_start(text, answer, marker):
    assert answer_char_start(text, answer) == text.index(marker)


@pytest.mark.parametrize(
    ("segment", "answer", "expected"),
    [
        ("2+0: 2+0+1=3, so far 317", "317", True),       # the demo's last column line
        ("28+3: 8+3=11, so far 17, carry 1", "317", False),
        ("She bought 5 shorts at $7 each so 5*7=$35", "5", False),
        ("There are 40+35=75 flowers that are not roses.", "75", True),
        ("Thus 1,000 in all.", "1000", True),
        ("It costs $18.00 = 18", "18", True),
        ("We pick (3, -1) here.", "(3,-1)", True),
        ("Option AB is wrong.", "A", False),               # inside a word: not stated
        ("so $\\framebox{204}$", "0", True),              # a marker whatever the gold
        ("nothing here", None, False),
    ],
)
def test_states_answer(segment, answer, expected):
    assert states_answer(segment, answer) is expected


def test_sentence_mode_stops_before_the_answering_sentence():
    text = "First 2 + 2 = 4. Then 4 * 3 = 12. So we get 12 in all."
    assert answer_char_start(text, "12", "sentence") == text.index("Then")
    assert answer_char_start(text, "12", "line") == 0


def test_solution_cuts_from_token_texts():
    texts = ["Add", " them", ".\n", "So", " 1+2", ".\n", "The", " answer", " is", " 3", "."]
    cuts = SolutionCuts.from_token_texts(list(range(11)), texts, "line", answer="3")
    assert cuts.boundaries == (3, 6) and cuts.answer_start == 6
    assert cuts.prefix(0.9) == [0, 1, 2, 3, 4, 5]
    assert cuts.prefix(0.5) == [0, 1, 2]
    # a line whose result is the answer ends the cut before it, at any ratio
    texts[4] = " 1+2=3"
    cuts = SolutionCuts.from_token_texts(list(range(11)), texts, "line", answer="3")
    assert cuts.answer_start == 3 and cuts.prefix(0.9) == [0, 1, 2]
    with pytest.raises(ValueError):
        SolutionCuts.from_token_texts([1, 2], ["a"], "line")


# ---- the cut, a real tokenizer ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from lppo.demo.tiny import build_tokenizer

    return build_tokenizer(tmp_path_factory.mktemp("tok"))


def test_demo_solutions_cut_at_whole_lines_without_the_answer(tokenizer):
    rng = random.Random(5)
    for level in task.LEVELS:
        p = task.make_problem(level, rng)
        cuts = prepare_solution(tokenizer, p.solution, "line", answer=p.answer)
        assert list(cuts.token_ids) == tokenizer(p.solution, add_special_tokens=False)["input_ids"]
        lengths = []
        for ratio in (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99):
            ids = cuts.prefix(ratio)
            text = tokenizer.decode(ids)
            assert len(ids) <= ratio * len(cuts.token_ids)
            assert p.solution.startswith(text)
            assert text == "" or text.endswith("\n")
            assert task.ANSWER_PREFIX not in text
            lengths.append(len(ids))
        assert lengths == sorted(lengths) and lengths[-1] > 0
        # no line whose result is the answer (the last column's `so far N`): the line-based
        # character stand-in of the demo stops at the same line
        assert tokenizer.decode(cuts.prefix(0.99)) == task.solution_prefix(p.solution, 0.99)
        assert f" {p.answer}" not in tokenizer.decode(cuts.prefix(0.99))


def test_math_style_solution_in_sentence_mode(tokenizer):
    solution = "First, 2 + 2 = 4. Then 4 * 3 = 12. Therefore the answer is $\\boxed{12}$."
    cuts = prepare_solution(tokenizer, solution, "sentence")
    # a cut may keep the space after the full stop (when the tokenizer attaches it to it)
    assert tokenizer.decode(cuts.prefix(0.95)).rstrip(" ") == "First, 2 + 2 = 4. Then 4 * 3 = 12."
    assert tokenizer.decode(cuts.prefix(0.45)).rstrip(" ") == "First, 2 + 2 = 4."
    line = prepare_solution(tokenizer, solution, "line")
    assert line.prefix(0.95) == []  # one line holding the answer: nothing to give


def test_stopped_before_keeps_cuts_short_of_a_boundary():
    texts = ["a", ".\n", "b", ".\n", "c", ".\n", "The", " end", "."]
    cuts = SolutionCuts.from_token_texts(list(range(9)), texts, "line", answer=None)
    assert cuts.candidates() == [2, 4, 6]
    assert cuts.stopped_before(6).prefix(0.99) == [0, 1, 2, 3]
    assert cuts.stopped_before(2).prefix(0.99) == []
    assert cuts.stopped_before(9) == cuts  # past the cut already: unchanged
