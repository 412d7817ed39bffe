"""``agi analyse RUN``: the demo's report for any store run — one made by run_md, one imported from an extxyz
file — with finite numbers, the skipped analyses named with their reason, and clear errors for bad runs."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from click.testing import CliRunner

from agi_data import open_store
from agi_data.cli import main
from agi_data.md import LammpsEngine, MDSettings, StreamOptions, run_md
from agi_data.structures import alpha_agi


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "data"
    store = open_store(path)
    s = MDSettings(temperature_K=750.0, n_steps=600, timestep_fs=2.0, stride=5, ensemble="nve", seed=4,
                   equilibration_steps=100)
    run_md(LammpsEngine(), alpha_agi(2, seed=4), s, store=store, run_id="md", options=StreamOptions(progress=False))
    one = MDSettings(temperature_K=750.0, n_steps=0, ensemble="nve")
    run_md(LammpsEngine(), alpha_agi(2, seed=5), one, store=store, run_id="single",
           options=StreamOptions(progress=False))
    return path


def _agi(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _numbers(directory):
    return {n["name"]: n for n in json.loads((directory / "numbers.json").read_text())}


def test_report_of_a_run_made_by_run_md(store_path, tmp_path):
    out = tmp_path / "rep"
    res = _agi("analyse", "md", "--store", str(store_path), "-o", str(out))
    assert res.exit_code == 0, res.output
    numbers = _numbers(out)
    for key in ("D(Ag), run", "D(Ag) Green–Kubo, run", "Ag⁺ friction ∫K dt, run", "Einstein ratio ∫K/(k_BT/(mD)), run",
                "first I–I peak, run", "Ag⁺ hops counted, run", "kinetic temperature of Ag⁺, run",
                "NVE energy drift, run"):
        assert key in numbers, sorted(numbers)
    assert all(math.isfinite(n["value"]) for n in numbers.values()), numbers
    assert all(n["params"] for n in numbers.values())
    assert "skipped Wannier frames and paddlewheels: --wannier not given" in res.output
    assert "records no AiiDA node" in (out / "report.md").read_text()  # made without provenance: said so
    assert (out / "report.html").exists() and (out / "msd.png").stat().st_size > 5000
    rep = subprocess.run([sys.executable, str(out / "reproduce.py")], capture_output=True, text=True, timeout=600)
    assert rep.returncode == 0, rep.stdout[-2000:] + rep.stderr[-2000:]


def test_report_of_an_imported_extxyz(store_path, tmp_path):
    xyz = tmp_path / "traj.extxyz"
    assert _agi("store", "export", "md", str(xyz), "--store", str(store_path)).exit_code == 0
    # a file as another code would write it: positions, cell and species only
    from ase import Atoms
    from ase.io import read, write

    frames = [Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=True) for a in read(xyz, ":")]
    bare = tmp_path / "bare.extxyz"
    write(bare, frames)
    other = tmp_path / "other"
    res = _agi("store", "import", str(bare), "imported", "--timestep-ps", "0.01", "--store", str(other))
    assert res.exit_code == 0, res.output
    out = tmp_path / "rep"
    res = _agi("analyse", "imported", "--wannier", "--store", str(other), "-o", str(out))
    assert res.exit_code == 0, res.output
    numbers = _numbers(out)
    assert {"D(Ag), run", "D(I), run", "first I–I peak, run", "Ag⁺ hop rate per ion, run"} <= set(numbers)
    assert all(math.isfinite(n["value"]) for n in numbers.values())
    assert "skipped VACF and VDOS: no velocities stored" in res.output
    assert "skipped GLE memory kernels: no velocities stored" in res.output
    assert "skipped Wannier frames and paddlewheels: no Wannier centres in the run" in res.output
    md = (out / "report.md").read_text()
    assert "Skipped VACF and VDOS: no velocities stored." in md and "records no AiiDA node" in md


def test_bad_runs_are_refused_clearly(store_path, tmp_path):
    res = CliRunner().invoke(main, ["analyse", "single", "--store", str(store_path), "-o", str(tmp_path / "a")])
    assert res.exit_code == 1 and "has 1 frame(s)" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "a").exists()
    res = CliRunner().invoke(main, ["analyse", "nope", "--store", str(store_path), "-o", str(tmp_path / "b")])
    assert res.exit_code == 1 and "no run 'nope'" in res.output
    res = CliRunner().invoke(main, ["analyse", "md-equilibration", "--store", str(store_path), "-o",
                                    str(tmp_path / "c")])
    assert res.exit_code == 1 and "equilibration segment" in res.output and "'md'" in res.output
    res = CliRunner().invoke(main, ["analyse", "md", "--store", str(tmp_path / "typo")])
    assert res.exit_code == 1 and "no store at" in res.output and not (tmp_path / "typo").exists()


def test_every_report_step_says_what_it_needs():
    """A step without an entry in NEEDS would stop `agi analyse` with a KeyError on every run."""
    from agi_data.demo.analyses import STEPS
    from agi_data.demo.run_report import NEEDS

    assert {fn for _, fn in STEPS} == set(NEEDS)
