"""PG-sampling: which prefix ratio a sample gets, and where the expert solution is cut.

Rule (docs/design.md, "Prefix-guided sampling"). A sample whose last unguided group had pass
rate 0 is dispatched with a
prefix: the first `r` of its expert solution's tokens, cut back to the last line (or sentence)
boundary at or before that point, never including the final answer. After each guided group
with pass rate p:

    r <- r + step_up     if p == 0                      (still failing: give more of the solution)
    r <- r - step_down   if p >= success_threshold      (mostly solved: give less)
    r <- r               otherwise
    r <- clamp(r, 0, max_ratio_t)

`r` starts at `r0`; when it reaches 0 the next group is unguided, and if that one fails again
guidance restarts at `r0`. `pg.enabled = false` keeps every sample unguided. `max_ratio_t` is
`pg.max_ratio`, or with `pg.anneal` a schedule that lowers it over training to
`pg.final_max_ratio` (`max_ratio_at`): the hint shrinks for every sample, so the policy must
learn to write the hard part itself, not only to finish from it.

Why. A problem the policy never solves gives a GRPO group of zeros: no gradient. With part of
the expert solution as context the policy explores from a hint, its completions of the rest
get a mixed group and a useful signal, and the hint shrinks as the policy learns to finish
more of the solution on its own. Cutting at a line/sentence boundary keeps the hint a
well-formed partial solution (no half-written number); excluding the final answer keeps the
policy doing the last step itself. The cut stops before the first line that *states* the
answer (`states_answer`: a marker, or a result equal to the answer), not only before the
answer line, and the learner has the verifier check every possible prefix
(`learner/certify.py`); the actor verifies the completion alone.

The cut works on token ids so the actor sends exactly the tokens the learner chose (the
prefix is context there, and masked or off-policy here). `SolutionCuts` precomputes, once per
sample, the boundary positions and the answer's first token; `SolutionCuts.prefix(r)` is then
a cheap, pure lookup.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from learner.algo.progress import RATIO_TOL, SampleStats
from lppo.core.config.schema import PGConfig

Boundary = Literal["line", "sentence"]
SENTENCE_END = ".?!"
"""Characters that end a sentence when followed by whitespace (or the end of the text)."""


# --------------------------------------------------------------------------------------------
# the ratio
# --------------------------------------------------------------------------------------------


def _tidy(ratio: float, top: float) -> float:
    r = min(max(ratio, 0.0), top)
    r = round(r, 6)  # 0.5 - 5 * 0.1 is 2.8e-17, not 0
    return 0.0 if r < RATIO_TOL else r


def max_ratio_at(step: int, total_steps: int, cfg: PGConfig) -> float:
    """The largest prefix ratio at learner step `step` (`pg.anneal`): `max_ratio` throughout,
    or annealed linearly / by a half cosine to `final_max_ratio` at `anneal_steps` (0: at
    `total_steps`), and held there."""
    if cfg.anneal == "none":
        return cfg.max_ratio
    span = cfg.anneal_steps or total_steps
    frac = min(1.0, max(0.0, step / max(1, span)))
    shape = frac if cfg.anneal == "linear" else 0.5 * (1.0 - math.cos(math.pi * frac))
    return round(cfg.max_ratio + (cfg.final_max_ratio - cfg.max_ratio) * shape, 6)


def next_ratio(ratio: float, guided_pass_rate: float, cfg: PGConfig,
               top: float | None = None) -> float:
    """The prefix ratio after a guided group at `ratio` with `guided_pass_rate` (see module),
    at most `top` (default `pg.max_ratio`)."""
    p = float(guided_pass_rate)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"guided_pass_rate: expected 0 <= p <= 1, got {guided_pass_rate}")
    if p == 0.0:
        ratio = ratio + cfg.step_up
    elif p >= cfg.success_threshold:
        ratio = ratio - cfg.step_down
    return _tidy(ratio, cfg.max_ratio if top is None else top)


def choose_ratio(stats: SampleStats, cfg: PGConfig, top: float | None = None) -> float:
    """The prefix ratio for the sample's next group (0: unguided), at most `top` (default
    `pg.max_ratio`; `max_ratio_at` when annealing).

    Unseen samples start unguided. After an unguided group: `r0` if it had pass rate 0, else 0.
    After a guided group: `next_ratio` of that group's ratio and pass rate.
    """
    if not cfg.enabled or not stats.seen:
        return 0.0
    top = cfg.max_ratio if top is None else top
    if stats.last_ratio > 0.0:
        if stats.last_guided_pass_rate is None:
            raise ValueError("stats: last_ratio > 0 but no guided pass rate recorded")
        return next_ratio(stats.last_ratio, stats.last_guided_pass_rate, cfg, top)
    return _tidy(cfg.r0, top) if stats.last_pass_rate == 0.0 else 0.0


# --------------------------------------------------------------------------------------------
# the cut
# --------------------------------------------------------------------------------------------


def cut_prefix(solution_token_ids: Sequence[int], ratio: float,
               boundary_positions: Sequence[int], answer_start: int) -> list[int]:
    """The prefix: `solution_token_ids[:k]` for the largest boundary `k` with
    `k <= floor(ratio * len)` and `k <= answer_start`; empty when there is none.

    `boundary_positions`: prefix lengths whose last token ends a line/sentence (ascending).
    `answer_start`: index of the final answer's first token; nothing from it on is included.
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"ratio: expected 0 <= ratio < 1, got {ratio}")
    n = len(solution_token_ids)
    limit = min(math.floor(ratio * n + 1e-9), answer_start)
    i = bisect.bisect_right(boundary_positions, limit)
    k = boundary_positions[i - 1] if i > 0 else 0
    return list(solution_token_ids[:k])


