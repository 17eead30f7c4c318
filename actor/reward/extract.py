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
- `clean_output(text, limit)`: NUL bytes and lone surrogates removed, then cut to the last
  `limit` characters (answers come last); says whether it cut.
"""

from __future__ import annotations

import re

_BOXED = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_MATH_DELIMS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))


def _brace_span(text: str, open_at: int) -> int | None:
    """Index just past the `}` matching the `{` at `open_at`; None if it is never closed.

    A backslash escapes the next character, so `\\{` and `\\}` do not count while `\\\\{`
    (a LaTeX line break, then a brace) does.
    """
    depth = 0
    i = open_at
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def _boxed_at(text: str, start: int, end_of_cmd: int) -> tuple[str, int] | None:
    """(content, end) of the boxed command whose name ends at `end_of_cmd`, or None."""
    i = end_of_cmd
    while i < len(text) and text[i] in " \t":
        i += 1
    if i < len(text) and text[i] == "{":
        end = _brace_span(text, i)
        if end is None:
            return None
        return text[i + 1 : end - 1], end
    if i == end_of_cmd:  # `\boxed5` is not a command form we accept
        return None
    match = re.match(r"[^\s$]+", text[i:])
    if match is None:
        return None
    return match.group(0), i + match.end()


def extract_boxed(text: str) -> str | None:
    """Content of the last top-level `\\boxed{}`/`\\fbox{}` in `text`, stripped; None if none.

    `\\boxed{\\boxed{5}}` gives `\\boxed{5}` (the caller's parser unwraps it), and an unclosed
    `\\boxed{` is skipped, so a cut-off answer never yields a partial one.
    """
    found: str | None = None
    covered_to = -1
    for match in _BOXED.finditer(text):
        if match.start() < covered_to:
            continue  # nested inside the previous top-level box
        got = _boxed_at(text, match.start(), match.end())
        if got is None:
            continue
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
    """A stored gold answer as the `\\boxed{...}` string the verifier parses."""
    answer = strip_math_delimiters(answer)
    boxed = extract_boxed(answer)
    if boxed is not None and answer.lstrip().startswith(("\\boxed", "\\fbox")):
        answer = boxed
    return "\\boxed{" + answer + "}"


def clean_output(text: str, limit: int) -> tuple[str, bool]:
    """(text safe to parse, whether it was cut): no NULs or lone surrogates, at most `limit` chars.

    The tail is kept because a completion's final answer comes at its end.
    """
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    if len(text) > limit:
        return text[-limit:], True
    return text, False


def has_boxed_answer(text: str) -> bool:
    """The format check: a closed, non-empty `\\boxed{}` answer is present."""
    return bool(extract_boxed(text))
