"""The atom-block read plan returns exactly what the lazy Dataset holds, block by block, as float64."""

from __future__ import annotations

import numpy as np
import pytest

from agi_data.store import StoreValidationError, open_store
from agi_data.store.read import block_ranges, block_width, stored_source


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


# ----------------------------------------------------------------------------- the block plan

@pytest.mark.parametrize("n_atoms,chunk,width", [(200, 48, 96), (200, 48, 100), (200, 48, 48), (200, 48, 47),
                                                 (200, 48, 20), (200, 48, 1), (7, 48, 3), (1000, 128, 13)])
def test_block_ranges_cover_every_atom_once_and_respect_chunk_edges(n_atoms, chunk, width):
    ranges = block_ranges(n_atoms, chunk, width)
    covered = np.concatenate([np.arange(lo, hi) for lo, hi in ranges])
    np.testing.assert_array_equal(covered, np.arange(n_atoms))  # in order, each atom once
    for lo, hi in ranges:
        if width >= chunk:  # whole chunks: each chunk decoded once
            assert lo % chunk == 0 and (hi - lo) % chunk == 0 or hi == n_atoms
            assert hi - lo <= max(chunk, width // chunk * chunk)
        else:  # pieces of one chunk column, never wider than asked
            assert lo // chunk == (hi - 1) // chunk and hi - lo <= width
    if width < chunk:  # equal pieces: a 128-atom column at width 13 is 10 pieces of ≤ 13, not 9 × 13 + 11
        pieces = [hi - lo for lo, hi in ranges if lo // chunk == 0]
        assert len(pieces) == -(-min(chunk, n_atoms) // width) and max(pieces) - min(pieces) <= 1


def test_block_width_keeps_a_block_within_the_budget_as_the_run_grows():
    """The plan's arithmetic: T × w × bytes per frame ≤ budget for any T, down to one atom per block."""
    budget = 64 << 20
    widths = []
    for n_time in (2_000, 20_000, 200_000, 2_000_000):
        w = block_width(n_time, 3 * 4, budget)
        assert n_time * w * 12 <= budget or w == 1
        assert (w + 1) * n_time * 12 > budget  # as wide as the budget allows
        widths.append(w)
    assert widths == sorted(widths, reverse=True) and widths[-1] == 2  # 2·10⁶ frames: 2 atoms of float32 xyz
    assert block_width(10**9, 12, budget) == 1  # never zero


@pytest.mark.parametrize("budget_atoms", [1, 5, 20, 48, 100])
def test_blocks_within_a_byte_budget_hold_at_most_that_many_bytes(store, budget_atoms):
    """max_block_bytes alone sets the block: every block yielded fits it, and the blocks are the Dataset."""
    ds = store.trajectory("r")
    budget = budget_atoms * ds.sizes["time"] * 3 * 8  # float64 as yielded
    blocks = list(stored_source(ds.positions).blocks(max_block_bytes=budget, dtype=np.float64))
    widths = [b.data.shape[1] for b in blocks]
    assert all(b.data.nbytes <= budget for b in blocks) and max(widths) <= budget_atoms
    if budget_atoms >= 48:  # whole 48-atom chunks per block
        assert max(widths) == budget_atoms // 48 * 48
    got = np.concatenate([b.data for b in blocks], axis=1)
    np.testing.assert_array_equal(got, ds.positions.values.astype(np.float64))
