"""The package's import graph: every module imports alone, and no module imports one that (through others) imports it.

A cycle is found from the source (ast), not from a running interpreter, so an import inside a function counts too:
it is a cycle the moment that function runs. Imports under `if TYPE_CHECKING:` never run and do not count.
"""

from __future__ import annotations

import ast
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import lecture_utils

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "lecture_utils"
MODULES = sorted(m.name for m in pkgutil.iter_modules([str(PACKAGE)]))

# Cycles known today, each with who removes it. When one is gone, test_known_cycle_is_gone passes, which its strict
# xfail reports as a failure: delete the entry then, and test_no_import_cycle keeps the cycle from coming back.
KNOWN_CYCLES = {
    frozenset({"batch", "factory"}): "factory.factory_main imports batch inside the function, and batch imports "
                                     "factory at the top; the engine refactor (issue 12) removes it",
}


def test_the_tests_read_this_copy_of_the_package():
    assert Path(lecture_utils.__file__).resolve().parent == PACKAGE
    assert {"tokens", "selfinstruct", "diversity", "coverage"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_alone(module):
    """In a fresh interpreter, so no other module has been imported first and hidden an order dependency."""
    code = f"import lecture_utils, lecture_utils.{module}; print(lecture_utils.__file__)"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"import lecture_utils.{module} failed:\n{done.stderr[-2000:]}"
    assert Path(done.stdout.strip()).resolve().parent == PACKAGE


def _type_checking_only(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported(node: ast.AST) -> list[str]:
    """The package modules one import statement names (lecture_utils itself and outside packages left out)."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [a.name.split(".")[1] for a in node.names if a.name.startswith("lecture_utils.")]
    elif isinstance(node, ast.ImportFrom):
        if node.level == 1 or node.module == "lecture_utils" or (node.module or "").startswith("lecture_utils."):
            base = "lecture_utils" + (f".{node.module}" if node.module else "") if node.level else node.module
            if base == "lecture_utils":  # from . import x, y: each name that is a module
                names = [a.name for a in node.names]
            else:
                names = [base.split(".")[1]]
    return [n for n in names if n in MODULES]


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its source."""
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
        found: set[str] = set()
        todo: list[ast.AST] = [tree]
        while todo:
            node = todo.pop()
            if _type_checking_only(node):
                todo.extend(node.orelse)
                continue
            found.update(_imported(node))
            todo.extend(ast.iter_child_nodes(node))
        graph[module] = found - {module}
    return graph


def cycles(graph: dict[str, set[str]]) -> dict[frozenset[str], list[str]]:
    """Each group of modules that import one another (a strongly connected component), with one cycle through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm; the package is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return {frozenset(g): _one_cycle(graph, g) for g in groups}


def _one_cycle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A path inside the group from its first module back to itself, e.g. [batch, factory, batch]."""
    start = min(group)
    paths = [[start]]
    while paths:
        path = paths.pop(0)
        for w in sorted(graph[path[-1]] & group):
            if w == start:
                return path + [start]
            if w not in path:
                paths.append(path + [w])
    return [start]


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "batch" in graph["factory"]  # `from .batch import run_batch` inside factory_main
    assert {"selfinstruct", "diversity", "coverage"} & graph["tokens"] == set()
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {frozenset("abc"): ["a", "b", "c", "a"]}


def test_no_import_cycle():
    found = cycles(import_graph())
    new = {" -> ".join(path) for group, path in found.items() if group not in KNOWN_CYCLES}
    assert not new, f"import cycles inside lecture_utils: {sorted(new)}"


@pytest.mark.parametrize("group", [pytest.param(g, id="-".join(sorted(g)), marks=pytest.mark.xfail(
    strict=True, reason=f"known import cycle: {why}")) for g, why in KNOWN_CYCLES.items()])
def test_known_cycle_is_gone(group):
    """Expected to fail while the cycle is there. When it passes, the cycle is gone: delete its KNOWN_CYCLES entry."""
    assert group not in cycles(import_graph())
