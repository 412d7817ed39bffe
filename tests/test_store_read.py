"""The atom-block read plan returns exactly what the lazy Dataset holds, block by block, as float64."""

from __future__ import annotations

import numpy as np
import pytest

from agi_data.store import StoreValidationError, open_store


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "s")
    rng = np.random.default_rng(5)
    species = ["Ag", "I"] * 100
    with s.create_run("r", species, np.eye(3) * 20, 0.01, chunk_frames=32, chunk_atoms=48) as w:
        for _ in range(3):
            x = rng.uniform(0, 20, (40, 200, 3)).astype(np.float32)
            w.append(x, velocities=x * 2)
    return s


@pytest.mark.parametrize("atoms", [None, "Ag", "I-every-7", "one", "mask"])
@pytest.mark.parametrize("block_atoms", [None, 1, 96])
def test_blocks_equal_the_dataset(store, atoms, block_atoms):
    ds = store.trajectory("r")
    full = ds.positions.values.astype(np.float64)
    sel = {None: np.arange(200), "Ag": np.flatnonzero(ds.symbol.values == "Ag"),
           "I-every-7": np.flatnonzero(ds.symbol.values == "I")[::7], "one": np.array([137]),
           "mask": ds.symbol.values == "I"}[atoms]
    blocks = list(store.atom_blocks("r", atoms=sel, block_atoms=block_atoms))
    idx = np.concatenate([b.atoms for b in blocks])
    expected = np.flatnonzero(sel) if sel.dtype == bool else sel
    np.testing.assert_array_equal(idx, expected)
    got = np.concatenate([b.data for b in blocks], axis=1)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, full[:, expected])
    width = (block_atoms or 10**9)
    for b in blocks:  # each block lies inside one chunk-aligned window of the block width
        w = -(-width // 48) * 48
        assert b.atoms[0] // w == b.atoms[-1] // w


def test_time_slice_and_other_variables(store):
    ds = store.trajectory("r")
    got = np.concatenate([b.data for b in store.atom_blocks("r", "velocities", time=slice(5, 100, 4))], axis=1)
    np.testing.assert_array_equal(got, ds.velocities.values[5:100:4].astype(np.float64))


@pytest.mark.parametrize("kwargs,match", [
    (dict(variable="energies"), "stores no 'energies'"),
    (dict(variable="time"), "no atom axis"),
    (dict(atoms=[200]), "must lie in 0..199"),
    (dict(atoms=[-1]), "must lie in 0..199"),
    (dict(atoms=[0.5]), "1-D array of atom indices"),
    (dict(atoms=np.ones(3, bool)), "needs 200 entries"),
])
def test_bad_requests_are_refused(store, kwargs, match):
    with pytest.raises(StoreValidationError, match=match):
        list(store.atom_blocks("r", **kwargs))
