"""Block standard errors and the block jackknife, calibrated on processes with a known answer.

Calibration: over independent realisations (seeds) of the same process, the
spread (standard deviation) of an estimate must match the error each
realisation reports within a factor of 1.5.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from agi_data.analysis import diffusion_coefficient, gle_correlations, memory_kernel, msd, vacf
from agi_data.analysis.blocks import BlockError, block_edges, block_error, jackknife, origin_block_sums
from agi_data.analysis.conditioning import ConditioningError, compare_kernels
from agi_data.testing.gle import exponential_kernel, gle_trajectory

EXP = exponential_kernel(1000.0, 0.02)
N_REAL = 16


def _ratio(values: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """spread over realisations / RMS of the reported errors, per lag."""
    return values.std(axis=0, ddof=1) / np.sqrt((errors**2).mean(axis=0))


@pytest.fixture(scope="module")
def realisations():
    return [gle_trajectory(EXP, n_atoms=16, n_frames=4000, dt_ps=0.002, seed=100 + r) for r in range(N_REAL)]


def test_vacf_block_errors_calibrated(realisations):
    lags = [0, 5, 10, 25]
    res = [block_error(vacf, ds, "Ag", max_lag=0.1, blocks=8) for ds in realisations]
    vals = np.array([r.values[lags] for r in res])
    errs = np.array([r["stderr"].values[lags] for r in res])
    ratio = _ratio(vals, errs)
    assert np.all((ratio > 1 / 1.5) & (ratio < 1.5)), ratio
    r0 = res[0]
    assert r0.attrs["n_blocks"] == 8 and r0.attrs["block_ps"] == pytest.approx(1.0)
    np.testing.assert_allclose(r0.values, vacf(realisations[0], "Ag", max_lag=0.1).values, rtol=1e-12)


def test_msd_block_errors_and_diffusion_still_works(realisations):
    res = [block_error(msd, ds, "Ag", max_lag=0.8, blocks=8) for ds in realisations]
    lags = [50, 200, 400]
    ratio = _ratio(np.array([r.values[lags] for r in res]), np.array([r["stderr"].values[lags] for r in res]))
    assert np.all((ratio > 1 / 1.5) & (ratio < 1.5)), ratio
    d = diffusion_coefficient(res[0])  # the result is still an MSD DataArray
    assert float(d["D"]) == pytest.approx(realisations[0].attrs["diffusion_exact_A2_per_ps"], rel=0.25)


def test_kernel_jackknife_calibrated(realisations):
    """The kernel's jackknife error (8 blocks of origins) against its spread over 16 independent runs."""
    lags = [0, 5, 10, 20]
    ks = [memory_kernel(ds, "Ag", max_lag_ps=0.06, blocks=8) for ds in realisations]
    vals = np.array([k.values[lags] for k in ks])
    errs = np.array([k["stderr"].values[lags] for k in ks])
    ratio = _ratio(vals, errs)
    assert np.all((ratio > 1 / 1.5) & (ratio < 1.5)), ratio
    # the friction integral ∫K dt too (a linear functional of the replicates)
    gam = np.array([float(k.integrate("lag")) for k in ks])
    gam_err = np.array([jackknife(np.trapezoid(k.attrs["block_replicates"], dx=0.002, axis=1)[:, None])[0][0]
                        for k in ks])
    assert 1 / 1.5 < gam.std(ddof=1) / np.sqrt((gam_err**2).mean()) < 1.5
    # and the estimates scatter around the truth within their errors
    assert abs(vals[:, 0].mean() - EXP(0.0)) < 3 * vals[:, 0].std(ddof=1) / np.sqrt(N_REAL)


def test_origin_block_sums_are_the_all_origins_estimate(realisations, rng):
    ds = realisations[0].isel(atom=slice(0, 5), time=slice(0, 400))
    mask = rng.random((5, 400)) < 0.4
    ref = gle_correlations(ds, "Ag", atoms=mask, max_lag_ps=0.02)
    edges = block_edges(400, 8, 11)
    w = xr.DataArray(mask.astype(float), dims=("atom", "time"))
    for name, a, b in [("vacf", "velocities", "velocities"), ("velocity_force", "velocities", "forces")]:
        s, n = origin_block_sums(ds[a], ds[b], w, edges, 11)
        np.testing.assert_allclose(s.sum(0) / n.sum(0), ref[name].values, rtol=1e-9)
    # the counts are the selected origins of each block that have a partner at each lag
    assert n[:, 0].sum() == mask.sum() and n[-1, 10] == mask[:, edges[-2]:400 - 10].sum()


