"""The store's modules form layers: no import cycle, and nothing below ``Store`` imports it."""

from __future__ import annotations

import ast
import importlib
import pickle
from pathlib import Path

import numpy as np

import agi_data.store as store_pkg
from agi_data import open_store

PKG = Path(store_pkg.__file__).parent


def _imports(path: Path) -> set[str]:
    """Sibling modules a store module imports (relative imports inside agi_data.store)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # imports for type checkers only are not imports
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            node.body = []
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out.update(a.name for a in node.names)
    return out & {p.stem for p in PKG.glob("*.py")}


def test_store_modules_have_no_import_cycle_and_import_on_their_own():
    graph = {p.stem: _imports(p) for p in PKG.glob("*.py") if p.stem != "__init__"}
    state: dict[str, int] = {}

    def visit(mod, trail):
        if state.get(mod) == 1:
            raise AssertionError(f"import cycle: {' -> '.join([*trail, mod])}")
        if state.get(mod) == 2:
            return
        state[mod] = 1
        for dep in graph.get(mod, ()):
            visit(dep, [*trail, mod])
        state[mod] = 2

    for mod in graph:
        visit(mod, [])
        importlib.import_module(f"agi_data.store.{mod}")
    # the lower layer and the writers never reach up to the public face
    for low in ("run", "locks", "read", "writer", "verify", "validate", "schema", "layout"):
        assert "store" not in graph[low], f"{low}.py imports store.py"


def test_run_ref_pickles_and_opens_the_pinned_version(tmp_path):
    store = open_store(tmp_path / "s")
    with store.create_run("r", ["Ag", "I"], np.eye(3) * 5, 0.01) as w:
        w.append(np.zeros((2, 2, 3)))
        ref = store.ref("r")
        w.append(np.ones((3, 2, 3)))
    back = pickle.loads(pickle.dumps(ref))
    assert back == ref and back.version == ref.version
    assert back.trajectory().sizes["time"] == 2
    assert store.trajectory("r").sizes["time"] == 5
