"""House rules, checked: modules under ~600 lines, functions under ~80; the
product packages and the benchmarks never import from `tests`; code cites only files of the
repository (no design document outside it, no issue numbers, no paths that do not exist)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("actor", "learner", "store", "dashboard", "lppo", "bench")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _sources():
    for pkg in PACKAGES:
        yield from sorted((ROOT / pkg).rglob("*.py"))


def test_modules_are_short():
    long = [f"{p.relative_to(ROOT)} ({n})" for p in _sources()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert long == []


def test_functions_are_short():
    long = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n})")
    assert long == []


def _imported_modules(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_nothing_outside_tests_imports_from_tests():
    """Helpers the product or a benchmark needs live in the product (`lppo.testing.postgres`,
    `lppo.testing.simulate`, `lppo.testing.browser`): `tests/` is not installed."""
    found = [f"{path.relative_to(ROOT)}: {name}" for path in _sources()
             for name in _imported_modules(ast.parse(path.read_text()))
             if name == "tests" or name.startswith("tests.")]
    assert found == []


CITED_PATH = re.compile(r"\b((?:actor|learner|store|dashboard|lppo|bench|tests|docs|configs|data|"
                        r"scripts)/[\w/.-]+\.(?:py|md|toml|jsonl|sh))")
CITED_DOC = re.compile(r"(?<![\w/.-])([\w/.-]*\w\.md)\b")
"""Any Markdown file named in code, with or without a folder."""
OUTSIDE = re.compile(r"(?<![\w.])\.\./[\w/.-]+")
"""A path that climbs out of the repository."""


def _repository_docs() -> set[str]:
    return {p.name for p in ROOT.rglob("*.md")
            if not {".venv", ".git", "runs", "node_modules"} & set(p.relative_to(ROOT).parts)}


def test_code_cites_only_files_of_the_repository():
    """Users have the repository and nothing else: every Markdown file code names is one of
    the repository's (the design document is docs/design.md), no path climbs out of it, no
    issue numbers, no repository path that does not exist."""
    docs, bad = _repository_docs(), []
    for path in [*_sources(), *sorted((ROOT / "tests").rglob("*.py"))]:
        text = path.read_text()
        where = path.relative_to(ROOT)
        bad += [f"{where}: cites {m.group(1)}, which the repository does not have"
                for m in CITED_DOC.finditer(text)
                if not (ROOT / m.group(1)).exists() and Path(m.group(1)).name not in docs]
        bad += [f"{where}: cites {m.group()}, outside the repository"
                for m in OUTSIDE.finditer(text)]
        bad += [f"{where}: cites {m.group()}" for m in re.finditer(r"\bissue \d+", text)]
        bad += [f"{where}: cites {m.group(1)}, which does not exist"
                for m in CITED_PATH.finditer(text) if not (ROOT / m.group(1)).exists()]
    assert bad == []


def test_module_level_repository_roots_point_at_the_repository():
    """A module that finds the checkout from its own path (`ROOT = parents[k]`) must still find
    it after a move: `lppo.testing.screenshots` once pointed inside `lppo/`."""
    import importlib

    for name in ("lppo.testing.screenshots", "lppo.core.resources"):
        module = importlib.import_module(name)
        root = getattr(module, "ROOT", None) or module.CHECKOUT
        assert (root / "pyproject.toml").is_file(), f"{name}: {root}"
