"""The package's import graph: every module imports on its own, and no module reaches back to itself through
others (counting the imports inside functions too: a lazy import only hides a cycle)."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lecture_utils"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def imports_of(name: str) -> set[str]:
    """The package's modules that `name` imports, anywhere in its file."""
    tree = ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:  # from .x import y
                found.add(node.module.split(".")[0])
            elif node.level == 1:  # from . import x, y
                found |= {a.name for a in node.names}
            elif node.module and node.module.startswith("lecture_utils."):
                found.add(node.module.split(".")[1])
            elif node.module == "lecture_utils":
                found |= {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("lecture_utils.")}
    return found & set(MODULES) - {name}


def test_no_import_cycle_in_the_package():
    graph = {name: imports_of(name) for name in MODULES}
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for other in sorted(graph[name]):
            if state.get(other) == "open":
                cycle = path[path.index(other):] + [other]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if other not in state:
                visit(other, path + [other])
        state[name] = "done"

    for name in MODULES:
        if name not in state:
            visit(name, [name])


@pytest.mark.parametrize("name", MODULES)
def test_each_module_imports_alone(name):
    saved = {k: v for k, v in sys.modules.items() if k == "lecture_utils" or k.startswith("lecture_utils.")}
    for k in saved:
        del sys.modules[k]
    try:
        importlib.import_module(f"lecture_utils.{name}")
    finally:
        for k in [k for k in sys.modules if k == "lecture_utils" or k.startswith("lecture_utils.")]:
            del sys.modules[k]
        sys.modules.update(saved)
