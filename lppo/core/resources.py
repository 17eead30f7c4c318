"""The files lppo ships and reads at run time, found through the installed package.

What ships: the example configs (`configs/*.toml`), the data sets of `data/` (benchmarks and the
GSM8K/MATH training sets, with their licenses and `data/SOURCES.md`) and the SQL examples of
`docs/queries.md` (the dashboard's example queries).

Where they are: a wheel (or `pip install .`) carries them as package data under
`lppo/_shipped/`, copied there by the build step in `setup.py`; an editable install of a source
checkout has no such folder, and reads them where they sit, at the checkout's root. Nothing else
reads files relative to the checkout, so an installed `lppo` works from any working directory.
"""

from __future__ import annotations

import functools
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from lppo.core.errors import UserError

PACKAGED = Path(__file__).resolve().parents[1] / "_shipped"
"""`lppo/_shipped/`: present in an installed wheel, absent in a source checkout."""
CHECKOUT = Path(__file__).resolve().parents[2]
"""The source tree's root, for an editable install."""
SHIPPED_PATHS = ("configs", "data", "docs/queries.md")
"""What `setup.py` copies into `lppo/_shipped/`, relative to the repository root."""

SHIPPED_DATA: dict[str, dict[str, Any]] = {
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
"""The data sets under data/ (see data/SOURCES.md), as `DatasetSpec` fields (path relative to
the data folder)."""


def shipped_root() -> Path:
    """The folder holding `configs/`, `data/` and `docs/`: the package's, else the checkout's."""
    if PACKAGED.is_dir():
        return PACKAGED
    if all((CHECKOUT / rel).exists() for rel in SHIPPED_PATHS):
        return CHECKOUT
    raise UserError(f"lppo's shipped files ({', '.join(SHIPPED_PATHS)}) are in neither "
                    f"{PACKAGED} nor {CHECKOUT}: reinstall lppo")


def shipped_file(relative: str) -> Path:
    """A shipped file or folder by its path in the repository (`configs/demo.toml`)."""
    path = shipped_root() / relative
    if not path.exists():
        raise UserError(f"{relative}: not among lppo's shipped files (looked in {path.parent})")
    return path


def data_dir() -> Path:
    """The shipped `data/` folder."""
    return shipped_file("data")


def shipped_dataset_fields(name: str) -> dict[str, Any]:
    """`SHIPPED_DATA[name]` with its path made absolute; a clear error for an unknown name."""
    if name not in SHIPPED_DATA:
        raise UserError(f"unknown shipped data set {name!r}; choose from {', '.join(SHIPPED_DATA)}")
    fields = dict(SHIPPED_DATA[name])
    fields["path"] = data_dir() / fields["path"]
    return fields


@functools.cache
def code_version() -> str:
    """The package version, plus the git revision when lppo runs from a git checkout:
    `0.1.0+g1a2b3c4d5e6f`, with `.dirty` when tracked files have uncommitted changes (recorded
    as `runs.code_version` and sent to trackers). Asked once per process: the code a process
    runs does not change under it."""
    try:
        base = version("lppo")
    except PackageNotFoundError:
        base = "unknown"
    if PACKAGED.is_dir() or not (CHECKOUT / ".git").exists():
        return base
    git = ["git", "-C", str(CHECKOUT)]
    try:
        rev = _run([*git, "rev-parse", "--short=12", "HEAD"])
        dirty = _run([*git, "status", "--porcelain", "--untracked-files=no"])
    except (OSError, subprocess.SubprocessError):
        return base  # no git program, or not a repository after all
    return f"{base}+g{rev}{'.dirty' if dirty else ''}"


def _run(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True, timeout=10,
                          check=True).stdout.strip()
