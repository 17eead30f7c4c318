"""Pure string functions around answers: gold extraction, input bounding, the format check.

Nothing here imports math-verify or sympy, so the store's dataset importer can use the same
gold-answer extraction as the verifier (`extract_boxed` for MATH-style solutions,
`extract_hash_answer` for GSM8K's `#### N`), and the pool's parent process can bound and clean
outputs before they cross to a worker.

- `extract_boxed(text)`: content of the last top-level `\\boxed{...}` (or `\\fbox{...}`), with
  nested braces matched and escaped braces (`\\{`, `\\}`) ignored; also `\\boxed 5`.
- `extract_hash_answer(text)`: the GSM8K answer after the last `####`, thousands separators
  removed (`1,080` -> `1080`).
- `gold_to_latex(answer)`: a stored gold answer as one `\\boxed{}` string for math-verify
  (surrounding `$...$` removed, an already boxed answer unwrapped first).
- `sanitize_text(text)`: NUL bytes and lone surrogates removed, `\\fbox{` read as `\\boxed{`.
- `clean_output(text, limit)`: sanitized, then cut to the last `limit` characters (answers
  come last); says whether it cut.
- `marked_answer(text)`: the answer an output marks, as the verifier should read it, or None
  (below).

Marked answers. A reward that takes "the last number of the output" is one a policy learns to
game: a rambling completion that restates a number from the problem scores. So by default an
answer counts only where the output marks it, and only the marked part is parsed:

1. an output with a closed `\\boxed{...}` as it is: math-verify reads its boxes before
   anything else, all of them (hedging between two boxes is a set, not the answer), else
2. the last marker among `####` (GSM8K), "final answer ... is" / "final answer:", "answer is"
   and "answer:", followed by the rest of its line (or the next non-empty line when the
   marker ends its line), at most `MARKED_CHARS` characters.

math-verify's own anchors are looser ("answer" followed within 50 characters by a number, so
"from above answer, 4%" yields 4), which is why the marker is found here. A clock time in the
marked text (`7:12`) is kept whole, so that it is never read as the number before its colon,
and "the answer is not 2" marks nothing.
"""

from __future__ import annotations

import re

_BOXED = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_BRACE_TOKENS = re.compile(r"\\.|[{}]", re.DOTALL)
_BARE_ARGUMENT = re.compile(r"[ \t]+([^\s$]+)")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_MATH_DELIMS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))
_MARKERS = re.compile(
    r"^[ \t>*]*####"
    r"|\bfinal\s+answer\b[^\n]{0,40}?(?:\bis\b(?!\s+not\b)|:)"
    r"|\banswer\s+is\b(?!\s+not\b)"
    r"|\banswer\b\W{0,3}:",
    re.IGNORECASE | re.MULTILINE,
)
_CLOCK = re.compile(r"(?<![\d.:])(\d{1,2}:\d{2})(?![\d:])")
MARKED_CHARS = 200
"""Most characters read after a phrase marker: an answer, not a paragraph."""


def brace_pairs(text: str) -> dict[int, int]:
    """Index of each `{` that is closed -> index of its `}`, in one linear pass.

    A backslash escapes the next character, so `\\{` and `\\}` do not count while `\\\\{`
    (a LaTeX line break, then a brace) does. Unclosed `{` and stray `}` are left out.
    """
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for token in _BRACE_TOKENS.finditer(text):
        if token.group() == "{":
            stack.append(token.start())
        elif token.group() == "}" and stack:
            pairs[stack.pop()] = token.start()
    return pairs


def _boxed_argument(text: str, at: int, pairs: dict[int, int]) -> tuple[str, int] | None:
    """(argument, end) of the box command whose name ends at `at`; None if it has none."""
    i = at
    while i < len(text) and text[i] in " \t":
        i += 1
    if i < len(text) and text[i] == "{":
        close = pairs.get(i)
        return None if close is None else (text[i + 1 : close], close + 1)
    bare = _BARE_ARGUMENT.match(text, at)  # `\boxed 5`
    return None if bare is None else (bare.group(1), bare.end())


