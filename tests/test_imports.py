"""The package's layout: sub-packages by stage over shared layers. Every module imports on its own, no module reaches
back to itself through others (imports inside functions count: a lazy import only hides a cycle), a module imports
only its own layer and the layers below it, and no module grows past 400 lines."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lecture_utils"
MODULES = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts) for p in PACKAGE.rglob("*.py")
                 if p.name != "__init__.py")
# Lowest first. The shared layers (base, text, teacher) import no stage; a stage imports earlier stages and the
# shared layers; the notebook helpers and the instructor's tools sit on top.
LAYERS = [("base", {"records", "settings", "prompts", "errors"}), ("text", {"text"}), ("teacher", {"teacher"}),
          ("gather", {"gather"}), ("ask", {"ask"}), ("answer", {"answer"}), ("curate", {"curate"}),
          ("scale", {"scale"}), ("notebook", {"notebook"}), ("instructor", {"instructor"}), ("command", {"__main__"})]
MAX_LINES = 400


def layer(module: str) -> int:
    part = module.split(".")[1]
    return next(i for i, (_, parts) in enumerate(LAYERS) if part in parts)


def imports_of(module: str) -> set[str]:
    """The package's modules that `module` imports, anywhere in its file."""
    path = ROOT / (module.replace(".", "/") + ".py")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            pytest.fail(f"{module}: a relative import (write `from lecture_utils.<layer>.<module> import ...`)")
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lecture_utils"):
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found |= {n for n in names if n in MODULES}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in MODULES}
    return found - {module}


def test_the_package_is_laid_out_by_stage_and_layer():
    assert {m.split(".")[1] for m in MODULES} >= {"text", "teacher", "gather", "ask", "answer", "curate", "scale",
                                                  "notebook", "instructor"}
    wrong = [f"{m} ({LAYERS[layer(m)][0]}) imports {other} ({LAYERS[layer(other)][0]})"
             for m in MODULES for other in sorted(imports_of(m)) if layer(other) > layer(m)]
    assert not wrong, "a lower layer imports a higher one:\n" + "\n".join(wrong)


def test_no_module_is_over_400_lines():
    long = {m: n for m in MODULES if (n := len((ROOT / (m.replace(".", "/") + ".py")).read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules: {long}"


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


@pytest.mark.parametrize("name", [m for m in MODULES if not m.endswith("__main__")])
def test_each_module_imports_alone(name):
    saved = {k: v for k, v in sys.modules.items() if k == "lecture_utils" or k.startswith("lecture_utils.")}
    for k in saved:
        del sys.modules[k]
    try:
        importlib.import_module(name)
    finally:
        for k in [k for k in sys.modules if k == "lecture_utils" or k.startswith("lecture_utils.")]:
            del sys.modules[k]
        sys.modules.update(saved)
