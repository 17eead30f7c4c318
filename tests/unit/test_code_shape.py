"""House rules from DESIGN.md 8, checked: modules under ~600 lines, functions under ~80."""

from __future__ import annotations

import ast

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
