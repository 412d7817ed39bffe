"""LAMMPS dump import with image flags, against LAMMPS's own ``compute msd`` (the real Debian ``lmp``).

A 32-atom Lennard-Jones fluid in metal units runs hot in a small triclinic
box, so atoms cross the periodic boundaries many times and move about a
third of the box between stored frames (where unwrapping by the minimum
image would fail). LAMMPS dumps ``x y z ix iy iz`` at full precision and
writes ``compute msd`` (origin: frame 0) at the same steps. After import,
the mean squared displacement from frame 0 of the stored positions equals
LAMMPS's to 1e-6 Å².
"""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest

from agi_data.md.lammps_engine import find_lammps
from agi_data.store import open_store
from agi_data.store.io import import_trajectory

pytestmark = pytest.mark.timeout(300)

SCRIPT = """
units metal
atom_style atomic
boundary p p p
lattice fcc 7.0
region box block 0 2 0 2 0 2
create_box 2 box
create_atoms 1 box
set type 1 type/fraction 2 0.5 12345
mass * 39.948
pair_style lj/cut 5.0
pair_coeff * * 0.0104 3.4
change_box all triclinic
change_box all xy final 1.5 xz final 0.7 yz final 0.4 remap units box
velocity all create 1500.0 4928459 mom yes rot no
fix 1 all nve
timestep 0.002
compute msd all msd
dump 1 all custom 250 traj.dump id type {columns}
dump_modify 1 format float %.15g sort id
fix 2 all ave/time 250 1 250 c_msd[4] file msd.txt format " %.15g"
run 5000
"""


def _run_lammps(work, columns: str):
    work.mkdir()
    (work / "in.lmp").write_text(SCRIPT.format(columns=columns))
    subprocess.run([find_lammps(), "-in", "in.lmp", "-log", "log.lammps", "-screen", "none", "-nocite"], cwd=work,
                   check=True, timeout=240, env=dict(os.environ, OMP_NUM_THREADS="1"))
    return work / "traj.dump", np.loadtxt(work / "msd.txt", comments="#")[:, 1]


def _msd_from_frame0(positions: np.ndarray) -> np.ndarray:
    d = positions - positions[0]
    return np.mean(np.sum(d * d, axis=-1), axis=-1)


def test_image_flags_give_lammps_own_msd(tmp_path):
    dump, lammps_msd = _run_lammps(tmp_path / "md", "x y z ix iy iz")
    store = open_store(tmp_path / "s")
    n = import_trajectory(store, dump, "lj", timestep_ps=0.5, type_map={1: "Ar", 2: "Kr"}, units="metal")
    assert n == 21
    ds = store.trajectory("lj")
    assert ds.positions.attrs["unwrapped"] is True and ds.attrs["positions_wrapped"] is False
    assert "image flags" in ds.attrs["unwrapping"]
    assert abs(lammps_msd[0]) < 1e-20 and lammps_msd[-1] > 100.0  # the atoms went far: many boundary crossings
    ours = _msd_from_frame0(ds.positions.values.astype(np.float64))
    np.testing.assert_allclose(ours, lammps_msd, rtol=0, atol=1e-6)
    # the triclinic cell was rebuilt from the bounding box and the tilts
    np.testing.assert_allclose(ds.cell.values[0], [[14.0, 0, 0], [1.5, 14.0, 0], [0.7, 0.4, 14.0]], atol=1e-12)
    assert sorted(set(ds.symbol.values)) == ["Ar", "Kr"]


def test_without_image_flags_the_positions_stay_wrapped_and_say_so(tmp_path):
    dump, lammps_msd = _run_lammps(tmp_path / "md", "x y z")
    store = open_store(tmp_path / "s")
    import_trajectory(store, dump, "lj", timestep_ps=0.5, type_map={1: "Ar", 2: "Kr"}, units="metal")
    ds = store.trajectory("lj")
    assert ds.attrs["positions_wrapped"] is True and "unwrapped" not in ds.positions.attrs
    assert "minimum image" in ds.attrs["unwrapping"]
    wrapped = _msd_from_frame0(ds.positions.values)
    assert abs(wrapped[-1] - lammps_msd[-1]) > 10.0  # wrapped positions cannot give the true MSD
