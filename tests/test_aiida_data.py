"""ReferenceDataset: round trip through AiiDA storage, extxyz, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read

from agi_data.aiida.data import ReferenceDataError, ReferenceDataset
from agi_data.structures import alpha_agi


def _structures(rng, sizes=(1, 1, 2)):
    out = []
    for k, n in enumerate(sizes):
        atoms = alpha_agi(n, seed=k, rattle=0.05)
        forces = rng.normal(size=(len(atoms), 3))
        stress = rng.normal(size=6) * 1e-3
        atoms.calc = SinglePointCalculator(atoms, energy=-100.0 * len(atoms) + k, forces=forces, stress=stress)
        out.append(atoms)
    return out


def test_round_trip_through_storage_and_extxyz(rng, tmp_path):
    structures = _structures(rng)
    node = ReferenceDataset.from_atoms(structures, labels=["a", "b", "c"]).store()
    loaded = ReferenceDataset.collection.get(pk=node.pk)
    assert isinstance(loaded, ReferenceDataset)
    assert len(loaded) == 3
    np.testing.assert_array_equal(loaded.n_atoms, [4, 4, 32])
    np.testing.assert_array_equal(loaded.numbers, np.concatenate([a.numbers for a in structures]))
    np.testing.assert_allclose(loaded.energies, [-400.0, -399.0, -3198.0])
    np.testing.assert_array_equal(loaded.species, [47, 53])
    back = loaded.to_atoms()
    for a, b in zip(structures, back):
        np.testing.assert_allclose(b.positions, a.positions)
        np.testing.assert_allclose(b.cell.array, a.cell.array)
        np.testing.assert_allclose(b.get_forces(), a.get_forces())
        np.testing.assert_allclose(b.get_stress(), a.get_stress())
        assert b.get_potential_energy() == pytest.approx(a.get_potential_energy())
    path = loaded.write_extxyz(tmp_path / "ref.extxyz")
    frames = read(path, index=":")
    assert [len(f) for f in frames] == [4, 4, 32]
    np.testing.assert_allclose(frames[2].get_forces(), structures[2].get_forces(), atol=1e-8)
    np.testing.assert_allclose(frames[1].get_stress(), structures[1].get_stress(), atol=1e-10)
    assert frames[0].get_potential_energy() == pytest.approx(-400.0)


def test_info_arrays_convention_and_missing_stress(rng):
    atoms = alpha_agi(1, seed=3)
    atoms.info["energy"] = -12.5
    atoms.arrays["forces"] = rng.normal(size=(4, 3))
    other = _structures(rng, sizes=(1,))[0]
    node = ReferenceDataset.from_atoms([atoms, other])
    assert not node.has_stress  # only stored when every structure has one
    np.testing.assert_allclose(node.energies, [-12.5, -400.0])
    np.testing.assert_allclose(node.to_atoms()[0].get_forces(), atoms.arrays["forces"])


def test_missing_energy_or_forces_is_a_clear_error(rng):
    atoms = alpha_agi(1, seed=3)
    with pytest.raises(ReferenceDataError, match="no energy"):
        ReferenceDataset.from_atoms([atoms])
    atoms.info["energy"] = 1.0
    with pytest.raises(ReferenceDataError, match="no forces"):
        ReferenceDataset.from_atoms([atoms])
    with pytest.raises(ReferenceDataError, match="empty"):
        ReferenceDataset.from_atoms([])


def test_entry_point_is_registered():
    from aiida.plugins import DataFactory

    assert DataFactory("agi.reference_set") is ReferenceDataset
