"""Data set files -> `SampleRecord`s -> the ledger, with errors that point at the bad row.

Formats (`DatasetSpec.format`), each with field names overridable in the config:

- `gsm8k`: `question`, and `answer` = worked solution ending in `#### N`. The final answer is
  N (thousands separators dropped); the stored solution is the text before `####` without
  the `<<48/2=24>>` calculator annotations.
- `math`: `problem`, and `solution` with the final answer in the last `\\boxed{...}` (or
  `\\fbox{...}`); one JSON file per problem (a folder, MATH's layout) or JSONL.
- `generic`: `problem`, `answer`, and optionally `solution`.

Files: `.jsonl` (one object per line, blank lines allowed), `.json` (one object, or a list of
objects), or a folder of such files (read recursively in sorted order). The source key of a
row is `id_field` when set, else the file path relative to the folder (one-object files),
`file:line` (JSONL) or `file#index` (JSON lists).

Every problem raises `DatasetError` naming the file, the line and the reason, before anything
is written; `import_datasets` then imports all of them in one transaction, so a failed import
leaves nothing behind. Duplicate problems (same text up to whitespace) are skipped and reported.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lppo.core.answers import extract_boxed
from lppo.core.config.schema import DatasetSpec
from lppo.core.errors import UserError
from store.records import SampleRecord

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
META_MAX_CHARS = 200  # longer string fields are left out of `meta`

SHIPPED: dict[str, dict[str, Any]] = {
    "gsm8k_train": {"path": "gsm8k/train.jsonl", "format": "gsm8k"},
    "gsm8k_test": {"path": "gsm8k/test.jsonl", "format": "gsm8k"},
    # Two MATH train solutions end in an empty \boxed{}: no gold answer, so they are left out.
    "math_train": {"path": "math_train", "format": "math",
                   "exclude": ["train/number_theory/7115.json", "train/number_theory/7117.json"]},
    "math500": {"path": "math500/test.jsonl", "format": "math", "answer_field": "answer",
                "id_field": "unique_id"},
    "aime24": {"path": "aime24/test.jsonl", "format": "generic", "id_field": "id"},
    "aime25": {"path": "aime25/test.jsonl", "format": "generic", "id_field": "id"},
    "amc23": {"path": "amc23/test.jsonl", "format": "generic", "id_field": "id"},
}
"""The data sets under data/ (see data/SOURCES.md), as `DatasetSpec` fields."""

ROW_COUNTS = {"gsm8k_train": 7473, "gsm8k_test": 1319, "math_train": 7498, "math500": 500,
              "aime24": 30, "aime25": 30, "amc23": 40}


class DatasetError(UserError):
    """A data file or row is unusable; the message names the file, the line and the reason."""

    def __init__(self, where: str, reason: str):
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


def shipped(name: str, data_dir: Path = DATA_DIR, **overrides: Any) -> DatasetSpec:
    """The `DatasetSpec` of a data set shipped under data/ (names: `SHIPPED`)."""
    if name not in SHIPPED:
        raise UserError(f"unknown shipped data set {name!r}; choose from {', '.join(SHIPPED)}")
    fields = {**SHIPPED[name], **overrides}
    fields["path"] = data_dir / fields["path"]
    return DatasetSpec(name=name, **fields)


# --------------------------------------------------------------------------------------------
# reading files
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawRow:
    where: str
    """`file:line`, for messages."""
    key: str
    """Default source key."""
    data: Any


def iter_rows(path: Path) -> Iterator[RawRow]:
    """Every JSON object of a .jsonl/.json file, or of all such files under a folder."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".json", ".jsonl"))
        if not files:
            raise DatasetError(str(path), "folder holds no .json or .jsonl files")
        for file in files:
            yield from _file_rows(file, file.relative_to(path).as_posix())
    elif path.is_file():
        yield from _file_rows(path, path.name)
    else:
        raise DatasetError(str(path), "no such file or folder")


def _file_rows(file: Path, name: str) -> Iterator[RawRow]:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(str(file), f"cannot read: {exc}") from None
    if file.suffix == ".jsonl":
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                yield RawRow(f"{file}:{lineno}", f"{name}:{lineno}", _loads(line, file, lineno))
        return
    start = len(text) - len(text.lstrip())
    if text[start:start + 1] != "[":
        yield RawRow(f"{file}:{_line(text, start)}", name, _loads(text, file, 1))
        return
    yield from _array_rows(text, file, name, start + 1)


def _array_rows(text: str, file: Path, name: str, pos: int) -> Iterator[RawRow]:
    """Items of a top-level JSON list, each with the line it starts on."""
    decoder = json.JSONDecoder()
    index = 0
    while True:
        pos = _skip(text, pos, ",")
        if pos >= len(text):
            raise DatasetError(f"{file}:{_line(text, pos)}", "unterminated JSON list")
        if text[pos] == "]":
            if text[pos + 1:].strip():
                raise DatasetError(f"{file}:{_line(text, pos)}", "extra data after the list")
            return
        try:
            item, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{file}:{exc.lineno}", f"invalid JSON: {exc.msg}") from None
        yield RawRow(f"{file}:{_line(text, pos)}", f"{name}#{index}", item)
        index += 1
        pos = end


def _skip(text: str, pos: int, also: str = "") -> int:
    while pos < len(text) and (text[pos].isspace() or text[pos] in also):
        pos += 1
    return pos


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _loads(text: str, file: Path, line: int) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{file}:{line + exc.lineno - 1}", f"invalid JSON: {exc.msg}") from None


