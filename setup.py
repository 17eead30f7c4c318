"""Build step: the wheel carries the files lppo reads at run time (lppo/core/resources.py).

Everything else about the package is declared in pyproject.toml. `configs/`, `data/` and
`docs/queries.md` stay at the repository's root (where users read them) and are copied into the
built package as `lppo/_shipped/`; an editable install reads them in place instead.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED_PATHS = ("configs", "data", "docs/queries.md")  # as lppo.core.resources.SHIPPED_PATHS


class BuildWithShippedFiles(build_py):
    """`build_py`, then a copy of `SHIPPED_PATHS` into `lppo/_shipped/` of the build folder."""

    def run(self):
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "lppo" / "_shipped"
        for rel in SHIPPED_PATHS:
            source, dest = ROOT / rel, target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, dest, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(source, dest)


setup(cmdclass={"build_py": BuildWithShippedFiles})
