"""MSD and VACF of a stored run: the atom-block read, the Dask graph and the in-memory kernel agree.

A store Dataset whose positions/velocities are untouched is read in
chunk-aligned atom blocks (no Dask graph); anything derived from it (a time
slice, a rechunk) goes through Dask; numpy input through the threaded kernel.
All three give the same numbers to 1e-10 relative, with wrapped positions in a
time-dependent triclinic cell, a species selection that is not contiguous and
blocks that do not line up with the selection.
"""

from __future__ import annotations

import dask
import numpy as np
import pytest

from agi_data import open_store
from agi_data.analysis import msd, vacf
from agi_data.analysis.correlate import stored_block_atoms
from agi_data.pbc import unwrap_numpy
from agi_data.store.read import stored_source
from agi_data.testing import trajectory_dataset

T, N = 300, 30
SPECIES = ["Ag", "I", "I"] * (N // 3)  # Ag every third atom: a selection that is never contiguous


def _path(seed: int = 4):
    """A random walk wrapped into a breathing triclinic cell; returns (unwrapped r, wrapped w, cells, v)."""
    rng = np.random.default_rng(seed)
    base = np.array([[9.0, 0.0, 0.0], [2.0, 8.5, 0.0], [1.0, 1.5, 9.5]])
    cells = base * (1.0 + 0.02 * np.sin(np.arange(T) / 17.0))[:, None, None]
    v = rng.normal(scale=0.15, size=(T, N, 3))
    r = rng.uniform(0, 8, (N, 3)) + np.cumsum(v, axis=0)
    s = np.einsum("tni,tij->tnj", r, np.linalg.inv(cells))
    w = np.einsum("tni,tij->tnj", s - np.floor(s), cells)
    return r, w, cells, v


@pytest.fixture(params=[np.float64, np.float32], ids=["float64", "float32"])
def stored(request, tmp_path):
    r, w, cells, v = _path()
    dtype = request.param
    w, v = w.astype(dtype), v.astype(dtype)
    store = open_store(tmp_path / "s")
    with store.create_run("walk", SPECIES, cells[0], 0.01, chunk_frames=64, chunk_atoms=4) as wr:
        for start in range(0, T, 110):
            sl = slice(start, start + 110)
            wr.append(w[sl], velocities=v[sl], cell=cells[sl])
    mem = trajectory_dataset(w, SPECIES, cells, 0.01, velocities=v, dtype=dtype, attrs={"run_id": "walk"})
    return store.trajectory("walk"), mem, r


def _reads(x, variable: str) -> int:
    """How many tasks of x's Dask graph read chunks of ``variable``."""
    return sum(variable in str(key) for key in x.data.__dask_graph__())


@pytest.mark.parametrize("species", [None, "Ag", ["I"]])
@pytest.mark.parametrize("budget", [None, 4 * T * 32], ids=["one-block", "4-atom-blocks"])
def test_msd_and_vacf_equal_on_all_three_paths(stored, species, budget):
    ds, mem, _ = stored
    assert stored_source(ds.positions) is not None and stored_source(ds.velocities) is not None
    via_dask = ds.assign(positions=ds.positions.chunk({"atom": 5}), velocities=ds.velocities.chunk({"atom": 5}))
    assert stored_source(via_dask.positions) is None
    with dask.config.set({"agi.block_bytes": budget} if budget else {}):
        results, means = {}, {}
        for name, data in (("store", ds), ("dask", via_dask), ("memory", mem)):
            m = msd(data, species, per_atom=True)
            c = vacf(data, species, per_atom=True)
            if name == "store":  # one task reads the blocks, no task per chunk
                assert _reads(m, "positions") == 0 and _reads(c, "velocities") == 0
            if name == "dask":
                assert _reads(m, "positions") > 10 and _reads(c, "velocities") > 10
            results[name] = (m.compute(), c.compute())
            means[name] = (msd(data, species).compute(), vacf(data, species).compute())
    ref_m, ref_c = results["memory"]
    for name in ("store", "dask"):  # the store accumulates the atom average block by block
        np.testing.assert_allclose(means[name][0].values, means["memory"][0].values, rtol=1e-10)
        np.testing.assert_allclose(means[name][1].values, means["memory"][1].values, rtol=1e-10,
                                   atol=1e-12 * float(abs(means["memory"][1]).max()))
        np.testing.assert_allclose(means[name][0].values, ref_m.mean("atom").values, rtol=1e-10)
    assert ref_m.sizes["atom"] == (N // 3 if species == "Ag" else 2 * N // 3 if species else N)
    for name in ("store", "dask"):
        m, c = results[name]
        np.testing.assert_allclose(m.values, ref_m.values, rtol=1e-10, atol=1e-10 * float(ref_m.max()))
        np.testing.assert_allclose(c.values, ref_c.values, rtol=1e-10, atol=1e-10 * float(abs(ref_c).max()))
        np.testing.assert_array_equal(m["symbol"].values, ref_m["symbol"].values)
        assert m.attrs == ref_m.attrs and c.attrs == ref_c.attrs


def test_store_msd_equals_direct_sums_over_origins(stored):
    """The atom-block path (unwrap in the breathing triclinic cell, FFT) equals direct float64 sums."""
    ds, mem, _ = stored
    got = msd(ds, "Ag").values
    cells = mem.cell.values
    u = unwrap_numpy(mem.positions.values[:, 0::3].astype(np.float64), cells)
    for m in (1, 7, 50, 200, T - 1):
        direct = ((u[m:] - u[:-m]) ** 2).sum(-1).mean()
        assert got[m] == pytest.approx(direct, rel=1e-10)


def test_anything_derived_from_the_stored_array_is_read_through_dask(stored):
    """A time slice keeps the Dataset's attrs but not the stored array: the result is that of the slice."""
    ds, mem, _ = stored
    part = ds.isel(time=slice(40, 240))
    assert stored_source(part.positions) is None
    np.testing.assert_allclose(msd(part, "I").values, msd(mem.isel(time=slice(40, 240)), "I").values,
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(vacf(part, "Ag").values, vacf(mem.isel(time=slice(40, 240)), "Ag").values,
                               rtol=1e-10, atol=1e-12)
    assert stored_source(ds.compute().positions) is None
    assert stored_source((ds.positions + 0.0).rename("positions")) is None


def test_max_lag_and_mean_over_atoms_from_the_store(stored):
    ds, mem, _ = stored
    m = msd(ds, max_lag_ps=0.5)
    assert m.sizes["lag"] == 51 and m.chunks is not None  # lazy until computed
    np.testing.assert_allclose(m.values, msd(mem, max_lag_ps=0.5).values, rtol=1e-10)
    c = vacf(ds, "I", normalize=True, max_lag_ps=1.0)
    np.testing.assert_allclose(c.values, vacf(mem, "I", normalize=True, max_lag_ps=1.0).values, rtol=1e-10)
    assert c.values[0] == pytest.approx(1.0)


@pytest.mark.parametrize("budget_atoms", [1, 3, 4, 8, 100], ids=lambda b: f"{b}-atom-budget")
def test_block_plan_gives_exactly_the_in_memory_numbers(stored, budget_atoms):
    """Blocks narrower than a chunk (a long run), of whole chunks, or of everything: the in-memory numbers.

    Equal to rounding (1e-12 relative): the FFTs of a batch of series take
    pocketfft's vectorised or scalar path depending on the batch size, and
    the blocks batch differently from the in-memory thread blocks.
    """
    ds, mem, _ = stored
    itemsize = ds.positions.dtype.itemsize
    budget = budget_atoms * 2 * T * 3 * itemsize  # two blocks of the stored dtype
    assert stored_block_atoms(ds.positions.shape, itemsize, budget) == budget_atoms
    with dask.config.set({"agi.block_bytes": budget}):
        for func in (msd, vacf):
            got = func(ds, "I", per_atom=True).compute().values
            ref = func(mem, "I", per_atom=True).values
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12 * float(np.abs(ref).max()))
            np.testing.assert_allclose(func(ds, "I").values, got.mean(axis=0), rtol=1e-12, atol=1e-15)


def test_block_plan_memory_is_flat_as_the_run_grows():
    """The plan's arithmetic: two stored blocks fit the budget at any length, down to one atom per block."""
    budget = 64 << 20
    for itemsize in (4, 8):
        widths = []
        for n_time in (20_000, 200_000, 2_000_000):
            w = stored_block_atoms((n_time, 1000, 3), itemsize, budget)
            assert 2 * w * n_time * 3 * itemsize <= budget or w == 1  # the floor: one atom per block
            assert 2 * (w + 1) * n_time * 3 * itemsize > budget  # as wide as the budget allows
            widths.append(w)
        assert widths[0] > widths[1] > widths[2] >= 1
    assert stored_block_atoms((20_000, 1000, 3), 4, budget) == 139  # ≥ one 128-atom chunk at 20 000 frames
    assert stored_block_atoms((10**9, 1000, 3), 4, budget) == 1
