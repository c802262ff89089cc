"""The package's architecture: layers import only downwards, no import cycles, no imports inside functions,
one definition per public function name.

The layers, lowest first (docs/design.md draws them):

    errors  <  logs, device  <  data  <  config  <  features  <  models, scoring, corpora
    <  inference  <  training  <  pipeline  <  cli  <  the package's __init__ / __main__
"""

from __future__ import annotations

import ast
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "pyfunc"
RANK = {"errors": 0, "logs": 1, "device": 1, "data": 2, "config": 3, "features": 4, "models": 5, "scoring": 5,
        "corpora": 5, "inference": 6, "training": 7, "pipeline": 8, "cli": 9, "__init__": 10, "__main__": 10}
SAME_LAYER = {"config_overrides": "config"}  # modules that belong to another one's layer
# Imports that may sit inside a function: optional or heavy dependencies, each marked noqa: PLC0415.
LAZY_IMPORTS = ("onnx", "onnxruntime", "matplotlib", "scipy.stats", "scipy.signal", "scipy.optimize")
LAZY_API = ("pyfunc", "pyfunc.inference")  # `import pyfunc` loads the Python API (and torch) on first use only


def module_names() -> dict[str, Path]:
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        names[name.removesuffix(".__init__")] = path
    return names


MODULES = module_names()


def layer(module: str) -> str:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    return SAME_LAYER.get(top, top)


def top_level_imports(path: Path) -> set[str]:
    """The pyfunc modules that ``path`` imports when it is imported (module-level imports only)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pyfunc"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if f"{node.module}.{alias.name}" in MODULES)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("pyfunc"))
    return {name for name in found if name in MODULES}


def import_graph() -> dict[str, set[str]]:
    return {name: top_level_imports(path) - {name} for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_layers_import_only_downwards() -> None:
    assert set(RANK) >= {layer(name) for name in MODULES}, "a new top-level module or package needs a layer"
    upward = []
    for name, imported in import_graph().items():
        for other in imported:
            if layer(other) != layer(name) and RANK[layer(other)] >= RANK[layer(name)]:
                upward.append(f"{name} imports {other}")
    assert upward == []


def test_no_imports_inside_functions_but_optional_heavy_ones() -> None:
    found = []
    for name, path in MODULES.items():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                if not isinstance(inner, (ast.Import, ast.ImportFrom)):
                    continue
                targets = [inner.module or ""] if isinstance(inner, ast.ImportFrom) else [a.name for a in inner.names]
                lazy = all(any(t == m or t.startswith(m + ".") for m in LAZY_IMPORTS) for t in targets) or \
                    (name, targets) == (LAZY_API[0], [LAZY_API[1]])
                marked = "noqa: PLC0415" in lines[inner.lineno - 1]
                if not (lazy and marked):
                    found.append(f"{path.relative_to(REPO)}:{inner.lineno}: {', '.join(targets)}")
    assert found == []


IMPORT_EACH = """
import importlib, sys
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "pyfunc" or m.startswith("pyfunc.")]:
        del sys.modules[loaded]
    importlib.import_module(name)
print("ok")
"""


@pytest.mark.parametrize("order", ["sorted", "shuffled-1", "shuffled-2"])
def test_every_module_imports_first_in_a_fresh_interpreter(order: str) -> None:
    """Each module imported as the first of the package (no other pyfunc module loaded), in any order."""
    names = sorted(MODULES)
    if order != "sorted":
        random.Random(order).shuffle(names)
    proc = subprocess.run([sys.executable, "-c", IMPORT_EACH, *names], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


# A module's entry point: each module run as ``python -m`` (pyfunc.cli.tools, pyfunc.cli.job_worker) has its own.
SHARED_FUNCTION_NAMES = {"main"}


def public_function_collisions(paths: list[Path], root: Path) -> list[str]:
    """``name: file, file...`` for each public top-level function name (no leading ``_``, not in
    SHARED_FUNCTION_NAMES) that more than one of ``paths`` defines; methods and nested functions do not count."""
    defined: dict[str, list[str]] = {}
    for path in paths:
        for node in ast.parse(path.read_text(), filename=str(path)).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_") \
                    and node.name not in SHARED_FUNCTION_NAMES:
                defined.setdefault(node.name, []).append(f"{path.relative_to(root)}:{node.lineno}")
    return [f"{name}: {', '.join(where)}" for name, where in sorted(defined.items()) if len(where) > 1]


def test_the_collision_finder_finds_two_definitions(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("def load(x):\n    pass\n\n\ndef _helper():\n    pass\n\n\ndef main():\n    pass\n")
    (tmp_path / "b.py").write_text("class Reader:\n    def load(self):\n        pass\n\n\n"
                                   "def _helper():\n    pass\n\n\ndef main():\n    pass\n")
    assert public_function_collisions([tmp_path / "a.py", tmp_path / "b.py"], tmp_path) == []
    (tmp_path / "c.py").write_text("async def load(y):\n    pass\n")
    assert public_function_collisions(sorted(tmp_path.glob("*.py")), tmp_path) == ["load: a.py:1, c.py:1"]


def test_the_core_does_not_import_the_mini_corpus() -> None:
    """The espeak-ng mini corpus is the mini recipe's own package (local/mini_corpus/): no pyfunc module
    imports it, at the top or inside a function."""
    found = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{name}: {m}" for m in modules if m.split(".")[0] == "mini_corpus" or m.startswith("local")]
    assert found == []


def test_one_definition_per_public_function_name() -> None:
    """Two modules defining the same public function name: one name for two jobs (rename each to say what it
    does) or two copies of one job (keep one); either way a caller can import the wrong one. The mini
    recipe's package local/mini_corpus/ counts too."""
    found = public_function_collisions(sorted(MODULES.values()) + sorted((REPO / "local" / "mini_corpus").glob("*.py")),
                                       REPO)
    assert found == [], "public functions defined in more than one module:\n" + "\n".join(found)
