"""RDF and van Hove functions against analytic answers: ideal gas, perfect bcc, Gaussian random walk."""

from __future__ import annotations

import numpy as np
import pytest

from agi_data.analysis import SchemaError, StructureError, rdf, van_hove_distinct, van_hove_self
from agi_data.testing import BCC_SHELLS, bcc_lattice, ideal_gas, random_walk, trajectory_dataset, wrap

A = 5.07


def _ideal_sigma(g, n_pairs_ordered: float, volume: float, n_frames: int, pair_factor: float):
    """Poisson error of g per bin: expected count E, σ_g = sqrt(pair_factor / E)."""
    edges = np.append(g.r.values - 0.5 * g.attrs["dr"], g.r.values[-1] + 0.5 * g.attrs["dr"])
    shell = 4 / 3 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    expected = n_pairs_ordered * shell / volume * n_frames
    return np.sqrt(pair_factor / expected)


@pytest.mark.parametrize("cell", [18.0, np.array([[18.0, 0, 0], [5.0, 17.0, 0], [-4.0, 3.0, 16.0]])],
                         ids=["cubic", "triclinic"])
def test_ideal_gas_has_g_equal_one(cell):
    ds = ideal_gas(n_atoms=150, n_frames=60, cell=cell, seed=3)
    vol = abs(np.linalg.det(ds.cell.values))
    g = rdf(ds, "Ar", "Ar", r_max=7.0, dr=0.25)
    sigma = _ideal_sigma(g, 150 * 149, vol, 60, pair_factor=2.0)  # each unordered pair counted twice
    z = (g.values - 1.0) / sigma
    assert np.abs(z).max() < 4.5
    assert abs(np.mean(z**2) - 1.0) < 0.5
    # the coordination number of an ideal gas is ρ 4π r³/3 at each bin's upper edge
    r_up = g.r.values + 0.125
    n_ideal = 149 / vol * 4 / 3 * np.pi * r_up**3
    np.testing.assert_allclose(g.coordination_number.values[-10:], n_ideal[-10:], rtol=0.02)
    assert g.r.attrs["units"] == "Å" and g.attrs["units"] == "1"


def test_ideal_gas_mixture_cross_rdf():
    ds = ideal_gas(n_atoms=200, n_frames=40, cell=16.0, seed=5)
    ds = ds.assign_coords(species=("atom", np.r_[np.full(80, 47), np.full(120, 53)]),
                          symbol=("atom", np.r_[["Ag"] * 80, ["I"] * 120]))
    g = rdf(ds, "Ag", "I", r_max=7.5, dr=0.3)
    sigma = _ideal_sigma(g, 80 * 120, 16.0**3, 40, pair_factor=1.0)
    assert np.abs((g.values - 1.0) / sigma).max() < 4.5
    n_ideal = 120 / 16.0**3 * 4 / 3 * np.pi * (g.r.values[-1] + 0.15) ** 3
    assert abs(float(g.coordination_number[-1]) / n_ideal - 1) < 0.03


def test_bcc_lattice_shells_and_coordination_numbers():
    ds = bcc_lattice(n=5, a=A, n_frames=2)  # box 25.35 Å: shells up to 2a fit inside half the box
    g = rdf(ds, "I", "I", r_max=11.0, dr=0.02)
    occupied = g.r.values[g.values > 0]
    shells = [f * A for f, _ in BCC_SHELLS]
    # every occupied bin holds a shell distance, and every shell lands in an occupied bin
    assert all(min(abs(r - s) for s in shells) <= 0.01 + 1e-9 for r in occupied)
    assert all(np.abs(occupied - s).min() <= 0.01 + 1e-9 for s in shells)
    cumulative = np.cumsum([n for _, n in BCC_SHELLS])
    for (f, _), n_expected in zip(BCC_SHELLS, cumulative):
        between = f * A + 0.1
        assert float(g.coordination_number.sel(r=between, method="nearest")) == n_expected


def test_bcc_in_a_triclinic_description_equals_cubic():
    cubic = bcc_lattice(n=4, a=A, n_frames=1)
    L = 4 * A
    sheared = np.array([[L, 0, 0], [L, L, 0], [0, L, L]])  # same periodic lattice
    pos = wrap(cubic.positions.values, sheared)
    tri = trajectory_dataset(pos, "I", sheared, 0.01)
    r_max = 0.5 * L / np.sqrt(3) * 0.99  # half the smallest width of the sheared cell (2 shells)
    g_c = rdf(cubic, "I", "I", r_max=r_max, dr=0.05)
    g_t = rdf(tri, "I", "I", r_max=r_max, dr=0.05)
    np.testing.assert_allclose(g_t.values, g_c.values, rtol=1e-12)
    np.testing.assert_array_equal(g_t.coordination_number.values, g_c.coordination_number.values)
    assert float(g_t.coordination_number[-1]) == 14  # the first two shells, 8 + 6


