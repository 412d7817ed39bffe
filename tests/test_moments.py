"""ℓ = 3 moments and dipoles of the lone pairs, and the analyses that take them.

Known answers: SciPy's complex spherical harmonics, the addition theorem,
the centre-based rotor function and dipoles of the same frames, and a rigid
tetrahedron rotating at a known rate.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.spatial.transform import Rotation
from scipy.special import eval_legendre, sph_harm_y

import agi_data.analysis as an
from agi_data.analysis.moments import (
    ROTOR_L3_NORM,
    lone_pair_angular_velocity_from_moments,
    lone_pair_moments,
    real_harmonics_l3,
    rotor_function_from_moments,
    wigner_l3,
)
from agi_data.analysis.wannier import WannierError
from agi_data.testing.paddlewheel import TETRAHEDRON, agi_lattice_with_centres, rotation_about


def unit(n, seed=0):
    v = np.random.default_rng(seed).normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def scipy_real_l3(u):
    """Real harmonics without the Condon–Shortley phase, built from SciPy's complex ones."""
    theta = np.arccos(np.clip(u[:, 2], -1, 1))
    phi = np.arctan2(u[:, 1], u[:, 0])
    out = []
    for m in range(-3, 4):
        y = sph_harm_y(3, abs(m), theta, phi)
        cs = (-1) ** abs(m)  # undo SciPy's Condon–Shortley phase
        out.append(y.real if m == 0 else math.sqrt(2) * cs * (y.imag if m < 0 else y.real))
    return np.stack(out, -1)


def test_harmonics_match_scipy():
    u = unit(200)
    np.testing.assert_allclose(real_harmonics_l3(u), scipy_real_l3(u), atol=1e-12)


def test_harmonics_are_orthonormal():
    # Gauss–Legendre in cos θ × uniform φ is exact for these degree-6 products
    x, w = np.polynomial.legendre.leggauss(8)
    phi = np.arange(16) * 2 * np.pi / 16
    ct, ph = np.meshgrid(x, phi, indexing="ij")
    st = np.sqrt(1 - ct**2)
    u = np.stack([st * np.cos(ph), st * np.sin(ph), ct], -1).reshape(-1, 3)
    weights = np.repeat(w, 16) * 2 * np.pi / 16
    y = real_harmonics_l3(u)
    np.testing.assert_allclose(y.T @ (weights[:, None] * y), np.eye(7), atol=1e-12)


def test_addition_theorem():
    u, n = unit(50, 1), unit(50, 2)
    lhs = eval_legendre(3, np.einsum("ij,ij->i", u, n))
    rhs = 4 * np.pi / 7 * (real_harmonics_l3(u) * real_harmonics_l3(n)).sum(-1)
    np.testing.assert_allclose(lhs, rhs, atol=1e-12)
    assert ROTOR_L3_NORM == pytest.approx((4 + 12 * eval_legendre(3, -1 / 3)) ** -0.5, rel=1e-14)


def test_wigner_matrix_is_a_representation():
    r1, r2 = Rotation.random(2, random_state=3).as_matrix()
    d1, d2 = wigner_l3(r1), wigner_l3(r2)
    np.testing.assert_allclose(d1 @ d1.T, np.eye(7), atol=1e-12)
    np.testing.assert_allclose(wigner_l3(r1 @ r2), d1 @ d2, atol=1e-12)
    u = unit(10, 4)
    np.testing.assert_allclose(real_harmonics_l3(u @ r1.T), real_harmonics_l3(u) @ d1.T, atol=1e-12)
    np.testing.assert_allclose(wigner_l3(-np.eye(3)), -np.eye(7), atol=1e-12)  # ℓ = 3 is odd


@pytest.fixture(scope="module")
def lattice():
    orient = Rotation.random(6 * 16, random_state=5).as_matrix().reshape(6, 16, 3, 3)
    return agi_lattice_with_centres(n=2, n_frames=6, orientations=orient, noise=0.05, seed=2)


