"""ℓ = 3 moments and dipoles of the lone pairs, and the analyses that take them.

Known answers: SciPy's complex spherical harmonics, the addition theorem,
the centre-based rotor function and dipoles of the same frames, and a rigid
tetrahedron rotating at a known rate.
"""

from __future__ import annotations

import math

import numpy as np
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
from agi_data.testing.paddlewheel import agi_lattice_with_centres, rotation_about


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
