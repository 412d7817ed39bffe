"""The package's import structure: no cycle between agi_data modules, and every module imports on its own.

The graph is read statically (``ast``) from every ``agi_data`` source file,
with the imports inside functions included (they run when the function is
called, and a cycle through them is still one design decision not yet
made); imports under ``if TYPE_CHECKING:`` are left out (they never run).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import agi_data

PACKAGE = Path(agi_data.__file__).resolve().parent
ROOT = PACKAGE.parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    """Every module of the package: dotted name → file (``__main__`` scripts run on import: left out)."""
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))
            if "__pycache__" not in p.parts and p.name != "__main__.py"}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Import nodes of a module, at any depth, except under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, set[str]]:
    """module → the agi_data modules it imports (``from pkg import sub`` counts as importing ``pkg.sub``)."""
    modules = package_modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [f"{mod}.{alias.name}" if f"{mod}.{alias.name}" in modules else mod
                           for alias in node.names]
            for target in targets:
                while target and target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]  # import a.b.c → the deepest agi_data module named
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_walker_finds_a_cycle_and_function_level_imports():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    graph = import_graph()
    # a function-level import (agi_data.open_store imports the store inside the function)
    assert "agi_data.store" in graph["agi_data"]
    # a relative import of a sibling module, and of a name from a module
    assert "agi_data.analysis.errors" in graph["agi_data.analysis.transport"]
    assert "agi_data.pbc" in graph["agi_data.analysis.transport"]


def test_no_import_cycle_in_the_package():
    found = cycles(import_graph())
    assert not found, "import cycles between agi_data modules (give them one lower layer):\n" + "\n".join(
        " <-> ".join(c) for c in found)


def test_the_layers_keep_apart():
    """analysis and store never import each other; md, store and analysis never import aiida."""
    graph = import_graph()

    def imports(layer: str, other: str) -> list[str]:
        def inside(name: str, package: str) -> bool:
            return name == package or name.startswith(package + ".")

        return sorted(f"{m} -> {t}" for m, targets in graph.items() if inside(m, layer)
                      for t in targets if inside(t, other))

    for layer, other in (("agi_data.analysis", "agi_data.store"), ("agi_data.store", "agi_data.analysis"),
                         ("agi_data.md", "agi_data.aiida"), ("agi_data.store", "agi_data.aiida"),
                         ("agi_data.analysis", "agi_data.aiida"), ("agi_data.md", "agi_data.store")):
        assert not imports(layer, other), imports(layer, other)


def test_every_module_imports_on_its_own():
    """Each module imported with no other agi_data module loaded before it (one fresh interpreter)."""
    names = sorted(package_modules())
    script = textwrap.dedent(f"""
        import importlib, sys, traceback
        failed = []
        for name in {names!r}:
            for loaded in [m for m in sys.modules if m == "agi_data" or m.startswith("agi_data.")]:
                del sys.modules[loaded]
            try:
                importlib.import_module(name)
            except BaseException:
                failed.append(name + ": " + traceback.format_exc(limit=3))
        print("\\n".join(failed))
        sys.exit(1 if failed else 0)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"modules that do not import on their own:\n{proc.stdout}\n{proc.stderr[-3000:]}"
