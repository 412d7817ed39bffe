"""The README's Python examples and the package's first example, run verbatim as a new user would.

Each example is extracted from the file a user reads (README.md's ```python
blocks, the ``>>>`` lines of the ``agi_data`` and ``agi_data.analysis``
docstrings) and executed unchanged in a fresh interpreter whose ``AGI_HOME``
is a temporary directory. The README's store example writes its own run from
arrays a user would have (its names: ``symbols``, ``cell``, ``positions``,
``v``, ``f``, ``e``, ``frames``, ``centres``, ``spreads``), which the test
supplies; the docstring examples read the run ``agi-750K`` they name, which
the test writes first.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import agi_data
import agi_data.analysis

ROOT = Path(agi_data.__file__).resolve().parent.parent
RUN = "agi-750K"  # the run id the examples use


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M)


def doctest_lines(docstring: str) -> str:
    return "\n".join(line.strip()[4:] for line in docstring.splitlines() if line.strip().startswith(">>> "))


def user_arrays(n_frames: int = 200, seed: int = 0) -> dict:
    """What a user brings to the store example: an α-AgI cell (8 Ag, 8 I) diffusing, with forces and energies."""
    from agi_data.testing import random_walk

    n_atoms = 16
    symbols = ["Ag"] * 8 + ["I"] * 8
    ds = random_walk(n_atoms=n_atoms, n_frames=n_frames, D=0.5, dt=0.005, cell=10.17, species=symbols, seed=seed)
    rng = np.random.default_rng(seed)
    frames = np.array([0, 10, 20])
    return {
        "symbols": symbols, "cell": ds.cell.values, "positions": ds.positions.values,
        "v": rng.normal(0, 3.0, (n_frames, n_atoms, 3)), "f": rng.normal(0, 1.0, (n_frames, n_atoms, 3)),
        "e": rng.normal(-100.0, 0.1, n_frames),
        "frames": frames, "centres": rng.uniform(0, 10.17, (frames.size, 72, 3)),
        "spreads": rng.uniform(1.0, 2.0, (frames.size, 72)),
    }


def run_fresh(code: str, agi_home: Path, arrays: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` verbatim in a fresh interpreter, with the user's arrays already defined when given."""
    prelude = ""
    if arrays is not None:
        np.savez(agi_home / "arrays.npz", **{k: np.asarray(v) for k, v in arrays.items()})
        prelude = ("import numpy as _np\n"
                   f"_a = _np.load({str(agi_home / 'arrays.npz')!r})\n"
                   "globals().update({k: _a[k] for k in _a.files})\n"
                   "symbols = symbols.tolist()\n")
    script = prelude + f"exec(compile({code!r}, 'example', 'exec'))\n" + \
        "print(__import__('json').dumps({'done': True}))\n"
    env = {**os.environ, "AGI_HOME": str(agi_home), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", script], cwd=agi_home, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture
def agi_home(tmp_path):
    home = tmp_path / "agi_home"
    home.mkdir()
    return home


def test_readme_has_python_examples():
    blocks = python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert blocks and any("agi.msd" in b for b in blocks)


@pytest.mark.parametrize("index", range(len(python_blocks((ROOT / "README.md").read_text(encoding="utf-8")))))
def test_readme_python_example_runs_verbatim(index, agi_home):
    block = python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))[index]
    proc = run_fresh(block + "\nprint(__import__('json').dumps({'msd_units': msd.attrs['units'], "
                             "'n_lags': msd.sizes['lag'], 'runs': len(store.runs())}))\n"
                     if "agi.msd" in block else block, agi_home, user_arrays())
    assert proc.returncode == 0, f"README example {index} failed:\n{block}\n{proc.stderr[-4000:]}"
    if "agi.msd" in block:
        out = json.loads(proc.stdout.strip().splitlines()[-2])
        assert out == {"msd_units": "Å^2", "n_lags": 200, "runs": 1}
        # the run it wrote is the one it says: read it back here
        from agi_data.store import open_store

        store = open_store(agi_home / "data")
        np.testing.assert_allclose(store.trajectory(RUN).positions.values, user_arrays()["positions"], rtol=1e-6)
        assert store.wannier(RUN).sizes["frame"] == 3


def _write_fixture_run(agi_home: Path) -> None:
    from agi_data.store import open_store

    a = user_arrays(n_frames=400)
    store = open_store(agi_home / "data")
    with store.create_run(RUN, a["symbols"], a["cell"], timestep_ps=0.005, attrs={"temperature_K": 750}) as w:
        w.append(a["positions"], velocities=a["v"], forces=a["f"], energies=a["e"])


@pytest.mark.parametrize("module", [agi_data, agi_data.analysis], ids=["agi_data", "agi_data.analysis"])
def test_the_first_example_of_the_package_docstrings_runs(module, agi_home):
    code = doctest_lines(module.__doc__)
    assert "agi.msd(" in code and RUN in code
    _write_fixture_run(agi_home)
    proc = run_fresh(code, agi_home)
    assert proc.returncode == 0, f"{module.__name__} example failed:\n{code}\n{proc.stderr[-4000:]}"
