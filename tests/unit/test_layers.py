"""The house reads as layers, and no import runs back up them.

    shell        lppo.cli, lppo.commands, lppo.launcher, lppo.progress, lppo.demo
    processes    actor/, learner/, dashboard/
    ledger       store/
    core         lppo.core (config, vocabularies, wire, transport, weight files, errors, ...)

A module imports only its own layer and the layers below. Within the processes: the actor and
the dashboard import no other process; the learner imports the actor's verifier and prompt
builder only (it certifies expert prefixes with the same rules, and builds the same prompts, as
the actor). `lppo.testing` sits beside the whole house: it may import anything, and nothing of
the product imports it. Every import counts, including those inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

SHELL, PROCESSES, LEDGER, CORE = 3, 2, 1, 0
LEARNER_MAY_USE = ("actor.reward", "actor.prompts")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def layer_of(module: str) -> int | None:
    """The layer of a project module; None for `lppo.testing` and for anything not ours."""
    if _within(module, "lppo.testing"):
        return None
    if _within(module, "lppo.core"):
        return CORE
    if _within(module, "store"):
        return LEDGER
    if any(_within(module, p) for p in ("actor", "learner", "dashboard")):
        return PROCESSES
    if _within(module, "lppo"):
        return SHELL
    return None


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            for alias in node.names:  # `from lppo import cli` imports lppo.cli
                yield node.lineno, f"{node.module}.{alias.name}"


def violations(module: str, imported: str) -> str | None:
    """Why `module` may not import `imported`, or None where it may."""
    if _within(module, "lppo.testing"):
        return None
    if _within(imported, "lppo.testing"):
        return "the product imports test tooling"
    mine, theirs = layer_of(module), layer_of(imported)
    if mine is None or theirs is None or imported == "lppo":
        return None
    if theirs > mine:
        return "runs back up the layers"
    if mine == theirs == PROCESSES:
        top, other = module.split(".")[0], imported.split(".")[0]
        if top == other:
            return None
        if top == "learner" and any(_within(imported, p) for p in LEARNER_MAY_USE):
            return None
        return f"{top}/ imports another process ({other}/)"
    return None


def _product_sources():
    for pkg in ("actor", "learner", "store", "dashboard", "lppo"):
        yield from sorted((ROOT / pkg).rglob("*.py"))


def test_no_import_runs_back_up_the_layers():
    bad = []
    for path in _product_sources():
        module = _module_name(path)
        for line, imported in _imports(path):
            if why := violations(module, imported):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {imported}: {why}")
    assert bad == []


@pytest.mark.parametrize(("module", "imported", "allowed"), [
    ("store.ledger", "lppo.core.wire", True),
    ("store.ledger", "learner.io", False),
    ("lppo.core.wire", "store.models", False),
    ("lppo.core.config.schema", "lppo.cli", False),
    ("learner.certify", "actor.reward", True),
    ("learner.loop", "actor.engine", False),
    ("actor.evaluate", "learner.trainer", False),
    ("dashboard.data", "actor.reward", False),
    ("lppo.commands.run", "learner.main", True),
    ("lppo.demo.pipeline", "lppo.testing.postgres", False),
    ("lppo.testing.simulate", "store.ledger", True),
])
def test_the_rule_itself(module, imported, allowed):
    """The checker can fail: each kind of arrow is judged as the docstring says."""
    assert (violations(module, imported) is None) is allowed
