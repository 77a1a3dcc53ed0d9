"""The layout's rules, checked on the tree: the installed package list matches the
directories, everything is imported through the ``glotbench`` namespace, no private name
crosses a module boundary, the harness never reaches into training/ (the CLI's merge and recipe
verbs aside), and modules (tests and benchmarks too) keep to the line budget."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TOP = ("harness", "tasks", "training")
SOURCES = [p for top in TOP for p in sorted((REPO / top).rglob("*.py"))]
ALL_PY = SOURCES + sorted((REPO / "tests").rglob("*.py")) + sorted((REPO / "bench").rglob("*.py"))
LINE_BUDGET = 500


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every import statement; names empty for ``import x``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module, [a.name for a in node.names]))
    return out


def test_installed_packages_match_the_tree():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {f"glotbench.{t}": t for t in TOP}
    on_disk = {"glotbench." + ".".join(p.parent.relative_to(REPO).parts)
               for top in TOP for p in (REPO / top).rglob("__init__.py")}
    assert set(config["packages"]) == on_disk, "list every package directory in pyproject.toml [tool.setuptools]"


def test_everything_is_imported_through_the_glotbench_namespace():
    bare = [f"{p.relative_to(REPO)}:{line} imports {mod}" for p in ALL_PY for line, mod, _ in _imports(p)
            if mod.split(".")[0] in TOP]
    assert not bare, "import glotbench.<harness|tasks|training>…, never the bare name:\n" + "\n".join(bare)


def test_the_bare_names_are_not_installed():
    """The generic names must not be importable from outside the repository (they would
    collide with other packages of the same name in a user's environment)."""
    code = "import importlib.util as u, sys; sys.exit(any(u.find_spec(n) for n in ('harness', 'tasks', 'training')))"
    assert subprocess.run([sys.executable, "-c", code], cwd="/").returncode == 0
    code = "import glotbench.harness, glotbench.tasks, glotbench.training"
    assert subprocess.run([sys.executable, "-c", code], cwd="/").returncode == 0


def test_no_private_name_crosses_a_module_boundary():
    private = [f"{p.relative_to(REPO)}:{line} imports {n} from {mod}" for p in SOURCES
               for line, mod, names in _imports(p) if mod.startswith("glotbench.")
               for n in names if n.startswith("_") and not n.startswith("__")]
    assert not private, "\n".join(private)


def test_the_harness_never_imports_training():
    allowed = {REPO / "harness" / "cli" / f for f in ("merge.py", "recipe.py")}  # the CLI sits above both layers
    wrong = [f"{p.relative_to(REPO)}:{line}" for p in (REPO / "harness").rglob("*.py") if p not in allowed
             for line, mod, _ in _imports(p) if mod.startswith("glotbench.training")]
    assert not wrong, "harness/ must not depend on training/: " + ", ".join(wrong)


@pytest.mark.parametrize("path", ALL_PY, ids=lambda p: str(p.relative_to(REPO)))
def test_module_line_budget(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= LINE_BUDGET, f"{path.relative_to(REPO)} has {n} lines: split it by stage (STYLE: small modules)"