def test_block_edges_refuse_short_runs():
    with pytest.raises(BlockError, match="at least 8 blocks"):
        block_edges(1000, 4, 10)
    with pytest.raises(BlockError, match=r"at least 800 frames = 7.99 ps"):
        block_edges(500, 8, 100, dt_ps=0.01)
    np.testing.assert_array_equal(block_edges(80, 8, 10), np.arange(0, 81, 10))


def test_kernel_blocks_bad_input(realisations):
    ds = realisations[0].isel(time=slice(0, 400))
    with pytest.raises(BlockError, match="shorter than the longest lag"):
        memory_kernel(ds, "Ag", max_lag_ps=0.2, blocks=8)
    one_block = np.zeros((16, 400), bool)
    one_block[:, :40] = True  # every selected origin in the first block
    with pytest.raises(BlockError, match="leaves no selected origin"):
        memory_kernel(ds, "Ag", atoms=one_block, max_lag_ps=0.02, blocks=8)
    with pytest.raises(BlockError, match="max_lag"):
        block_error(vacf, ds, "Ag", blocks=8)


# ------------------------------------------------------------------ compare_kernels


def test_compare_kernels_same_and_different(realisations):
    same = [compare_kernels(memory_kernel(realisations[2 * i], "Ag", max_lag_ps=0.06, blocks=8),
                            memory_kernel(realisations[2 * i + 1], "Ag", max_lag_ps=0.06, blocks=8))
            for i in range(N_REAL // 2)]
    # the null: no pair of runs of the same process is called different at 1 %, and not most at 5 %
    p = np.array([c.attrs["p_global"] for c in same])
    assert (p > 0.01).all() and (p < 0.05).sum() <= 2, p
    assert not same[0].attrs["paired"]
    other = gle_trajectory(exponential_kernel(1300.0, 0.02), n_atoms=16, n_frames=4000, dt_ps=0.002, seed=7)
    diff = compare_kernels(memory_kernel(other, "Ag", max_lag_ps=0.06, blocks=8),
                           memory_kernel(realisations[0], "Ag", max_lag_ps=0.06, blocks=8))
    assert diff.attrs["p_global"] < 1e-3
    assert diff["difference"].sel(lag=0.0) == pytest.approx(300.0, rel=0.2)
    assert diff.attrs["friction_difference"] == pytest.approx(300 * 0.02 * (1 - np.exp(-3)), rel=0.35)
    assert diff.attrs["p_friction"] < 0.01


def test_compare_kernels_paired_masks(realisations, rng):
    """Two random halves of the origins of one run: the same kernel, paired; a paired test, not significant."""
    ds = realisations[0]
    half = rng.random((16, 4000)) < 0.5
    ka = memory_kernel(ds, "Ag", atoms=half, max_lag_ps=0.06, blocks=8)
    kb = memory_kernel(ds, "Ag", atoms=~half, max_lag_ps=0.06, blocks=8)
    c = compare_kernels(ka, kb)  # paired: detected from the run and the blocks
    assert c.attrs["paired"] and c.attrs["p_global"] > 0.01
    with pytest.raises(ConditioningError, match="blocks=n"):
        compare_kernels(memory_kernel(ds, "Ag", max_lag_ps=0.06), kb)


def _rotational_diffusion(seed: int, n_frames: int = 640):
    """α-AgI (16 I) whose lone-pair tetrahedra turn by independent small random rotations every frame."""
    from scipy.spatial.transform import Rotation

    from agi_data.testing.paddlewheel import agi_lattice_with_centres

    rng = np.random.default_rng(seed)
    steps = Rotation.from_rotvec(rng.normal(scale=0.08, size=(n_frames * 16, 3))).as_matrix()
    steps = steps.reshape(n_frames, 16, 3, 3)
    rot = np.empty_like(steps)
    rot[0] = Rotation.random(16, random_state=seed).as_matrix()
    for t in range(1, n_frames):
        rot[t] = steps[t] @ rot[t - 1]
    return agi_lattice_with_centres(n=2, n_frames=n_frames, orientations=rot)


def test_rotor_correlation_block_errors_calibrated():
    """Blocks over the Wannier frames: the error matches the spread over 10 independent rotational walks."""
    from agi_data.analysis import rotor_correlation

    lags = [5, 10, 20]
    res = [block_error(rotor_correlation, *_rotational_diffusion(200 + s), max_lag=0.4, blocks=8) for s in range(10)]
    ratio = _ratio(np.array([r.values[lags] for r in res]), np.array([r["stderr"].values[lags] for r in res]))
    assert np.all((ratio > 1 / 1.5) & (ratio < 1.5)), ratio
    assert res[0]["stderr"].values[0] == 0.0  # C_rot(0) = 1 by normalisation, in every block