@pytest.mark.parametrize("axis", ["x", "y", "z", [0.3, -1.2, 0.7]])
def test_rotor_from_moments_equals_rotor_from_centres(lattice, axis):
    traj, wan = lattice
    mom = lone_pair_moments(traj, wan)
    ref = an.rotor_function(traj, wan, axis=axis)
    got = rotor_function_from_moments(mom, axis=axis)
    assert np.abs(ref).max() > 0.1
    np.testing.assert_allclose(got.values, ref.values, atol=1e-10)
    np.testing.assert_array_equal(got["atom"].values, ref["atom"].values)
    np.testing.assert_allclose(got["frame_time"].values, ref["frame_time"].values)


def test_dipoles_and_coordinates_match_the_centre_analyses(lattice):
    traj, wan = lattice
    mom = lone_pair_moments(traj, wan)
    xr.testing.assert_allclose(mom["dipole"], an.iodide_dipoles(traj, wan), atol=1e-12)
    assert mom["octupole"].dims == ("frame", "ion", "m")
    assert list(mom["m"].values) == list(range(-3, 4))
    assert "real orthonormal" in mom.attrs["convention"] and mom["dipole"].attrs["units"] == "e·Å"
    ag = lone_pair_moments(traj, wan, species="Ag")
    assert "octupole" not in ag and ag.sizes["ion"] == 16
    xr.testing.assert_allclose(ag["dipole"], an.iodide_dipoles(traj, wan, species="Ag"), atol=1e-12)


def test_bad_frame_masked_in_both_variables(lattice):
    traj, wan = lattice
    cen = wan["centres"].values.copy()
    cen[3, 0] = cen[3, 4]  # frame 3: iodide 0 owns 3 centres, iodide 1 owns 5
    bad = wan.copy(data={"centres": cen})
    mom = lone_pair_moments(traj, bad)
    assert np.isnan(mom["octupole"].sel(frame=3)).all() and np.isnan(mom["dipole"].sel(frame=3)).all()
    assert np.isfinite(mom["octupole"].sel(frame=2)).all()
    assert bool(mom["bad_frame"].sel(frame=3))


def test_rigid_rotation_angular_speed():
    omega, dt, axis = 4.0, 0.002, np.array([0.2, -0.5, 0.84])
    t = np.arange(40) * dt
    rot = rotation_about(axis, omega * t) @ Rotation.from_euler("zyx", [0.4, 1.0, -0.3]).as_matrix()
    orient = np.broadcast_to(rot[:, None], (40, 2, 3, 3))
    traj, wan = agi_lattice_with_centres(n=1, n_frames=40, dt_ps=dt, orientations=orient)
    w_mom = lone_pair_angular_velocity_from_moments(lone_pair_moments(traj, wan))
    inner = w_mom.isel(frame=slice(1, -1)).values
    np.testing.assert_allclose(inner, omega, rtol=2e-4)  # chord vs arc: (ωΔ)²/6 ≈ 1e-5
    assert np.isnan(w_mom.isel(frame=0)).all()
    w_cen = an.lone_pair_angular_velocity(traj, wan)
    np.testing.assert_allclose(inner, w_cen.isel(frame=slice(1, -1)).values, rtol=2e-4)


def test_errors():
    traj, wan = agi_lattice_with_centres(n=1, n_frames=3)
    mom = lone_pair_moments(traj, wan)
    with pytest.raises(WannierError, match="l=3 only"):
        rotor_function_from_moments(mom, l=4)
    with pytest.raises(WannierError, match="octupole"):
        rotor_function_from_moments(lone_pair_moments(traj, wan, species="Ag"))
    with pytest.raises(WannierError, match="axis"):
        rotor_function_from_moments(mom, axis="w")