# --------------------------------------------------------------------------------------------
# rows -> records
# --------------------------------------------------------------------------------------------

CALCULATOR = re.compile(r"<<[^<>]*>>")
THOUSANDS = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")


def read_dataset(spec: DatasetSpec) -> list[SampleRecord]:
    """All rows of a data set as records; raises `DatasetError` at the first bad row."""
    fields = _fields(spec)
    records: list[SampleRecord] = []
    seen: dict[str, str] = {}
    excluded = set(spec.exclude)
    for row in iter_rows(Path(spec.path)):
        if spec.limit is not None and len(records) >= spec.limit:
            break
        if _key(fields, row) in excluded:
            continue
        rec = _record(spec, fields, row)
        if rec.source_key in seen:
            first = seen[rec.source_key]
            raise DatasetError(row.where, f"source key {rec.source_key!r} repeats row {first}")
        seen[rec.source_key] = row.where
        records.append(rec)
    if not records:
        raise DatasetError(str(spec.path), "no rows")
    return records


def _fields(spec: DatasetSpec) -> dict[str, str | None]:
    gsm8k = spec.format == "gsm8k"
    return {
        "problem": spec.problem_field or ("question" if gsm8k else "problem"),
        "solution": spec.solution_field or ("answer" if gsm8k else "solution"),
        "answer": spec.answer_field or ("answer" if spec.format == "generic" else None),
        "id": spec.id_field,
    }


def _record(spec: DatasetSpec, fields: dict[str, str | None], row: RawRow) -> SampleRecord:
    data = row.data
    if not isinstance(data, dict):
        raise DatasetError(row.where, f"expected a JSON object, got {type(data).__name__}")
    problem = _text(data, fields["problem"], row, required=True)
    solution = _text(data, fields["solution"], row, required=spec.format != "generic")
    if fields["answer"] is not None:
        answer = _answer_value(data, fields["answer"], row)
        if spec.format == "gsm8k" and solution is not None:
            solution = gsm8k_split(solution, row.where)[0]
    elif spec.format == "gsm8k":
        solution, answer = gsm8k_split(solution, row.where)
    else:
        answer = extract_boxed(solution)
        if not answer:
            field = fields["solution"]
            what = "an empty last" if answer == "" else "no"
            raise DatasetError(row.where, f"{what} \\boxed{{...}} answer in field {field!r}")
    key = _key(fields, row)
    used = {f for f in fields.values() if f}
    meta = {k: v for k, v in data.items() if k not in used and _small(v)}
    return SampleRecord(dataset=spec.name, source_key=key, problem=problem, answer=answer,
                        solution=solution, meta=meta)


def _key(fields: dict[str, str | None], row: RawRow) -> str:
    """The row's source key: its id field, else where it sits in the files."""
    if fields["id"] is None:
        return row.key
    value = row.data.get(fields["id"]) if isinstance(row.data, dict) else None
    if value is None or value == "":
        raise DatasetError(row.where, f"missing id field {fields['id']!r}")
    return str(value)


def _text(data: dict, field: str | None, row: RawRow, *, required: bool) -> str | None:
    value = data.get(field) if field else None
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise DatasetError(row.where, f"missing or empty field {field!r}")
        return None
    if not isinstance(value, str):
        raise DatasetError(row.where, f"field {field!r}: expected text, got {type(value).__name__}")
    return value.strip()


def _answer_value(data: dict, field: str, row: RawRow) -> str:
    value = data.get(field)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        got = "nothing" if value is None else type(value).__name__
        raise DatasetError(row.where, f"field {field!r}: expected text or a number, got {got}")
    answer = normalize_answer(value)
    if not answer:
        raise DatasetError(row.where, f"field {field!r}: empty answer")
    return answer


def _small(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= META_MAX_CHARS
    return value is None or isinstance(value, (bool, int, float))


def normalize_answer(value: str | int | float) -> str:
    """Final answer as text: integral floats as integers, integers without leading zeros."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    if re.fullmatch(r"0+\d+", text):
        return text.lstrip("0") or "0"
    return text


def gsm8k_split(text: str, where: str) -> tuple[str, str]:
    """GSM8K worked solution -> (solution without calculator annotations, final answer)."""
    body, sep, tail = text.rpartition("####")
    if not sep:
        raise DatasetError(where, "GSM8K solution has no '#### <answer>' line")
    answer = tail.strip()
    if THOUSANDS.match(answer):
        answer = answer.replace(",", "")
    if not answer:
        raise DatasetError(where, "GSM8K solution has an empty '####' answer")
    return CALCULATOR.sub("", body).rstrip(), normalize_answer(answer)


# --------------------------------------------------------------------------------------------
# import
# --------------------------------------------------------------------------------------------


def import_datasets(ledger, specs: Sequence[DatasetSpec]):
    """Read every data set (any bad row fails before a write), then import them all in one
    transaction. Returns `store.ledger.ImportResult`; duplicates and overlaps are logged."""
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise UserError(f"data set names must be unique, got {names}")
    records = [rec for spec in specs for rec in read_dataset(spec)]
    result = ledger.import_samples(records)
    for name, stats in result.datasets.items():
        if stats.duplicates:
            key, first = stats.duplicates[0]
            log.warning("%s: %d duplicate problem(s) skipped (e.g. %s repeats %s)",
                        name, len(stats.duplicates), key, first)
        for other, count in stats.overlaps.items():
            log.warning("%s: %d problem(s) also in data set %r", name, count, other)
    return result
