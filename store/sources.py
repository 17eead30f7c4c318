"""Where a data set's rows come from: files (`.jsonl`, `.json`, `.parquet`, folders) or a
Hugging Face `datasets` data set from the local cache. Each row comes with where it is
(`file:line`, `file#index`) for messages, and a default source key.

- `.jsonl`: one object per line, blank lines allowed; key `file:line`.
- `.json`: one object (key: the file's path in the folder), or a list of objects (`file#index`).
- `.parquet`: one object per row, nested columns as dicts and lists (pyarrow, which streamlit
  already requires); key `file#index`.
- a folder: every such file under it, recursively, in sorted order.
- `hub`: `huggingface_hub.snapshot_download(..., local_files_only=True)` finds the data set's
  files in the local cache (at `revision`), and `datasets.load_dataset` reads `subset`/`split`
  from them; a local folder is read as it is (`load_from_disk` for one saved by
  `save_to_disk`). Nothing is downloaded: a data set missing from the cache is an error that
  says how to fetch it. Key `split#index`.

Every problem raises `DatasetError` naming the file (or data set), the line or row and the reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lppo.core.config.schema import DatasetSpec
from lppo.core.errors import UserError, resolved_against

SUFFIXES = (".json", ".jsonl", ".parquet")


class DatasetError(UserError):
    """A data file or row is unusable; the message names the file, the line and the reason."""

    def __init__(self, where: str, reason: str):
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


def spec_rows(spec: DatasetSpec) -> Iterator[RawRow]:
    """Every row of the data set `spec` names, from its path or from the hub cache."""
    if spec.hub is not None:
        yield from hub_rows(spec)
    else:
        yield from iter_rows(Path(spec.path))


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
        files = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES)
        if not files:
            raise DatasetError(str(path), "folder holds no .json, .jsonl or .parquet files")
        for file in files:
            yield from _file_rows(file, file.relative_to(path).as_posix())
    elif path.is_file():
        yield from _file_rows(path, path.name)
    else:
        raise DatasetError(str(path), f"no such file or folder{resolved_against(path)}")


def _file_rows(file: Path, name: str) -> Iterator[RawRow]:
    if file.suffix == ".parquet":
        yield from _parquet_rows(file, name)
        return
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




def _parquet_rows(file: Path, name: str) -> Iterator[RawRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(file)
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(str(file), f"cannot read parquet: {exc}") from None
    for index, row in enumerate(table.to_pylist()):
        yield RawRow(f"{file}#{index}", f"{name}#{index}", row)


# --------------------------------------------------------------------------------------------
# Hugging Face datasets, from the local cache
# --------------------------------------------------------------------------------------------


def hub_rows(spec: DatasetSpec) -> Iterator[RawRow]:
    """Rows of `spec.hub` (`subset`, `split`, `revision`) from the local cache, never fetched."""
    dataset = load_hub_split(spec)
    for index, row in enumerate(dataset):
        yield RawRow(f"{spec.source}#{index}", f"{spec.split}#{index}", dict(row))


def load_hub_split(spec: DatasetSpec) -> Any:
    """The `datasets.Dataset` of `spec.split`, from a local folder or the hub cache."""
    try:
        import datasets
    except ImportError:
        raise DatasetError(spec.source, "reading a hub data set needs the `datasets` package: "
                           "pip install 'lppo[datasets]'") from None
    assert spec.hub is not None
    folder = Path(spec.hub).expanduser()
    try:
        saved = any((folder / name).exists() for name in ("state.json", "dataset_dict.json"))
        if folder.is_dir() and saved:
            return _saved_split(datasets.load_from_disk(str(folder)), spec)
        if not folder.is_dir():
            folder = _cached_snapshot(spec)
        return datasets.load_dataset(str(folder), spec.subset, split=spec.split)
    except (ValueError, KeyError, FileNotFoundError, datasets.exceptions.DatasetNotFoundError) as exc:
        raise DatasetError(spec.source, f"cannot load: {exc}") from None


def _saved_split(saved: Any, spec: DatasetSpec) -> Any:
    """A `save_to_disk` folder holds one split (a Dataset) or several (a DatasetDict)."""
    if not hasattr(saved, "keys"):
        return saved
    if spec.split not in saved:
        raise DatasetError(spec.source, f"no split {spec.split!r}; it has {', '.join(saved)}")
    return saved[spec.split]


def _cached_snapshot(spec: DatasetSpec) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(spec.hub, repo_type="dataset", revision=spec.revision,
                                      local_files_only=True))
    except LocalEntryNotFoundError:
        at = f" --revision {spec.revision}" if spec.revision else ""
        raise DatasetError(spec.source, "not in the local Hugging Face cache (lppo never "
                           f"downloads data): fetch it once with `hf download --repo-type "
                           f"dataset {spec.hub}{at}`") from None