def _is_boundary(text: str, pos: int, mode: Boundary) -> bool:
    """Whether `text[:pos]` ends a line (or, in sentence mode, a line or a sentence)."""
    j = pos
    while j > 0 and text[j - 1] in " \t":
        j -= 1
    if j == 0:
        return False
    last = text[j - 1]
    if last == "\n":
        return True
    if mode == "sentence" and last in SENTENCE_END:
        return j < pos or pos == len(text) or text[pos].isspace()
    return False


def boundary_positions(text: str, token_ends: Sequence[int], mode: Boundary) -> list[int]:
    """Prefix lengths k (1..n) such that the first k tokens end at a line/sentence boundary.

    `text`: the solution as the tokens spell it; `token_ends[i]`: the character offset in
    `text` where token i ends (non-decreasing). A line ends after a newline (trailing spaces
    or tabs allowed); a sentence ends after `.`, `?` or `!` followed by whitespace or the end
    of the text. Sentence mode includes line ends.
    """
    if mode not in ("line", "sentence"):
        raise ValueError(f"mode: expected 'line' or 'sentence', got {mode!r}")
    return [k + 1 for k, end in enumerate(token_ends) if _is_boundary(text, end, mode)]


def token_ends_from_offsets(offsets: Sequence[tuple[int, int]]) -> list[int]:
    """`token_ends` from a fast tokenizer's `offset_mapping` (each token's (start, end)),
    made non-decreasing (tokens of one multi-byte character share an offset)."""
    ends, top = [], 0
    for _, end in offsets:
        top = max(top, int(end))
        ends.append(top)
    return ends


def token_ends_from_texts(token_texts: Sequence[str]) -> tuple[str, list[int]]:
    """(text, token_ends) from each token decoded on its own (`text` is their concatenation)."""
    ends, total = [], 0
    for t in token_texts:
        total += len(t)
        ends.append(total)
    return "".join(token_texts), ends


NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?")
"""A number as solutions write it (`1,000`, `-3`, `2.5`), not part of a word or a longer number."""
RESULT = re.compile(r"=\s*(?:\\?\$\s*)?(-?\d[\d,]*(?:\.\d+)?)")
"""A number right after `=` (a dollar sign in between allowed): a computed result."""
ANSWER_MARKERS = ("\\boxed", "\\fbox", "\\framebox", "####")
"""Markers that state a final answer whatever follows them."""


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").replace("$", "").rstrip("%").strip())
    except ValueError:
        return None


def states_answer(segment: str, answer: str | None) -> bool:
    """Whether a line (or sentence) of a solution states the final `answer`.

    True when it holds an answer marker (`\\boxed`, `\\fbox`, `####`), or, for a numeric
    answer, when one of its *results* equals it: a number right after `=`, or its last number
    (`so far 317`, `= $15.`, `= 6 pieces`). An operand that happens to equal the answer
    (`3 x 5 = 15` for the answer 5) is not a statement of it. A non-numeric answer (`\\frac{1}{2}`,
    `(3, -1)`) counts when the segment contains it (spaces ignored) between non-alphanumerics.
    """
    if any(m in segment for m in ANSWER_MARKERS):
        return True
    gold = (answer or "").strip()
    if not gold:
        return False
    value = _number(gold)
    if value is None:
        squeezed, target = re.sub(r"\s+", "", segment), re.sub(r"\s+", "", gold)
        head = r"(?<![A-Za-z0-9])" if target[0].isalnum() else ""
        tail = r"(?![A-Za-z0-9])" if target[-1].isalnum() else ""
        return re.search(head + re.escape(target) + tail, squeezed) is not None
    numbers = NUMBER.findall(segment)
    results = RESULT.findall(segment) + numbers[-1:]
    return any(_number(r) == value for r in results)


