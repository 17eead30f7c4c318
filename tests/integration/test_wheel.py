"""The built wheel is a working lppo: installed into a fresh virtual environment (offline, its
dependencies taken from this environment), `lppo` runs from a folder outside the checkout and
finds the shipped configs, data sets and example queries through the package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from lppo.core.resources import CHECKOUT, SHIPPED_PATHS

pytestmark = pytest.mark.slow


def _run(*command: str | Path, cwd: Path, env: dict | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"{command}: {proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def _tracked_copy(dest: Path) -> Path:
    """The checkout's tracked files (what a clean clone holds), copied to `dest`."""
    listed = subprocess.run(["git", "-C", str(CHECKOUT), "ls-files", "-z"], capture_output=True,
                            check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(CHECKOUT / rel, target)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed (no index, no dependencies resolved): its bin/."""
    if shutil.which("git") is None or not (CHECKOUT / ".git").exists():
        pytest.skip("needs a git checkout to build from its tracked files")
    root = tmp_path_factory.mktemp("wheel")
    source = _tracked_copy(root / "src")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", root / "dist", source, cwd=root)
    (wheel,) = (root / "dist").glob("lppo-*.whl")
    _run(sys.executable, "-m", "venv", "--without-pip", root / "venv", cwd=root)
    venv_python = root / "venv" / "bin" / "python"
    purelib = _run(venv_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                   cwd=root).stdout.strip()
    # The dependencies: this environment's site-packages on the path, after the venv's own
    # (a .pth line adds the folder; the editable install's finder there is not activated).
    Path(purelib, "_lppo_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(sys.executable, "-m", "pip", "--python", venv_python, "install", "--no-deps",
         "--no-index", "-q", wheel, cwd=root)
    return root / "venv" / "bin"


def test_the_wheel_carries_the_shipped_files_and_no_tests(tmp_path, installed):
    (wheel,) = (installed.parent.parent / "dist").glob("lppo-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for rel in ("configs/demo.toml", "data/SOURCES.md", "data/math500/test.jsonl",
                "docs/queries.md"):
        assert f"lppo/_shipped/{rel}" in names, rel
    assert not any(n.startswith(("tests/", "bench/", ".venv")) for n in names)
    for rel in SHIPPED_PATHS:  # everything lppo/core/resources.py says it ships
        assert any(n.startswith(f"lppo/_shipped/{rel}") for n in names), rel


def test_the_build_step_copies_what_the_package_looks_for():
    """setup.py cannot import lppo while it builds it, so it names the shipped paths itself:
    they must be the ones lppo/core/resources.py reads."""
    import ast

    tree = ast.parse((CHECKOUT / "setup.py").read_text())
    (value,) = [node.value for node in tree.body if isinstance(node, ast.Assign)
                and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["SHIPPED_PATHS"]]
    assert ast.literal_eval(value) == SHIPPED_PATHS


def test_installed_lppo_runs_outside_the_checkout(tmp_path, installed):
    env = {**os.environ, "PATH": f"{installed}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    where = _run(installed / "python", "-c",
                 "import lppo, store, lppo.core.resources as r; "
                 "print(lppo.__file__); print(store.__file__); print(r.shipped_root())",
                 cwd=tmp_path, env=env).stdout.split()
    site = str(installed.parent)
    assert all(p.startswith(site) for p in where), where  # the wheel's copy, not the checkout
    assert where[2].endswith("lppo/_shipped")
    out = _run(installed / "lppo", "config", "check", "demo", cwd=tmp_path, env=env).stdout
    assert out.startswith("demo: ok (run 'demo'")
    model = tmp_path / "model"  # what --strict looks for in a model folder
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "tokenizer.json").write_text("{}")
    strict = _run(installed / "lppo", "config", "check", "math-qwen2.5-math-7b", "--strict",
                  "--set", f"model.path={model}", cwd=tmp_path, env=env, timeout=300)
    assert "math500: 500 rows read from" in strict.stdout
    assert "aime24: 30 rows read from" in strict.stdout and "lppo/_shipped/data" in strict.stdout
    assert _run(installed / "lppo", "eval", "--help", cwd=tmp_path, env=env).stdout.startswith(
        "usage: lppo eval")
    queries = _run(installed / "python", "-c",
                   "from dashboard import examples; print(len(examples.load()))",
                   cwd=tmp_path, env=env).stdout
    assert int(queries) >= 10