def test_van_hove_self_of_a_random_walk_is_gaussian():
    D, dt = 0.5, 0.01
    ds = random_walk(n_atoms=100, n_frames=600, D=D, dt=dt, cell=10.0, seed=2)  # wrapped: unwrapped inside
    gs = van_hove_self(ds, "Ag", [0.1, 0.5], r_max=6.0, dr=0.1)
    assert gs.dims == ("lag", "r") and gs.attrs["units"] == "1/Å"
    for t in (0.1, 0.5):
        row = gs.sel(lag=t)
        edges = np.append(row.r.values - 0.05, row.r.values[-1] + 0.05)
        # exact bin probabilities of |Δr| for a 3-d Gaussian of variance 2Dt per component
        from scipy.stats import chi

        p = np.diff(chi.cdf(edges / np.sqrt(2 * D * t), df=3)) / 0.1
        n = 100 * (600 - round(t / dt))
        sigma = np.sqrt(p * 0.1 / n) / 0.1 * 8  # origins overlap: inflate the Poisson error generously
        assert np.all(np.abs(row.values - p) < 4 * sigma + 1e-3)
        assert abs(float(row.sum() * 0.1) - 1.0) < 1e-3


def test_van_hove_distinct_at_zero_lag_is_the_rdf_and_decays_to_one():
    ds = ideal_gas(n_atoms=120, n_frames=30, cell=15.0, seed=9)
    g = rdf(ds, "Ar", "Ar", r_max=7.0, dr=0.25)
    gd = van_hove_distinct(ds, "Ar", "Ar", [0.0, 0.05], r_max=7.0, dr=0.25)
    np.testing.assert_allclose(gd.sel(lag=0.0).values, g.values, rtol=1e-12)
    assert abs(float(gd.sel(lag=0.05).mean()) - 1.0) < 0.02
    lattice = bcc_lattice(n=3, a=A, n_frames=4)
    g_l = rdf(lattice, "I", "I", r_max=7.5, dr=0.05)
    gd_l = van_hove_distinct(lattice, "I", "I", [0.0, 0.02], r_max=7.5, dr=0.05)
    np.testing.assert_allclose(gd_l.sel(lag=0.02).values, g_l.values, rtol=1e-12)  # a frozen lattice


def test_dask_chunked_and_distributed_structure_match_in_memory():
    from dask.distributed import Client, LocalCluster

    ds = random_walk(n_atoms=40, n_frames=120, D=0.5, dt=0.01, cell=12.0, seed=4)
    ref_g = rdf(ds, "Ag", "Ag", r_max=5.5, dr=0.25)
    ref_s = van_hove_self(ds, "Ag", [0.05, 0.2], r_max=3.0, dr=0.1)
    chunked = ds.chunk({"time": 25, "atom": 16})
    lazy = rdf(chunked, "Ag", "Ag", r_max=5.5, dr=0.25)
    assert lazy.chunks is not None
    np.testing.assert_allclose(lazy.values, ref_g.values, rtol=1e-12)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster):
        np.testing.assert_allclose(rdf(chunked, "Ag", "Ag", r_max=5.5, dr=0.25).compute().values,
                                   ref_g.values, rtol=1e-12)
        np.testing.assert_allclose(van_hove_self(chunked, "Ag", [0.05, 0.2], r_max=3.0, dr=0.1).compute().values,
                                   ref_s.values, rtol=1e-12)
    acc = ds.agi.rdf("Ag", "Ag", r_max=5.5, dr=0.25)
    np.testing.assert_array_equal(acc.values, ref_g.values)
    np.testing.assert_array_equal(ds.agi.van_hove_self("Ag", [0.05, 0.2], r_max=3.0, dr=0.1).values, ref_s.values)
    np.testing.assert_array_equal(ds.agi.van_hove_distinct("Ag", "Ag", 0.0, r_max=5.5, dr=0.25).isel(lag=0).values,
                                  ref_g.values)


def test_structure_bad_input():
    ds = ideal_gas(n_atoms=20, n_frames=5, cell=10.0)
    with pytest.raises(StructureError, match="exceeds half the smallest width"):
        rdf(ds, "Ar", "Ar", r_max=6.0, dr=0.1)
    with pytest.raises(StructureError, match="0 < dr < r_max"):
        rdf(ds, "Ar", "Ar", r_max=4.0, dr=0.0)
    with pytest.raises(SchemaError, match="not in the Dataset"):
        rdf(ds, "Ar", "Kr", r_max=4.0, dr=0.1)
    with pytest.raises(StructureError, match="not multiples"):
        van_hove_self(ds, "Ar", [0.015], r_max=4.0, dr=0.1)
    with pytest.raises(StructureError, match="outside the trajectory"):
        van_hove_distinct(ds, "Ar", "Ar", [1.0], r_max=4.0, dr=0.1)
    with pytest.raises(SchemaError, match="'cell'"):
        rdf(ds.drop_vars("cell"), "Ar", "Ar", r_max=4.0, dr=0.1)


