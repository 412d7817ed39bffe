"""Transport analyses against answers no one here wrote.

Analytic results (random walk, ballistic flight, Ornstein–Uhlenbeck),
independent codes (MDAnalysis EinsteinMSD(fft=True), tidynamics, kinisi)
and brute-force sums.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from agi_data.analysis import (
    SchemaError,
    TransportError,
    diffusion_coefficient,
    green_kubo,
    msd,
    msd_covariance,
    unwrap,
    vacf,
    vdos,
)
from agi_data.analysis.pbc import unwrap_numpy
from agi_data.testing import ballistic, ornstein_uhlenbeck, random_walk, trajectory_dataset, wrap

TRICLINIC = np.array([[14.0, 0.0, 0.0], [4.0, 13.0, 0.0], [-3.0, 2.5, 12.0]])


@pytest.fixture(scope="module")
def ou():
    return ornstein_uhlenbeck(n_atoms=128, n_frames=4000, gamma=10.0, c0=3.0, dt=0.005, seed=7)


# ----------------------------------------------------------------- D from a random walk

def test_random_walk_D_within_2_percent_and_its_error():
    ds = random_walk(n_atoms=100, n_frames=2000, D=0.5, dt=0.01, cell=15.0, seed=11)
    fit = diffusion_coefficient(msd(ds, "Ag"))
    D, err = float(fit.D), float(fit.D_stderr)
    assert abs(D - 0.5) / 0.5 < 0.02
    assert abs(D - 0.5) < 3 * err
    # the window search found the diffusive regime from the first lags on
    assert float(fit.fit_start) <= 0.05
    assert fit.D.attrs["units"] == "Å^2/ps"


def test_D_stderr_is_calibrated_where_naive_least_squares_is_not():
    """400 independent one-atom walks: (D − D_true)/D_stderr must have unit spread."""
    ds = random_walk(n_atoms=400, n_frames=200, D=0.3, dt=0.02, cell=50.0, seed=5)
    m = msd(ds, "Ag", per_atom=True).rename(atom="replica")
    m.attrs["n_atoms"] = 1
    fit = diffusion_coefficient(m, fit_range=(0.02, 1.98))
    z = (fit.D - 0.3) / fit.D_stderr
    assert abs(float(z.mean())) < 0.2
    assert 0.85 < float(z.std()) < 1.15
    # the spread an ordinary least-squares error bar would claim, for contrast
    t = m.lag.values[1:100]
    y = m.isel(lag=slice(1, 100)).values
    A = np.stack([t, np.ones_like(t)], 1)
    resid = y - (A @ np.linalg.lstsq(A, y.T, rcond=None)[0]).T
    ols = np.sqrt((resid**2).sum(1) / (t.size - 2) / ((t - t.mean()) ** 2).sum()) / 6
    assert float(np.std((fit.D - 0.3).values / ols)) > 3  # OLS errors are far too small


def test_msd_covariance_equals_brute_force_sum():
    T, N, D, dt = 17, 3, 0.7, 0.1
    lags = np.array([1, 2, 5, 8, 12, 16])
    brute = np.zeros((lags.size, lags.size))
    for a, m in enumerate(lags):
        for b, n in enumerate(lags):
            s = sum(max(0, min(t + m, u + n) - max(t, u)) ** 2 for t in range(T - m) for u in range(T - n))
            brute[a, b] = 6 * (2 * D * dt) ** 2 * s / (N * (T - m) * (T - n))
    np.testing.assert_allclose(msd_covariance(lags, T, n_atoms=N, D=D, dt=dt), brute, rtol=1e-12)


def test_msd_covariance_matches_monte_carlo():
    T, lags = 40, np.array([1, 5, 20])
    rng = np.random.default_rng(0)
    steps = rng.normal(size=(20000, T - 1, 3))
    r = np.concatenate([np.zeros((20000, 1, 3)), np.cumsum(steps, 1)], 1)
    est = np.stack([((r[:, m:] - r[:, :-m]) ** 2).sum(-1).mean(1) for m in lags], 1)
    model = msd_covariance(lags, T, D=0.5, dt=1.0)  # σ² = 2Dδt = 1
    np.testing.assert_allclose(np.cov(est.T), model, rtol=0.06)


def test_ballistic_short_time_msd_is_v2_t2():
    ds = ballistic(n_atoms=50, n_frames=100, v_rms=8.0, dt=0.002, cell=12.0, seed=2)
    m = msd(ds, "Ag")
    t = m.lag.values
    np.testing.assert_allclose(m.values, ds.attrs["v2_mean"] * t**2, rtol=1e-9, atol=1e-12)
    with pytest.raises(TransportError, match="no diffusive regime"):
        diffusion_coefficient(m)


# ----------------------------------------------------------------- OU: VACF, VDOS, Green-Kubo

def _group_mean_se(per_atom: xr.DataArray, groups: int = 8):
    per_atom = per_atom.drop_vars([c for c in ("species", "symbol") if c in per_atom.coords])
    g = per_atom.coarsen(atom=per_atom.sizes["atom"] // groups).mean()
    return g.mean("atom"), g.std("atom", ddof=1) / np.sqrt(groups)


def test_ou_vacf_is_exponential_within_statistical_error(ou):
    c = vacf(ou, "Ag", per_atom=True, max_lag_ps=0.5)
    mean, se = _group_mean_se(c)
    exact = 3.0 * np.exp(-10.0 * c.lag)
    z = (mean - exact) / se
    assert float(np.abs(z).max()) < 4.5
    np.testing.assert_allclose(vacf(ou, "Ag", max_lag_ps=0.5).values, mean.values, rtol=1e-12)
    assert c.attrs["units"] == "Å^2/ps^2"
    norm = vacf(ou, "Ag", max_lag_ps=0.5, normalize=True)
    assert norm.isel(lag=0) == 1.0 and norm.attrs["units"] == "1"


def test_ou_vdos_is_the_lorentzian(ou):
    c = vacf(ou, "Ag", per_atom=True, max_lag_ps=1.0)
    s = vdos(c)
    mean, se = _group_mean_se(s)
    nu = s.frequency
    lorentz = 2 * 3.0 * 10.0 / (10.0**2 + (2 * np.pi * nu) ** 2)
    band = nu < 10.0  # THz: well below the Nyquist frequency of 100 THz
    z = ((mean - lorentz) / se).where(band, drop=True)
    assert float(np.abs(z).max()) < 4.5
    assert s.frequency.attrs["units"] == "THz" and s.attrs["units"] == "Å^2/ps"
    g = vdos(vacf(ou, "Ag", max_lag_ps=1.0), window="hann", normalize=True)
    assert abs(float(g.integrate("frequency")) - 1.0) < 1e-12


def test_green_kubo_D_agrees_with_msd_slope(ou):
    D_gk = green_kubo(vacf(ou, "Ag", max_lag_ps=1.0)).isel(lag=-1)
    fit = diffusion_coefficient(msd(ou, "Ag"))
    D_true = ou.attrs["D_true"]
    assert abs(float(fit.D) - D_true) < 3 * float(fit.D_stderr) + 0.01 * D_true
    # per-group spread of the Green-Kubo integral gives its error bar
    gk_groups = green_kubo(vacf(ou, "Ag", per_atom=True, max_lag_ps=1.0)).isel(lag=-1)
    _, se = _group_mean_se(gk_groups)
    assert abs(float(D_gk) - float(fit.D)) < 3 * np.hypot(float(se), float(fit.D_stderr))
    assert abs(float(D_gk) - D_true) / D_true < 0.03


# ----------------------------------------------------------------- independent codes

def _universe(positions: np.ndarray, dt: float):
    import MDAnalysis as mda
    from MDAnalysis.coordinates.memory import MemoryReader

    u = mda.Universe.empty(positions.shape[1], trajectory=False)
    u.load_new(positions.astype(np.float32), format=MemoryReader, dt=dt)
    return u


def test_msd_equals_mdanalysis_and_tidynamics():
    import tidynamics
    from MDAnalysis.analysis.msd import EinsteinMSD

    ds = random_walk(n_atoms=20, n_frames=500, D=0.4, dt=0.01, cell=40.0, wrapped=False, seed=4)
    ds["positions"] = ds.positions.astype(np.float32)  # what MDAnalysis stores
    ds.positions.attrs["unwrapped"] = True
    run = EinsteinMSD(_universe(ds.positions.values, 0.01), select="all", msd_type="xyz", fft=True).run()
    per_atom = msd(ds, "Ag", per_atom=True)
    np.testing.assert_allclose(per_atom.values[:, 1:], run.results.msds_by_particle.T[:, 1:], rtol=1e-8)
    np.testing.assert_allclose(msd(ds, "Ag").values[1:], run.results.timeseries[1:], rtol=1e-8)
    pos64 = ds.positions.values.astype(np.float64)
    tidy = np.stack([tidynamics.msd(pos64[:, i]) for i in range(20)])
    np.testing.assert_allclose(per_atom.values[:, 1:], tidy[:, 1:], rtol=1e-8)


def test_vacf_equals_tidynamics(ou):
    import tidynamics

    sub = ou.isel(atom=slice(0, 10), time=slice(0, 1000))
    v = sub.velocities.values
    tidy = np.stack([tidynamics.acf(v[:, i]) for i in range(10)])
    np.testing.assert_allclose(vacf(sub, "Ag", per_atom=True).values, tidy, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(vacf(sub, "Ag").values, tidy.mean(0), rtol=1e-8, atol=1e-12)


def test_D_and_error_compare_with_kinisi():
    """kinisi (Bayesian, its own covariance model) on the same walk: same D, similar error bar."""
    import scipp as sc
    from ase import Atoms
    from kinisi.analyze import DiffusionAnalyzer

    ds = random_walk(n_atoms=24, n_frames=200, D=0.5, dt=0.01, cell=20.0, seed=3)
    frames = [Atoms("Ag24", positions=p, cell=np.eye(3) * 20.0, pbc=True) for p in ds.positions.values]
    an = DiffusionAnalyzer.from_ase(frames, specie="Ag", time_step=sc.scalar(0.01, unit="ps"),
                                    step_skip=sc.scalar(1), progress=False)
    an.diffusion(sc.scalar(0.01, unit="ps"), progress=False, n_samples=200, n_burn=100,
                 random_state=np.random.RandomState(0))
    D_k = an.D.values.mean() * 1e4  # cm²/s → Å²/ps
    err_k = an.D.values.std() * 1e4
    fit = diffusion_coefficient(msd(ds, "Ag"), fit_range=(0.01, 1.99))
    assert abs(float(fit.D) - D_k) < 2 * np.hypot(err_k, float(fit.D_stderr))
    assert 0.6 < float(fit.D_stderr) / err_k < 1.6


# ----------------------------------------------------------------- unwrapping and cells

def test_wrapped_and_unwrapped_input_give_the_same_msd():
    wrapped = random_walk(n_atoms=30, n_frames=400, D=1.0, dt=0.01, cell=8.0, seed=9)
    truth = random_walk(n_atoms=30, n_frames=400, D=1.0, dt=0.01, cell=8.0, seed=9, wrapped=False)
    assert float(np.abs(wrapped.positions - truth.positions).max()) > 4.0  # really wrapped
    np.testing.assert_allclose(unwrap(wrapped).positions - wrapped.positions.isel(time=0),
                               truth.positions - truth.positions.isel(time=0), atol=1e-9)
    ref = msd(truth, "Ag")
    np.testing.assert_allclose(msd(wrapped, "Ag").values, ref.values, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(msd(unwrap(wrapped), "Ag").values, ref.values, rtol=1e-9, atol=1e-10)


def test_triclinic_cell_equals_equivalent_orthorhombic_description():
    L = 9.0
    ortho = np.eye(3) * L
    sheared = np.array([[L, 0, 0], [L, L, 0], [-L, L, L]])  # the same lattice, another basis
    truth = random_walk(n_atoms=25, n_frames=300, D=1.5, dt=0.01, cell=ortho, seed=1, wrapped=False)
    path = truth.positions.values
    a = trajectory_dataset(wrap(path, ortho), "Ag", ortho, 0.01)
    b = trajectory_dataset(wrap(path, sheared), "Ag", sheared, 0.01)
    assert float(np.abs(a.positions - b.positions).max()) > 1.0  # different wrapped coordinates
    np.testing.assert_allclose(msd(b, "Ag").values, msd(a, "Ag").values, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(msd(a, "Ag").values, msd(truth, "Ag").values, rtol=1e-9, atol=1e-10)


def test_time_dependent_triclinic_cell_unwraps_to_the_true_path():
    T = 200
    rng = np.random.default_rng(3)
    cells = TRICLINIC[None] * (1 + 0.03 * np.sin(np.arange(T) / 7.0))[:, None, None]
    cells = cells + rng.normal(scale=0.05, size=cells.shape)
    ds = random_walk(n_atoms=12, n_frames=T, D=2.0, dt=0.01, cell=cells, seed=6)
    truth = random_walk(n_atoms=12, n_frames=T, D=2.0, dt=0.01, cell=cells, seed=6, wrapped=False)
    u = unwrap(ds).positions
    np.testing.assert_allclose((u - u.isel(time=0)).values,
                               (truth.positions - truth.positions.isel(time=0)).values, atol=1e-9)
    np.testing.assert_allclose(msd(ds, "Ag").values, msd(truth, "Ag").values, rtol=1e-9, atol=1e-10)


def test_lazy_unwrap_is_blockwise_and_equals_numpy():
    ds = random_walk(n_atoms=10, n_frames=250, D=1.0, dt=0.01, cell=TRICLINIC, seed=8)
    lazy = unwrap(ds.chunk({"time": 32, "atom": 4})).positions
    assert lazy.chunks is not None and max(lazy.chunksizes["time"]) <= 32
    ref = unwrap_numpy(ds.positions.values, ds.cell.values)
    np.testing.assert_allclose(lazy.values, ref, atol=1e-12)


# ----------------------------------------------------------------- Dask, accessor

def test_dask_backed_and_distributed_give_the_same_numbers():
    from dask.distributed import Client, LocalCluster

    ds = random_walk(n_atoms=40, n_frames=300, D=0.5, dt=0.01, cell=10.0, seed=12)
    ds = ds.assign(velocities=ds.positions.diff("time", label="lower").reindex(time=ds.time, fill_value=0.0) / 0.01)
    ref_m, ref_v = msd(ds, "Ag", per_atom=True), vacf(ds, "Ag")
    chunked = ds.chunk({"time": 64, "atom": 16})
    lazy_m, lazy_v = msd(chunked, "Ag", per_atom=True), vacf(chunked, "Ag")
    assert lazy_m.chunks is not None and lazy_v.chunks is not None  # lazy in, lazy out
    threaded_m, threaded_v = lazy_m.values, lazy_v.values
    np.testing.assert_array_equal(threaded_m, ref_m.values)  # per atom: the same arithmetic
    np.testing.assert_allclose(threaded_v, ref_v.values, rtol=1e-13)  # atom mean summed in other blocks
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster):
        np.testing.assert_array_equal(msd(chunked, "Ag", per_atom=True).compute().values, threaded_m)
        np.testing.assert_array_equal(vacf(chunked, "Ag").compute().values, threaded_v)
        np.testing.assert_array_equal(msd(ds, "Ag", per_atom=True).values, ref_m.values)
        np.testing.assert_array_equal(vacf(ds, "Ag").values, ref_v.values)


def test_accessor_and_max_lag():
    ds = ornstein_uhlenbeck(n_atoms=8, n_frames=300, seed=1)
    m = ds.agi.msd("Ag", max_lag_ps=0.5)
    assert m.sizes["lag"] == 101 and m.lag.attrs["units"] == "ps" and m.attrs["units"] == "Å^2"
    np.testing.assert_array_equal(m.values, msd(ds, "Ag").isel(lag=slice(0, 101)).values)
    np.testing.assert_array_equal(ds.agi.vacf("Ag").values, vacf(ds, "Ag").values)
    np.testing.assert_array_equal(m.agi.diffusion_coefficient(fit_range=(0.2, 0.5)).D,
                                  diffusion_coefficient(m, fit_range=(0.2, 0.5)).D)
    c = ds.agi.vacf("Ag", max_lag_ps=0.3)
    assert c.agi.vdos().dims == ("frequency",)
    assert c.agi.green_kubo().attrs["units"] == "Å^2/ps"
    u = ds.agi.unwrap()
    assert u.positions.attrs["unwrapped"] is True


# ----------------------------------------------------------------- bad input

def test_bad_input_gives_clear_errors():
    ds = random_walk(n_atoms=4, n_frames=50, seed=0)
    with pytest.raises(SchemaError, match="species .*Xe.* not in the Dataset"):
        msd(ds, "Xe")
    with pytest.raises(SchemaError, match="unknown element"):
        msd(ds, "Qq")
    with pytest.raises(SchemaError, match="at least 2 frames"):
        msd(ds.isel(time=[0]), "Ag")
    with pytest.raises(SchemaError, match="needs the variable 'velocities'"):
        vacf(ds, "Ag")
    with pytest.raises(TransportError, match="longer than the trajectory"):
        msd(ds, "Ag", max_lag_ps=0.5)
    m = msd(ds, "Ag")
    with pytest.raises(TransportError, match="outside the data"):
        diffusion_coefficient(m, fit_range=(0.1, 5.0))
    with pytest.raises(TransportError, match="outside the data"):
        diffusion_coefficient(m, fit_range=(0.3, 0.2))
    with pytest.raises(SchemaError, match="needs the variable 'positions'"):
        msd(ds.drop_vars("positions"), "Ag")
    with pytest.raises(SchemaError, match="needs the variable 'cell'"):
        msd(ds.drop_vars("cell"), "Ag")
    with pytest.raises(SchemaError, match=r"dims \('time', 'atom', 'xyz'\)"):
        msd(ds.transpose("atom", "time", "xyz", "vec"), "Ag")
    with pytest.raises(SchemaError, match="'species"):
        msd(ds.drop_vars("species"), "Ag")
    with pytest.raises(SchemaError, match="'lag'"):
        diffusion_coefficient(ds.positions)
    with pytest.raises(TransportError, match="window"):
        vdos(m, window="boxcar")


# ----------------------------------------------------------------- through the store

def test_through_the_store_out_of_core_equals_in_memory(store_dir):
    import dask

    from agi_data import open_store

    mem = ornstein_uhlenbeck(n_atoms=20, n_frames=600, gamma=8.0, c0=3.0, dt=0.005, cell=9.0, seed=21)
    store = open_store(store_dir)
    with store.create_run("ou", ["Ag"] * 20, mem.cell.values, 0.005, chunk_frames=128, chunk_atoms=8) as w:
        for start in range(0, 600, 250):  # three appends, as an engine would
            sl = slice(start, start + 250)
            w.append(mem.positions.values[sl], velocities=mem.velocities.values[sl])
    ds = store.trajectory("ou")
    assert ds.positions.chunks is not None
    lazy_m = msd(ds, "Ag", per_atom=True)
    lazy_v = vacf(ds, "Ag")
    assert lazy_m.chunks is not None and lazy_v.chunks is not None
    with dask.config.set({"agi.block_bytes": 8 * 600 * 32}):  # a tiny budget: 8 atoms per block
        small_blocks = msd(ds, "Ag").compute()
    np.testing.assert_allclose(lazy_m.values, msd(mem, "Ag", per_atom=True).values, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(small_blocks.values, msd(mem, "Ag").values, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(lazy_v.values, vacf(mem, "Ag").values, rtol=1e-12)
    assert lazy_m.attrs["run_id"] == "ou"
    fit = diffusion_coefficient(lazy_m, fit_range=(0.5, 1.4))  # a lazy per-atom MSD is accepted as it is
    ref = diffusion_coefficient(msd(mem, "Ag"), fit_range=(0.5, 1.4))
    np.testing.assert_allclose(float(fit.D), float(ref.D), rtol=1e-10)