# --------------------------------------------------------------------------------------------
# the analyses take either source: the Wannier set or the moments
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("axis", ["x", "y", "z", [0.3, -1.2, 0.7], [-2.0, 0.1, 0.05]])
def test_rotor_function_dispatches_on_moments(lattice, axis):
    traj, wan = lattice
    mom = lone_pair_moments(traj, wan).compute()
    ref = an.rotor_function(traj, wan, axis=axis)
    got = an.rotor_function(traj, mom, axis=axis)
    assert np.abs(ref).max() > 0.1
    np.testing.assert_allclose(got.values, ref.values, atol=1e-10)
    np.testing.assert_array_equal(got["atom"].values, ref["atom"].values)


def test_correlations_and_dipoles_from_moments_equal_those_from_centres(lattice):
    traj, wan = lattice
    centres = wan["centres"].values.copy()
    centres[:, 0:64:4] += np.random.default_rng(3).normal(0.0, 0.1, size=(centres.shape[0], 16, 3))  # polar I
    wan = wan.copy(data={"centres": centres})
    mom = lone_pair_moments(traj, wan).compute()
    assert np.abs(mom["dipole"].values).max() > 0.05
    for axis in ("x", [0.3, -1.2, 0.7]):
        a, b = an.rotor_correlation(traj, wan, axis=axis), an.rotor_correlation(traj, mom, axis=axis)
        np.testing.assert_allclose(b.values, a.values, atol=1e-10)
        np.testing.assert_array_equal(b["n_samples"].values, a["n_samples"].values)
    for kind in ("orientation", "vector"):
        np.testing.assert_allclose(an.dipole_correlation(traj, mom, kind=kind).values,
                                   an.dipole_correlation(traj, wan, kind=kind).values, atol=1e-10)
    xr.testing.assert_allclose(an.iodide_dipoles(traj, mom).reset_coords(drop=True),
                               an.iodide_dipoles(traj, wan).reset_coords(drop=True), atol=1e-12)


def test_moments_on_every_frame_run_at_the_md_frame_rate():
    """Centres on every 3rd frame give a 3-frame lag step; moments on every frame give the MD step."""
    t = np.arange(30) * 0.01
    orient = rotation_about([0.3, 1.0, -0.4], 6.0 * t)[:, None].repeat(2, axis=1)
    traj, wan = agi_lattice_with_centres(n=1, n_frames=30, orientations=orient)
    sparse = wan.isel(frame=slice(None, None, 3))
    mom = lone_pair_moments(traj, wan).compute()
    c_sparse = an.rotor_correlation(traj, sparse)
    c_full = an.rotor_correlation(traj, mom)
    assert c_sparse.attrs["frame_step"] == 3 and c_full.attrs["frame_step"] == 1
    np.testing.assert_allclose(np.diff(c_full["lag"].values), 0.01)
    assert c_full.sizes["lag"] == 30
    # each is the all-origins average of M(t0)M(t0+t) over its own frames (a direct double loop)
    for c, frames in ((c_full, np.arange(30)), (c_sparse, np.arange(0, 30, 3))):
        m = an.rotor_function(traj, wan.sel(frame=frames)).values
        direct = np.array([np.mean(m[: m.shape[0] - k] * m[k:]) for k in range(m.shape[0])])
        np.testing.assert_allclose(c.values, direct / direct[0], atol=1e-10)
    w = an.lone_pair_angular_velocity(traj, mom)
    np.testing.assert_allclose(w.isel(frame=slice(1, -1)).values, 6.0, rtol=1e-2)  # chord vs arc, (3ωΔ)²/6
    assert w.attrs["units"] == "rad/ps" and "dT3/dt" in w.attrs["long_name"]