def test_rdf_and_van_hove_through_the_store(store_dir):
    from agi_data import open_store

    mem = random_walk(n_atoms=30, n_frames=90, D=0.5, dt=0.01, cell=11.0, seed=8)
    store = open_store(store_dir)
    with store.create_run("rw", ["Ag"] * 30, mem.cell.values, 0.01, chunk_frames=32, chunk_atoms=16) as w:
        w.append(mem.positions.values)
    ds = store.trajectory("rw")
    g = rdf(ds, "Ag", "Ag", r_max=5.0, dr=0.2)
    assert g.chunks is not None
    np.testing.assert_allclose(g.values, rdf(mem, "Ag", "Ag", r_max=5.0, dr=0.2).values, rtol=1e-12)
    np.testing.assert_allclose(van_hove_self(ds, "Ag", [0.1], r_max=3.0, dr=0.1).values,
                               van_hove_self(mem, "Ag", [0.1], r_max=3.0, dr=0.1).values, rtol=1e-12)


# ----------------------------------------------------------------- cell lists against all pairs

def _strained_triclinic_cells(n_frames, rng):
    base = np.array([[12.0, 0.0, 0.0], [3.0, 11.0, 0.0], [-2.0, 2.5, 10.5]])
    strain = 1.0 + 0.04 * np.sin(np.linspace(0, 3, n_frames))[:, None, None] * rng.uniform(-1, 1, (1, 3, 3))
    return base[None] * strain


@pytest.mark.parametrize("r_max_fraction", [1.0, 0.45], ids=["half-width", "pruned-grid"])
def test_cell_list_histogram_equals_all_pairs_exactly_in_time_dependent_triclinic_cells(rng, r_max_fraction):
    from agi_data.analysis._pairs import pair_histogram
    from agi_data.pbc import half_width

    n_frames = 6
    cells = _strained_triclinic_cells(n_frames, rng)
    frac = rng.uniform(-0.5, 1.5, (n_frames, 150, 3))  # some points outside the cell: wrapping is the kernel's job
    pos = np.einsum("fni,fij->fnj", frac, cells)
    r_max = r_max_fraction * half_width(cells)
    edges = np.linspace(0.0, r_max, 41)
    for pa, pb, same in ((pos, pos, True), (pos[:, :60], pos[:, 60:], False)):
        fast = pair_histogram(pa, pb, cells, edges, same)
        ref = pair_histogram(pa, pb, cells, edges, same, method="all_pairs")
        np.testing.assert_array_equal(fast, ref)
        assert fast.sum() > 1000
        # and both agree with a direct numpy count of the same pairs (away from bin edges)
        d = pb[:, None, :, :] - pa[:, :, None, :]
        s = np.einsum("fabi,fij->fabj", d, np.linalg.inv(cells))
        r = np.linalg.norm(np.einsum("fabi,fij->fabj", s - np.rint(s), cells), axis=-1)
        if same:
            r[:, np.arange(pa.shape[1]), np.arange(pa.shape[1])] = np.inf
        direct = np.stack([np.histogram(rf[rf < r_max], bins=edges)[0] for rf in r])
        np.testing.assert_array_equal(fast, direct)


def test_distances_on_bin_edges_fall_in_the_same_bin_in_both_paths():
    from agi_data.analysis._pairs import pair_histogram

    grid = np.stack(np.meshgrid(*[np.arange(5) * 2.0] * 3, indexing="ij"), -1).reshape(1, -1, 3)  # simple cubic
    cell = np.eye(3) * 10.0
    edges = np.arange(0, 11) * 0.5  # 2.0 and 4.0 Å are bin edges
    fast = pair_histogram(grid, grid, cell, edges, True)
    np.testing.assert_array_equal(fast, pair_histogram(grid, grid, cell, edges, True, method="all_pairs"))
    n = grid.shape[1]
    # 2 Å and 4 Å neighbours sit on bin edges: those reached across the boundary come out 1 ulp short
    # (8 × fl(0.1) − 1 = −0.19999999999999996) and fall in the bin below, the same in both paths
    assert fast[0, 3] + fast[0, 4] == 6 * n and fast[0, 4] > 0 and fast[0, 3] > 0
    assert fast[0, 5] == 12 * n and fast[0, 6] == 8 * n  # 2√2, 2√3 Å: inside their bins
    assert fast[0, 7] + fast[0, 8] == (6 + 24) * n and fast[0, 7] > 0  # 4 Å (on the edge) and 2√5 Å
