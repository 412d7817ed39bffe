"""paddlewheel_mask on constructed α-AgI with known rotating and still iodides; bad input."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from agi_data.analysis import lone_pair_angular_velocity, memory_kernel
from agi_data.analysis.conditioning import ConditioningError, paddlewheel_mask
from agi_data.analysis.pbc import distances
from agi_data.testing.paddlewheel import agi_lattice_with_centres, rotation_about

OMEGA = 10.0  # rad/ps
DT = 0.01
N_FRAMES = 12


def _lattice(wannier_every=1, n_frames=N_FRAMES):
    n_i = 16  # n = 2: 16 I, 16 Ag
    rotating = np.zeros(n_i, bool)
    rotating[[0, 3, 5, 8, 13]] = True
    t = np.arange(n_frames) * DT
    rot = np.broadcast_to(np.eye(3), (n_frames, n_i, 3, 3)).copy()
    rot[:, rotating] = rotation_about([1.0, 2.0, 0.5], OMEGA * t)[:, None]
    traj, wan = agi_lattice_with_centres(n=2, n_frames=n_frames, dt_ps=DT, orientations=rot,
                                         wannier_every=wannier_every)
    return traj, wan, rotating


def _expected_speed(traj, rotating):
    """Mean of ω over the 4 nearest iodides of each Ag, by brute force (the lattice is static)."""
    z = traj["species"].values
    i_atoms, ag_atoms = np.flatnonzero(z == 53), np.flatnonzero(z == 47)
    pos = traj["positions"].values[0]
    d = distances(pos[ag_atoms], pos[i_atoms], traj["cell"].values)
    site = np.argsort(d, axis=1)[:, :4]
    return OMEGA * rotating[site].mean(axis=1)


def test_site_speeds_and_masks():
    traj, wan, rotating = _lattice()
    m = paddlewheel_mask(traj, wan, thresholds=(0.3 * OMEGA, 0.3 * OMEGA))
    expected = _expected_speed(traj, rotating)
    assert m["rotating"].dims == ("atom", "time") and m.sizes["atom"] == 16 and m.sizes["time"] == N_FRAMES
    inner = m["site_speed"].isel(time=slice(1, -1)).values
    np.testing.assert_allclose(inner, np.broadcast_to(expected[:, None], inner.shape), atol=1e-6)
    # the first and last frames have no central difference: in neither class
    assert np.isnan(m["site_speed"].isel(time=[0, -1]).values).all()
    assert not (m["rotating"].isel(time=[0, -1]).any() or m["still"].isel(time=[0, -1]).any())
    np.testing.assert_array_equal(m["rotating"].values[:, 1:-1], np.broadcast_to((expected >= 3)[:, None], (16, 10)))
    np.testing.assert_array_equal(m["still"].values[:, 1:-1], np.broadcast_to((expected <= 3)[:, None], (16, 10)))
    assert m.attrs["labelled_fraction"] == pytest.approx(10 / 12)
    assert set(np.unique(expected)) > {0.0}  # the construction has both kinds of sites
    np.testing.assert_array_equal(m["index"].values, np.arange(16, 32))


def test_terciles_and_max_statistic():
    traj, wan, rotating = _lattice()
    m = paddlewheel_mask(traj, wan)
    s = m["site_speed"].values
    lo, hi = np.quantile(s[np.isfinite(s)], [1 / 3, 2 / 3])
    assert (m.attrs["threshold_low"], m.attrs["threshold_high"]) == (pytest.approx(lo), pytest.approx(hi))
    assert m.attrs["thresholds_from"] == "terciles"
    mx = paddlewheel_mask(traj, wan, statistic="max", thresholds=(0.5 * OMEGA, 0.5 * OMEGA))
    expected_any = _expected_speed(traj, rotating) > 0
    np.testing.assert_array_equal(mx["rotating"].values[:, 5], expected_any)


def test_speeds_given_directly_and_sparser_electronic_frames():
    traj, wan, rotating = _lattice()
    omega = lone_pair_angular_velocity(traj, wan)
    a = paddlewheel_mask(traj, wan, thresholds=(3, 3))
    b = paddlewheel_mask(traj, omega, thresholds=(3, 3))  # e.g. predicted moments
    xr.testing.assert_equal(a["rotating"], b["rotating"])
    # centres every 2nd frame: the trajectory frames in between take the nearest electronic frame's label
    traj2, wan2, _ = _lattice(wannier_every=2, n_frames=13)
    m2 = paddlewheel_mask(traj2, wan2, thresholds=(3, 3))
    assert m2.attrs["electronic_frame_step"] == 2
    expected = _expected_speed(traj2, rotating)
    np.testing.assert_allclose(m2["site_speed"].values[:, 2:11], np.broadcast_to(expected[:, None], (16, 9)),
                               atol=1e-6)


def test_mask_feeds_memory_kernel(rng):
    traj, wan, _ = _lattice(n_frames=40)
    traj = traj.assign(velocities=(("time", "atom", "xyz"), rng.normal(size=(40, 32, 3)), {"units": "Å/ps"}),
                       forces=(("time", "atom", "xyz"), rng.normal(size=(40, 32, 3)), {"units": "eV/Å"}))
    m = paddlewheel_mask(traj, wan, thresholds=(3, 3))
    k = memory_kernel(traj, "Ag", atoms=m["rotating"], max_lag_ps=0.03, on_unstable="truncate")
    assert k.attrs["time_dependent_selection"] and k.attrs["n_samples"] == int(m["rotating"].sum())


def test_bad_input():
    traj, wan, _ = _lattice()
    short = wan.isel(frame=slice(0, 6))
    with pytest.raises(ConditioningError, match=r"covers frames 0\.\.5 .* needs frames 0\.\.11"):
        paddlewheel_mask(traj, short)
    ok = paddlewheel_mask(traj, short, frames=slice(0, 6), thresholds=(3, 3))  # the part it covers
    assert not ok["rotating"].values[:, 6:].any()
    with pytest.raises(ConditioningError, match="statistic"):
        paddlewheel_mask(traj, wan, statistic="median")
    with pytest.raises(ConditioningError, match="lo ≤ hi"):
        paddlewheel_mask(traj, wan, thresholds=(5, 1))
    with pytest.raises(ConditioningError, match="Wannier set"):
        paddlewheel_mask(traj, np.zeros(3))
    with pytest.raises(ConditioningError, match="dims"):
        paddlewheel_mask(traj, xr.DataArray(np.zeros((12, 16)), dims=("time", "ion")))


# ------------------------------------------------------------------ cage correlation: sets or distance order


def test_cage_correlation_set_versus_ordered():
    """Two neighbours that swap their order of distance every 5 frames: the set never changes, the order does."""
    from agi_data.analysis import cage_correlation
    from agi_data.testing.processes import trajectory_dataset

    T = 60
    swapped = (np.arange(T) // 5) % 2 == 1
    pos = np.zeros((T, 4, 3))
    pos[:, 0] = [10.0, 10.0, 10.0]  # the Ag
    near, far = np.where(swapped, 2.5, 2.0), np.where(swapped, 2.0, 2.5)
    pos[:, 1] = np.c_[10.0 + near, np.full(T, 10.0), np.full(T, 10.0)]
    pos[:, 2] = np.c_[np.full(T, 10.0), 10.0 + far, np.full(T, 10.0)]
    pos[:, 3] = [16.0, 16.0, 16.0]  # a third atom, always farther
    traj = trajectory_dataset(pos, ["Ag", "I", "I", "I"], 20.0, 0.01)
    as_set = cage_correlation(traj, "Ag", n_neighbors=2, neighbor_species="I", max_lag=0.3)
    ordered = cage_correlation(traj, "Ag", n_neighbors=2, neighbor_species="I", max_lag=0.3, compare="ordered")
    np.testing.assert_allclose(as_set.values, 1.0)
    direct = [np.mean(swapped[: T - m] == swapped[m:]) for m in range(31)]
    np.testing.assert_allclose(ordered.values, direct, rtol=1e-12, atol=1e-12)
    assert ordered.attrs["compare"] == "ordered" and as_set.attrs["compare"] == "set"
    with pytest.raises(Exception, match="compare must be"):
        cage_correlation(traj, "Ag", n_neighbors=2, compare="sorted")
