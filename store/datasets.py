"""Data set files -> `SampleRecord`s -> the ledger, with errors that point at the bad row.

Formats (`DatasetSpec.format`), each with field names overridable in the config:

- `gsm8k`: `question`, and `answer` = worked solution ending in `#### N`. The final answer is
  N (thousands separators dropped); the stored solution is the text before `####` without
  the `<<48/2=24>>` calculator annotations.
- `math`: `problem`, and `solution` with the final answer in the last `\\boxed{...}` (or
  `\\fbox{...}`); one JSON file per problem (a folder, MATH's layout) or JSONL.
- `generic`: `problem`, `answer`, and optionally `solution`.
- `verl`: verl's preprocessed parquet rows: `extra_info.question` (else the last user message
  of the chat `prompt`), `reward_model.ground_truth`, and optionally `extra_info.answer` as the
  solution (a GSM8K-style solution loses its `####` line and calculator annotations).

A dotted field name (`reward_model.ground_truth`) reads a nested field. Rows come from files
or the Hugging Face cache (store/sources.py). The source key of a row is `id_field` when set,
else where the row sits (store/sources.py).

Every problem raises `DatasetError` naming the file, the line and the reason, before anything
is written; `import_datasets` then imports all of them in one transaction, so a failed import
leaves nothing behind. Duplicate problems (same text up to whitespace) are skipped and reported.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from lppo.core.answers import extract_boxed, extract_hash_answer
from lppo.core.config.schema import DatasetSpec
from lppo.core.errors import UserError
from lppo.core.resources import SHIPPED_DATA
from store.records import SampleRecord
from store.sources import DatasetError, RawRow, spec_rows

log = logging.getLogger(__name__)

META_MAX_CHARS = 200  # longer string fields are left out of `meta`

ROW_COUNTS = {"gsm8k_train": 7473, "gsm8k_test": 1319, "math_train": 7498, "math500": 500,
              "aime24": 30, "aime25": 30, "amc23": 40}


def shipped(name: str, **overrides: Any) -> DatasetSpec:
    """The `DatasetSpec` of a data set lppo ships (names: `lppo.core.resources.SHIPPED_DATA`)."""
    if name not in SHIPPED_DATA:
        raise UserError(f"unknown shipped data set {name!r}; choose from {', '.join(SHIPPED_DATA)}")
    return DatasetSpec(name=name, shipped=name, **overrides)


# --------------------------------------------------------------------------------------------
# rows -> records
# --------------------------------------------------------------------------------------------

CALCULATOR = re.compile(r"<<[^<>]*>>")


def read_dataset(spec: DatasetSpec) -> list[SampleRecord]:
    """All rows of a data set as records; raises `DatasetError` at the first bad row."""
    fields = _fields(spec)
    records: list[SampleRecord] = []
    seen: dict[str, str] = {}
    excluded = set(spec.exclude)
    for row in spec_rows(spec):
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
        raise DatasetError(spec.source, "no rows")
    return records


DEFAULT_FIELDS: dict[str, dict[str, str | None]] = {
    "gsm8k": {"problem": "question", "solution": "answer", "answer": None},
    "math": {"problem": "problem", "solution": "solution", "answer": None},
    "generic": {"problem": "problem", "solution": "solution", "answer": "answer"},
    "verl": {"problem": "extra_info.question", "solution": "extra_info.answer",
             "answer": "reward_model.ground_truth"},
}
OPTIONAL_SOLUTION = ("generic", "verl")


def _fields(spec: DatasetSpec) -> dict[str, str | None]:
    defaults = DEFAULT_FIELDS[spec.format]
    return {
        "problem": spec.problem_field or defaults["problem"],
        "solution": spec.solution_field or defaults["solution"],
        "answer": spec.answer_field or defaults["answer"],
        "id": spec.id_field,
    }


def field_value(data: dict, field: str | None) -> Any:
    """`data[field]`, or for a dotted name absent as a key, the nested value (else None)."""
    if not field:
        return None
    if field in data:
        return data[field]
    value: Any = data
    for part in field.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _verl_prompt(data: dict) -> str | None:
    """The last user message of verl's chat `prompt` (a list of {role, content})."""
    messages = data.get("prompt")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return message.get("content")
    return None