def test_hop_conditioned_average_and_paddlewheel_mask_take_moments():
    n_frames, dt, omega = 16, 0.01, 10.0
    t = np.arange(n_frames) * dt
    rot = np.broadcast_to(np.eye(3), (n_frames, 16, 3, 3)).copy()
    rot[:, [0, 3, 5, 8, 13]] = rotation_about([1.0, 2.0, 0.5], omega * t)[:, None]
    traj, wan = agi_lattice_with_centres(n=2, n_frames=n_frames, dt_ps=dt, orientations=rot)
    # lengthen one lone pair of every iodide by 0.1 Å: a dipole that turns with the tetrahedron
    centres = wan["centres"].values.copy()
    centres[:, 0:64:4] += 0.1 * np.einsum("tiab,b->tia", rot, TETRAHEDRON[0])
    wan = wan.copy(data={"centres": centres})
    mom = lone_pair_moments(traj, wan).compute()
    # a hand-made hop: Ag atom 16 from its own tetrahedron to that of another at frame 8
    z = traj["species"].values
    i_atoms = np.flatnonzero(z == 53)
    pos = traj["positions"].values[0]
    d = an.pbc.distances(pos[[16]], pos[i_atoms], traj["cell"].values)[0]
    site = tuple(int(i) for i in i_atoms[np.argsort(d)[:4]])
    other = tuple(int(i) for i in i_atoms[np.argsort(d)[4:8]])
    table = pd.DataFrame({"atom": [16], "time": [8 * dt], "frame": [8], "from_site": [site], "to_site": [other]})
    table.attrs.update(n_atoms=16, duration_ps=(n_frames - 1) * dt, species="Ag", min_dwell_ps=0.0)
    for quantity in ("rotor_change", "dipole_angle"):
        a = an.hop_conditioned_average(traj, wan, quantity, window_ps=0.05, far_cutoff=4.0, hop_table=table)
        b = an.hop_conditioned_average(traj, mom, quantity, window_ps=0.05, far_cutoff=4.0, hop_table=table)
        assert np.isfinite(a["near"].values).all() and np.isfinite(a["baseline"].values).all()
        assert np.nanmax(a["near"].values) > 1e-3
        np.testing.assert_allclose(b["near"].values, a["near"].values, atol=1e-9)
        np.testing.assert_allclose(b["baseline"].values, a["baseline"].values, atol=1e-9)
    # angular speeds: Kabsch from centres, |dT3/dt|/2|T3| from moments; equal for these rigid tetrahedra up to
    # the chord-vs-arc error of the central difference, ~(3ωΔ)²/6 = 1.5 % at ωΔ = 0.1 rad (T3 has |m| up to 3)
    a = an.hop_conditioned_average(traj, wan, "angular_velocity", window_ps=0.05, far_cutoff=4.0, hop_table=table)
    b = an.hop_conditioned_average(traj, mom, "angular_velocity", window_ps=0.05, far_cutoff=4.0, hop_table=table)
    assert np.nanmax(a["near"].values) > 1.0
    np.testing.assert_allclose(b["near"].values, a["near"].values, rtol=2e-2, equal_nan=True)
    ma = an.paddlewheel_mask(traj, wan, thresholds=(3, 3))
    mb = an.paddlewheel_mask(traj, mom, thresholds=(3, 3))
    xr.testing.assert_equal(ma["rotating"], mb["rotating"])
    np.testing.assert_allclose(mb["site_speed"].values, ma["site_speed"].values, rtol=2e-2, atol=1e-6, equal_nan=True)


def test_moments_of_another_species_run_or_frames_refused(lattice):
    traj, wan = lattice
    mom = lone_pair_moments(traj, wan).compute()
    with pytest.raises(WannierError, match="moments are of I ions, not Ag"):
        an.iodide_dipoles(traj, mom, species="Ag")
    with pytest.raises(WannierError, match="belong to run 'other'"):
        an.rotor_function(traj.assign_attrs(run_id="this"), mom.assign_attrs(run_id="other"))
    with pytest.raises(WannierError, match="does not have"):
        an.rotor_function(traj, mom.assign_coords(frame=mom["frame"].values + 100))
    with pytest.raises(WannierError, match="frame_time does not match"):
        an.rotor_function(traj, mom.assign_coords(frame_time=("frame", mom["frame_time"].values + 1.0)))
    with pytest.raises(WannierError, match="needs the Wannier centres themselves"):
        an.lone_pair_rdf(traj, mom)
