"""MDAnalysis Reader/topology over a store run, and ase.Atoms from a run."""

from __future__ import annotations

import MDAnalysis as mda
import numpy as np
import pytest
from MDAnalysis.analysis.msd import EinsteinMSD
from MDAnalysis.lib.mdamath import triclinic_box
from MDAnalysis.transformations import NoJump

from agi_data import open_store
from agi_data.analysis import msd
from agi_data.interop import InteropError
from agi_data.interop.ase import atoms
from agi_data.interop.mdanalysis import StoreRun, universe
from agi_data.testing import random_walk
from agi_data.units import AMU_A2_PS2_IN_EV

EV_A_IN_KJ_MOL_A = 96.48533212331
SPECIES = ["Ag", "I"] * 12


@pytest.fixture
def store_with_walk(store_dir):
    """24 walkers (Ag, I) wrapped in an 8 Å box, float32, 600 frames in chunks of 64; velocities, forces, energies."""
    store = open_store(store_dir)
    rw = random_walk(n_atoms=24, n_frames=600, D=0.4, dt=0.01, cell=8.0, species=SPECIES, seed=5, dtype=np.float32)
    rng = np.random.default_rng(0)
    with store.create_run("walk", SPECIES, np.eye(3) * 8.0, 0.01, chunk_frames=64,
                          attrs={"temperature_K": 600.0}) as w:
        w.append(rw.positions.values, velocities=rng.normal(size=(600, 24, 3)).astype(np.float32),
                 forces=rng.normal(size=(600, 24, 3)).astype(np.float32), energies=rng.normal(size=600))
    return store


def test_universe_opens_on_a_store_run_with_box_velocities_forces(store_with_walk):
    store = store_with_walk
    ds = store.trajectory("walk").compute()
    u = mda.Universe(StoreRun(store, "walk"))  # the format is recognised from the object: no format= needed
    assert len(u.atoms) == 24 and u.trajectory.n_frames == 600
    assert list(u.atoms.elements[:2]) == ["Ag", "I"]
    np.testing.assert_allclose(u.atoms.masses[:2], [107.8682, 126.90447], rtol=1e-4)
    assert len(u.select_atoms("element Ag")) == 12
    for i in (599, 0, 64, 63, 300):  # random access across chunks
        ts = u.trajectory[i]
        np.testing.assert_array_equal(ts.positions, ds.positions.values[i])
        np.testing.assert_array_equal(ts.velocities, ds.velocities.values[i])
        np.testing.assert_allclose(ts.forces, ds.forces.values[i] * EV_A_IN_KJ_MOL_A, rtol=1e-6)
        np.testing.assert_allclose(ts.dimensions, triclinic_box(*ds.cell.values[i]))
        assert ts.time == pytest.approx(ds.time.values[i])
        assert ts.data["potential_energy"] == pytest.approx(ds.energies.values[i])
    assert [ts.frame for ts in u.trajectory[10:14]] == [10, 11, 12, 13]
    assert u.trajectory.dt == pytest.approx(0.01)


def test_einstein_msd_of_mdanalysis_equals_agi_msd(store_with_walk):
    """MDAnalysis' EinsteinMSD (after its NoJump unwrapping) on the Universe = agi_data.analysis.msd on the run."""
    store = store_with_walk
    jumps = np.abs(np.diff(store.trajectory("walk").positions.values, axis=0)).max()
    assert jumps > 4.0  # the stored positions are wrapped: unwrapping matters
    u = universe(store, "walk")
    u.trajectory[0]
    u.trajectory.add_transformations(NoJump())
    for sel, species in (("element Ag", "Ag"), ("all", None)):
        theirs = EinsteinMSD(u, select=sel, msd_type="xyz", fft=True).run().results.timeseries
        ours = msd(store.trajectory("walk"), species).values
        np.testing.assert_allclose(theirs, ours, rtol=2e-5, atol=1e-6 * ours.max())


def test_topology_with_another_atom_count_is_refused(store_with_walk, tmp_path):
    wrong = mda.Universe.empty(23, atom_resindex=np.zeros(23, int), trajectory=True)
    with pytest.raises(InteropError, match="has 23 atoms but run 'walk' has 24"):
        universe(store_with_walk, "walk", topology=wrong)
    right = mda.Universe.empty(24, atom_resindex=np.zeros(24, int), trajectory=True)
    right.add_TopologyAttr("name", [f"X{i}" for i in range(24)])
    u = universe(store_with_walk, "walk", topology=right)
    assert u.atoms.names[3] == "X3" and u.trajectory.n_frames == 600


def test_ase_atoms_round_trip_in_ase_units(store_with_walk):
    store = store_with_walk
    ds = store.trajectory("walk").compute()
    got = list(atoms(store, "walk", frames=[5, -1, 64]))
    assert [a.info["frame"] for a in got] == [5, 599, 64]
    for a in got:
        i = a.info["frame"]
        assert a.info["time_ps"] == pytest.approx(ds.time.values[i])
        np.testing.assert_allclose(a.positions, ds.positions.values[i], rtol=1e-7)
        np.testing.assert_allclose(a.cell.array, ds.cell.values[i])
        assert a.get_potential_energy() == pytest.approx(ds.energies.values[i])
        np.testing.assert_allclose(a.get_forces(), ds.forces.values[i], rtol=1e-7)
        # kinetic energy in eV two ways: ASE's units vs the store's Å/ps with the project's u·Å²/ps² → eV
        v = ds.velocities.values[i].astype(np.float64)
        ke = 0.5 * (a.get_masses()[:, None] * v**2).sum() * AMU_A2_PS2_IN_EV
        assert a.get_kinetic_energy() == pytest.approx(ke, rel=1e-6)
    assert len(list(atoms(store, "walk", frames=slice(0, None, 100)))) == 6
    with pytest.raises(InteropError, match="outside the run"):
        next(atoms(store, "walk", frames=[600]))