def _record(spec: DatasetSpec, fields: dict[str, str | None], row: RawRow) -> SampleRecord:
    data = row.data
    if not isinstance(data, dict):
        raise DatasetError(row.where, f"expected a JSON object, got {type(data).__name__}")
    raw_problem = field_value(data, fields["problem"])
    if spec.format == "verl" and raw_problem is None:
        raw_problem = _verl_prompt(data)
    problem = _text(raw_problem, fields["problem"], row, required=True)
    solution = _text(field_value(data, fields["solution"]), fields["solution"], row,
                     required=spec.format not in OPTIONAL_SOLUTION)
    if fields["answer"] is not None:
        answer = _answer_value(data, fields["answer"], row)
        gsm8k_style = spec.format == "verl" and "####" in (solution or "")
        if (spec.format == "gsm8k" or gsm8k_style) and solution is not None:
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
    used = {f.split(".")[0] for f in fields.values() if f}
    meta = {k: v for k, v in data.items() if k not in used and _small(v)}
    return SampleRecord(dataset=spec.name, source_key=key, problem=problem, answer=answer,
                        solution=solution, meta=meta)


def _key(fields: dict[str, str | None], row: RawRow) -> str:
    """The row's source key: its id field, else where it sits in the files."""
    if fields["id"] is None:
        return row.key
    value = field_value(row.data, fields["id"]) if isinstance(row.data, dict) else None
    if value is None or value == "":
        raise DatasetError(row.where, f"missing id field {fields['id']!r}")
    return str(value)


def _text(value: Any, field: str | None, row: RawRow, *, required: bool) -> str | None:
    """`value` (of `field`) as stripped text; None, or an error when `required`, if empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise DatasetError(row.where, f"missing or empty field {field!r}")
        return None
    if not isinstance(value, str):
        raise DatasetError(row.where, f"field {field!r}: expected text, got {type(value).__name__}")
    return value.strip()


def _answer_value(data: dict, field: str, row: RawRow) -> str:
    value = field_value(data, field)
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
    at = text.rfind("####")
    if at < 0:
        raise DatasetError(where, "GSM8K solution has no '#### <answer>' line")
    answer = extract_hash_answer(text)  # the verifier's own reading of the gold answer
    if answer is None:
        raise DatasetError(where, "GSM8K solution has an empty '####' answer")
    return CALCULATOR.sub("", text[:at]).rstrip(), normalize_answer(answer)


# --------------------------------------------------------------------------------------------
# import
# --------------------------------------------------------------------------------------------


def read_datasets(specs: Sequence[DatasetSpec]) -> list[SampleRecord]:
    """Every row of every data set, checked (names unique, each row valid) before any write."""
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise UserError(f"data set names must be unique, got {names}")
    return [rec for spec in specs for rec in read_dataset(spec)]


def import_datasets(ledger, specs: Sequence[DatasetSpec]):
    """Read every data set (any bad row fails before a write), then import them all in one
    transaction: `import_records`."""
    return import_records(ledger, read_datasets(specs))


def import_records(ledger, records: Sequence[SampleRecord]):
    """Import records `read_datasets` read, in one transaction. Returns
    `store.ledger.ImportResult`; duplicates and overlaps are logged."""
    result = ledger.import_samples(list(records))
    for name, stats in result.datasets.items():
        if stats.duplicates:
            key, first = stats.duplicates[0]
            log.warning("%s: %d duplicate problem(s) skipped (e.g. %s repeats %s)",
                        name, len(stats.duplicates), key, first)
        for other, count in stats.overlaps.items():
            log.warning("%s: %d problem(s) also in data set %r", name, count, other)
    return result