def segment_starts(text: str, mode: Boundary) -> list[int]:
    """Character offsets where each line (or, in sentence mode, line or sentence) of `text`
    starts: 0, then every position right after a boundary (`_is_boundary`)."""
    starts = [0]
    for pos in range(1, len(text)):
        if text[pos - 1] not in " \t" and _is_boundary(text, pos, mode):
            while pos < len(text) and text[pos] in " \t":
                pos += 1  # spaces after a boundary are not part of the next segment's text
            if pos < len(text) and pos > starts[-1]:
                starts.append(pos)
    return starts


def answer_char_start(text: str, answer: str | None = None, mode: Boundary = "line") -> int:
    """Character offset where the solution starts stating its final answer.

    The start of the first line (sentence mode: line or sentence) that `states_answer`; with
    none, the start of the last non-empty one (a solution states its answer last). A prefix cut
    at or before this offset never holds an answer marker nor a line whose result is the
    answer, however high the ratio.
    """
    body = text.rstrip()
    starts = segment_starts(body, mode)
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(body)
        if states_answer(body[start:end], answer):
            return start
    last = [s for s in starts if body[s:].strip()]
    return last[-1] if last else 0


def char_to_token(token_ends: Sequence[int], pos: int) -> int:
    """Index of the token that contains character `pos` (len(token_ends) if past the end)."""
    return bisect.bisect_right(token_ends, pos)


@dataclass(frozen=True)
class SolutionCuts:
    """An expert solution, tokenized, with where it may be cut. Build once per sample."""

    token_ids: tuple[int, ...]
    """The solution's token ids (no special tokens)."""
    boundaries: tuple[int, ...]
    """Prefix lengths that end at a line/sentence boundary, ascending."""
    answer_start: int
    """Index of the final answer's first token."""

    def prefix(self, ratio: float) -> list[int]:
        """The prefix token ids for `ratio` (`cut_prefix`)."""
        return cut_prefix(self.token_ids, ratio, self.boundaries, self.answer_start)

    def guided(self, ratio: float, top: float) -> tuple[float, list[int]]:
        """(ratio, prefix) a group asked to be guided at `ratio` gets, never an empty prefix.

        Where `ratio` cuts before the first boundary, the ratio rises to that of the shortest
        prefix if it is within `top` (the annealed largest ratio); else the group goes
        unguided, `(0.0, [])`. A group whose prefix is empty is unguided, whatever its ratio.
        """
        if ratio <= 0.0:
            return 0.0, []
        cut = self.prefix(ratio)
        if cut:
            return ratio, cut
        shortest = next((k for k in self.candidates() if k > 0), None)
        if shortest is None or shortest / len(self.token_ids) > top:
            return 0.0, []
        ratio = shortest / len(self.token_ids)
        return ratio, self.prefix(ratio)

    def candidates(self) -> list[int]:
        """Every prefix length a cut can produce (boundaries up to `answer_start`)."""
        return [k for k in self.boundaries if k <= self.answer_start]

    def stopped_before(self, k: int) -> SolutionCuts:
        """These cuts, never reaching past the boundary before `k` (the line or sentence that
        ends at `k` states the answer, as a verifier found)."""
        earlier = [b for b in self.boundaries if b < k]
        return replace(self, answer_start=min(self.answer_start, earlier[-1] if earlier else 0))

    @classmethod
    def from_token_texts(cls, token_ids: Sequence[int], token_texts: Sequence[str],
                         mode: Boundary, answer: str | None = None) -> SolutionCuts:
        """From token ids and each token's decoded text (`len(token_texts) == len(ids)`)."""
        if len(token_ids) != len(token_texts):
            raise ValueError(
                f"token_texts: expected one per token ({len(token_ids)}), got {len(token_texts)}"
            )
        text, ends = token_ends_from_texts(token_texts)
        return cls(
            token_ids=tuple(int(t) for t in token_ids),
            boundaries=tuple(boundary_positions(text, ends, mode)),
            answer_start=char_to_token(ends, answer_char_start(text, answer, mode)),
        )


def prepare_solution(tokenizer: Any, solution: str, mode: Boundary,
                     answer: str | None = None) -> SolutionCuts:
    """Tokenize `solution` with a transformers tokenizer and find its cut points.

    Tokens are decoded one by one (exact for byte-level BPE; a character split across tokens
    reads as U+FFFD in both the text and the offsets, consistently), so the boundaries are
    those of the very ids the actor will receive.
    """
    ids = tokenizer(solution, add_special_tokens=False)["input_ids"]
    texts = tokenizer.batch_decode(
        [[t] for t in ids], skip_special_tokens=False, clean_up_tokenization_spaces=False
    )
    return SolutionCuts.from_token_texts(ids, texts, mode, answer)