def extract_boxed(text: str) -> str | None:
    """Content of the last top-level `\\boxed{}`/`\\fbox{}` in `text`, stripped; None if none.

    `\\boxed{\\boxed{5}}` gives `\\boxed{5}` (the caller's parser unwraps it), and an unclosed
    `\\boxed{` is skipped, so a cut-off answer never yields a partial one. Linear time, so
    hostile inputs (thousands of unclosed boxes) cost no more than their length.
    """
    if "\\boxed" not in text and "\\fbox" not in text:
        return None
    pairs = brace_pairs(text)
    found: str | None = None
    covered_to = -1
    for match in _BOXED.finditer(text):
        if match.start() < covered_to:
            continue  # nested inside the previous top-level box
        got = _boxed_argument(text, match.end(), pairs)
        if got is not None:
            found, covered_to = got[0].strip(), got[1]
    return found


def extract_hash_answer(text: str) -> str | None:
    """GSM8K gold answer: what follows the last `####`, thousands separators removed."""
    at = text.rfind("####")
    if at < 0:
        return None
    answer = text[at + 4 :].strip()
    if not answer:
        return None
    if _THOUSANDS.match(answer):
        answer = answer.replace(",", "")
    return answer


def strip_math_delimiters(answer: str) -> str:
    """`$x$`, `$$x$$`, `\\(x\\)`, `\\[x\\]` -> `x`; anything else unchanged (stripped)."""
    answer = answer.strip()
    for left, right in _MATH_DELIMS:
        inner = answer[len(left) : len(answer) - len(right)]
        if (
            len(answer) >= len(left) + len(right)
            and answer.startswith(left)
            and answer.endswith(right)
            and left not in inner
        ):
            return inner.strip()
    return answer


def gold_to_latex(answer: str) -> str:
    """A stored gold answer as the `\\boxed{...}` string the verifier parses.

    An answer that is exactly one box is unwrapped first (`\\boxed{5}` -> `\\boxed{5}`, not
    `\\boxed{\\boxed{5}}`); anything else is boxed as it is.
    """
    answer = strip_math_delimiters(answer)
    for command in ("\\boxed{", "\\fbox{"):
        opening = len(command) - 1
        if answer.startswith(command) and brace_pairs(answer).get(opening) == len(answer) - 1:
            answer = answer[len(command) : -1]
            break
    return "\\boxed{" + answer + "}"


def sanitize_text(text: str) -> str:
    """Text every parser and pipe accepts: no NUL bytes, no lone surrogates (-> `?`), and
    `\\fbox{` spelled `\\boxed{` (math-verify only knows the latter)."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if "\\fbox{" in text:
        text = text.replace("\\fbox{", "\\boxed{")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def clean_output(text: str, limit: int) -> tuple[str, bool]:
    """(sanitized text, whether it was cut): at most `limit` characters, the tail kept because
    a completion's final answer comes at its end."""
    text = sanitize_text(text)
    if len(text) > limit:
        return text[-limit:], True
    return text, False


def has_boxed_answer(text: str) -> bool:
    """The format check: a closed, non-empty `\\boxed{}` answer is present."""
    return bool(extract_boxed(text))


def marked_answer(text: str) -> str | None:
    """The answer `text` marks (see the module docstring), ready for the verifier; else None."""
    if extract_boxed(text):
        return text  # math-verify reads every box first: hedging between boxes is a set
    last = max(_MARKERS.finditer(text), key=lambda m: m.start(), default=None)
    if last is None:
        return None
    rest = text[last.end() :]
    line, _, after = rest.partition("\n")
    if not line.strip(" \t*:$"):
        line = next((ln for ln in after.split("\n") if ln.strip()), "")
    line = line.strip(" \t*:")[:MARKED_CHARS]
    return _CLOCK.sub(r"$\\text{\1}$", line) if line else None
