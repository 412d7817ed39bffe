"""Wannier-centre analyses: assignment, tetrahedral rotor, dipoles, lone-pair rotation.

Known answers: closed-form rotor correlations of rigidly rotating
tetrahedra, the isotropic limit ⟨M²⟩ = 1/(2ℓ+1), exact dipoles of displaced
centres, brute-force all-origins loops, and centres from the real codes
(pw.x → wannier90.x) on a perturbed α-AgI cell.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import numpy as np
import pytest
import xarray as xr
from scipy.spatial.transform import Rotation

import agi_data.analysis as an
from agi_data.analysis import SchemaError
from agi_data.analysis._neighbours import nearest
from agi_data.analysis.pbc import distances
from agi_data.analysis.wannier import BadFramesWarning, WannierError
from agi_data.testing import trajectory_dataset
from agi_data.testing.paddlewheel import (
    LONE_PAIR_DISTANCE,
    TETRAHEDRON,
    agi_lattice_with_centres,
    rotation_about,
    wannier_dataset,
)

GENERIC = Rotation.from_euler("xyz", [0.3, 0.7, 1.1]).as_matrix()


def direct_autocorrelation(x: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """All-origins O(T²) reference: Σ x(t0)·x(t0+m) over valid pairs / their number, x (T, n[, k])."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 2:
        x = x[..., None]
    T = x.shape[0]
    valid = np.ones(x.shape[:2], bool) if valid is None else valid
    out = np.full(T, np.nan)
    for m in range(T):
        w = valid[: T - m] & valid[m:]
        if w.any():
            out[m] = (x[: T - m] * x[m:]).sum(-1)[w].mean()
    return out


def iodide_orientations(n_frames, per_frame_rotation):
    """(T, 2, 3, 3) orientations for the 2 iodides of a 1×1×1 cell."""
    r = np.asarray(per_frame_rotation)
    return np.broadcast_to(r[:, None], (n_frames, 2, 3, 3))


# --------------------------------------------------------------------------------------------
# assignment
# --------------------------------------------------------------------------------------------

def test_nearest_kernel_matches_pbc_distances_in_a_triclinic_cell(rng):
    cell = np.array([[9.0, 0.0, 0.0], [2.5, 8.0, 0.0], [1.0, 1.5, 7.5]])
    a = rng.random((3, 40, 3)) @ cell
    b = rng.random((3, 25, 3)) @ cell
    idx, dist = nearest(a, b, cell, k=4)
    for f in range(3):
        d = distances(a[f], b[f], cell)
        np.testing.assert_array_equal(idx[f], np.argsort(d, axis=1, kind="stable")[:, :4])
        np.testing.assert_allclose(dist[f], np.sort(d, axis=1)[:, :4], atol=1e-12)


def test_assign_wannier_owners_counts_and_bad_frames():
    traj, wan = agi_lattice_with_centres(n=1, n_frames=6, noise=0.05, seed=3)
    # centres are built ion by ion: 4 for each of the 2 I, then 5 for each of the 2 Ag
    owner_true = np.repeat([0, 1, 2, 3], [4, 4, 5, 5])
    centres = wan["centres"].values.copy()
    # frame 2: move one lone pair of I0 next to Ag 2 → I0 owns 3, Ag owns 6
    centres[2, 0] = traj["positions"].values[2, 2] + [0.2, 0.0, 0.0]
    # frame 4: push one Ag centre into empty space → unassigned
    centres[4, 9] = traj["positions"].values[4, 2] + [0.0, 1.6, 1.6]
    wan = wan.copy(data={"centres": centres})
    res = an.assign_wannier(traj, wan)
    expected_owner = np.tile(owner_true, (6, 1))
    expected_owner[2, 0] = 2
    expected_owner[4, 9] = -1
    np.testing.assert_array_equal(res["owner"].values, expected_owner)
    np.testing.assert_array_equal(res["n_owned"].sel(frame=0).values, [4, 4, 5, 5])
    np.testing.assert_array_equal(res["n_owned"].sel(frame=2).values, [3, 4, 6, 5])
    np.testing.assert_array_equal(res["bad_frame"].values, [False, False, True, False, True, False])
    np.testing.assert_array_equal(res["bad_ion"].sel(frame=2).values, [True, False, True, False])
    assert res["unassigned"].sel(frame=4).item() == 1
    assert res.attrs["n_bad_frames"] == 2
    np.testing.assert_allclose(res["distance"].values[0, :8], LONE_PAIR_DISTANCE, atol=1e-9)


def test_assign_wannier_is_lazy_and_equal_with_dask():
    traj, wan = agi_lattice_with_centres(n=1, n_frames=12, noise=0.05, seed=4)
    eager = an.assign_wannier(traj, wan)
    lazy = an.assign_wannier(traj.chunk({"time": 5}), wan.chunk({"frame": 5}))
    assert lazy["owner"].chunks is not None
    xr.testing.assert_equal(lazy.compute().drop_attrs(), eager.drop_attrs())


# --------------------------------------------------------------------------------------------
# rotor function and correlation
# --------------------------------------------------------------------------------------------

def test_rotor_function_is_the_published_formula_and_takes_l_and_axis():
    rot = np.stack([GENERIC, Rotation.from_euler("zyx", [2.0, -0.4, 0.9]).as_matrix()])
    traj, wan = agi_lattice_with_centres(n=1, n_frames=2, orientations=rot[:, None].repeat(2, 1))
    m = an.rotor_function(traj, wan)
    u = np.einsum("tab,kb->tka", rot, TETRAHEDRON)
    x = u[..., 0]
    published = 3 * np.sqrt(5) / 40 * (5 * x**3 - 3 * x).sum(-1)
    np.testing.assert_allclose(m.values, published[:, None].repeat(2, 1), atol=1e-12)
    # a lone pair along x: M = √5/3 (the maximum); a 2-fold axis along x: M = 0
    vertex_on_x = rotation_about(np.cross(TETRAHEDRON[0], [1, 0, 0]),
                                 np.arccos(TETRAHEDRON[0, 0]))
    traj1, wan1 = agi_lattice_with_centres(n=1, n_frames=2, orientations=np.stack([vertex_on_x, np.eye(3)])[:, None]
                                           .repeat(2, 1))
    np.testing.assert_allclose(an.rotor_function(traj1, wan1).values[:, 0], [np.sqrt(5) / 3, 0.0], atol=1e-12)
    # axis "z" of R equals axis "x" of Q·R where Q takes z to x; a 3-vector axis is accepted
    q = rotation_about([0, 1, 0], np.pi / 2)
    traj_q, wan_q = agi_lattice_with_centres(n=1, n_frames=2, orientations=(q @ rot)[:, None].repeat(2, 1))
    np.testing.assert_allclose(an.rotor_function(traj, wan, axis="z").values,
                               an.rotor_function(traj_q, wan_q, axis="x").values, atol=1e-12)
    np.testing.assert_allclose(an.rotor_function(traj, wan, axis=[0, 0, 2.0]).values,
                               an.rotor_function(traj, wan, axis="z").values, atol=1e-12)
    assert m.dims == ("frame", "ion") and m.attrs["units"] == "1"
    np.testing.assert_array_equal(m["atom"].values, [0, 1])


def test_static_tetrahedron_gives_one_at_every_lag():
    traj, wan = agi_lattice_with_centres(n=1, n_frames=50, orientations=GENERIC, noise=0.03, seed=1)
    c = an.rotor_correlation(traj, wan)
    np.testing.assert_allclose(c.values, 1.0, atol=1e-12)
    np.testing.assert_allclose(c["lag"].values, np.arange(50) * 0.01)
    assert c["lag"].attrs["units"] == "ps" and c.attrs["n_bad_frames"] == 0


def test_rotating_tetrahedron_matches_the_closed_form():
    P, T, dt = 40, 400, 0.002  # 40 frames per turn, 10 turns
    omega = 2 * np.pi / (P * dt)
    t = np.arange(T) * dt
    rot = rotation_about([0, 0, 1], omega * t) @ GENERIC
    traj, wan = agi_lattice_with_centres(n=1, n_frames=T, dt_ps=dt, orientations=iodide_orientations(T, rot))
    c = an.rotor_correlation(traj, wan, max_lag_ps=0.4)
    # closed form: M(t) = |A| cos(ωt+α) + |B| cos(3ωt+β) → C = (A² cos ωt + B² cos 3ωt)/(A² + B²)
    u0 = GENERIC @ TETRAHEDRON.T
    s, phi = np.hypot(u0[0], u0[1]), np.arctan2(u0[1], u0[0])
    A = abs(((15 * s**3 / 4 - 3 * s) * np.exp(1j * phi)).sum())
    B = abs((5 * s**3 / 4 * np.exp(3j * phi)).sum())
    lag = c["lag"].values
    closed = (A**2 * np.cos(omega * lag) + B**2 * np.cos(3 * omega * lag)) / (A**2 + B**2)
    exact = (T - np.arange(lag.size)) % P == 0  # origins cover whole turns: no leftover cross terms
    assert exact.sum() >= 5
    np.testing.assert_allclose(c.values[exact], closed[exact], atol=1e-10)
    np.testing.assert_allclose(c.values, closed, atol=0.05)
    # and the FFT equals the O(T²) loop over origins at every lag
    m = an.rotor_function(traj, wan).values
    ref = direct_autocorrelation(m)
    np.testing.assert_allclose(c.values, (ref / ref[0])[: lag.size], atol=1e-12)
    assert c["n_samples"].values[3] == 2 * (T - 3)


def test_rotation_about_the_projection_axis_leaves_c_at_one():
    T, dt = 100, 0.01
    rot = rotation_about([1, 0, 0], 7.0 * np.arange(T) * dt) @ GENERIC
    traj, wan = agi_lattice_with_centres(n=1, n_frames=T, dt_ps=dt, orientations=iodide_orientations(T, rot))
    np.testing.assert_allclose(an.rotor_correlation(traj, wan).values, 1.0, atol=1e-12)


@pytest.mark.parametrize("l", [3, 4, 6])
def test_random_orientations_give_the_isotropic_limit(l):
    T = 3000
    rot = Rotation.random(T * 2, random_state=7).as_matrix().reshape(T, 2, 3, 3)
    traj, wan = agi_lattice_with_centres(n=1, n_frames=T, orientations=rot)
    m = an.rotor_function(traj, wan, l=l).values.ravel()
    m2 = m**2
    # normalisation: ⟨M²⟩ = 1/(2l+1) over isotropic orientations
    assert abs(m2.mean() - 1 / (2 * l + 1)) < 4 * m2.std() / np.sqrt(m2.size)
    c = an.rotor_correlation(traj, wan, l=l, max_lag_ps=0.2)
    n = c["n_samples"].values
    # no memory, and ⟨M⟩ = 0 for odd l: C(t>0) = ⟨M⟩²/⟨M²⟩ within noise
    limit = m.mean() ** 2 / m2.mean()
    assert c.values[0] == pytest.approx(1.0)
    assert np.all(np.abs(c.values[1:] - limit) < 5 / np.sqrt(n[1:]))
    if l % 2:
        assert limit < 5 / m.size


def test_sparse_equally_spaced_frames_use_lag_in_ps():
    T, dt = 200, 0.005
    rot = rotation_about([0, 1, 1], 3.0 * np.arange(T) * dt) @ GENERIC
    traj, wan = agi_lattice_with_centres(n=1, n_frames=T, dt_ps=dt, orientations=iodide_orientations(T, rot),
                                         wannier_every=5)
    c = an.rotor_correlation(traj, wan)
    np.testing.assert_allclose(c["lag"].values, np.arange(40) * 5 * dt)
    m = an.rotor_function(traj, wan)
    assert m.sizes["frame"] == 40 and np.array_equal(m["frame"].values, np.arange(0, T, 5))
    ref = direct_autocorrelation(m.values)
    np.testing.assert_allclose(c.values, ref / ref[0], atol=1e-12)
    assert c.attrs["frame_step"] == 5


def test_gaps_in_a_regular_grid_are_masked_exactly_and_irregular_frames_refused():
    T, dt = 120, 0.005
    rot = rotation_about([1, 1, 0], 4.0 * np.arange(T) * dt) @ GENERIC
    traj, wan = agi_lattice_with_centres(n=1, n_frames=T, dt_ps=dt, orientations=iodide_orientations(T, rot),
                                         wannier_every=2)
    drop = [6, 30, 32, 100]
    keep = ~np.isin(wan["frame"].values, drop)
    holes = wan.isel(frame=np.flatnonzero(keep))
    c = an.rotor_correlation(traj, holes)
    full = an.rotor_function(traj, wan).values  # (60, 2) on the grid of step 2
    valid = np.repeat(keep[:, None], 2, axis=1)
    ref = direct_autocorrelation(np.where(valid, full, 0.0), valid)
    np.testing.assert_allclose(c.values, ref / ref[0], atol=1e-12)
    assert c["n_samples"].values[0] == 2 * keep.sum()
    # frames without a common grid: refused, and a uniform subset on request works
    irregular = wan.isel(frame=[0, 1, 2, 5, 13, 20, 41, 59])
    with pytest.raises(WannierError, match="unequally spaced"):
        an.rotor_correlation(traj, irregular)
    sub = an.rotor_correlation(traj, irregular, frames=[0, 2, 4])
    np.testing.assert_allclose(sub["lag"].values, [0.0, 0.01, 0.02])


def test_bad_frames_are_reported_masked_or_refused():
    T = 30
    rot = rotation_about([0, 0, 1], 2.0 * np.arange(T) * 0.01) @ GENERIC
    traj, wan = agi_lattice_with_centres(n=1, n_frames=T, orientations=iodide_orientations(T, rot))
    centres = wan["centres"].values.copy()
    centres[7, 0] = traj["positions"].values[7, 3] + [0.1, 0.1, 0.0]  # I0 loses a lone pair to Ag 3
    bad = wan.copy(data={"centres": centres})
    m = an.rotor_function(traj, bad)
    assert np.isnan(m.sel(frame=7).values).all() and np.isfinite(m.drop_sel(frame=7).values).all()
    m_ion = an.rotor_function(traj, bad, on_bad="mask_ion")
    assert np.isnan(m_ion.sel(frame=7).values[0]) and np.isfinite(m_ion.sel(frame=7).values[1])
    with pytest.raises(WannierError, match="1 frame"):
        an.rotor_function(traj, bad, on_bad="raise")
    with pytest.warns(BadFramesWarning, match="1 of 30"):
        c = an.rotor_correlation(traj, bad)
    assert c.attrs["n_bad_frames"] == 1
    good = an.rotor_function(traj, wan).values
    valid = np.ones_like(good, bool)
    valid[7] = False
    ref = direct_autocorrelation(np.where(valid, good, 0.0), valid)
    np.testing.assert_allclose(c.values, ref / ref[0], atol=1e-12)


# --------------------------------------------------------------------------------------------
# dipoles and lone-pair rotation
# --------------------------------------------------------------------------------------------

def test_dipoles_perfect_tetrahedron_is_zero_and_displaced_centres_give_the_exact_vector():
    traj, wan = agi_lattice_with_centres(n=1, n_frames=3, orientations=GENERIC)
    np.testing.assert_allclose(an.iodide_dipoles(traj, wan).values, 0.0, atol=1e-12)
    shifts = np.array([[0.10, -0.05, 0.02], [0.03, 0.04, -0.01], [-0.02, 0.0, 0.07], [0.05, 0.05, 0.05]])
    centres = wan["centres"].values.copy()
    cell = traj["cell"].values
    # I0 sits at the origin: its centres are wrapped across the box, so this also checks the minimum image
    centres[1, 0:4] = np.mod((centres[1, 0:4] + shifts) @ np.linalg.inv(cell), 1.0) @ cell
    mu = an.iodide_dipoles(traj, wan.copy(data={"centres": centres}))
    np.testing.assert_allclose(mu.sel(frame=1).values[0], -2.0 * shifts.sum(0), atol=1e-12)
    np.testing.assert_allclose(mu.sel(frame=1).values[1], 0.0, atol=1e-12)
    assert mu.dims == ("frame", "ion", "xyz") and mu.attrs["units"] == "e·Å"
    # the silver d shell (5 centres, bipyramid): zero too
    np.testing.assert_allclose(an.iodide_dipoles(traj, wan, species="Ag").values, 0.0, atol=1e-12)


def test_dipole_orientation_correlation_of_a_rotating_dipole_is_cos_omega_t():
    T, dt, omega, delta = 80, 0.01, 9.0, 0.08
    traj, wan = agi_lattice_with_centres(n=1, n_frames=T, dt_ps=dt, orientations=GENERIC)
    t = np.arange(T) * dt
    shift = delta * np.stack([np.cos(omega * t), np.sin(omega * t), np.zeros(T)], -1)
    centres = wan["centres"].values.copy()
    centres[:, 4] += shift  # one lone pair of I1 (the body centre) circles in the xy plane
    wan2 = wan.copy(data={"centres": centres})
    mu = an.iodide_dipoles(traj, wan2)
    np.testing.assert_allclose(mu.values[:, 1], -2 * shift, atol=1e-12)
    c = an.dipole_correlation(traj, wan2, max_lag_ps=0.5)  # I0 has μ = 0: no direction, masked
    np.testing.assert_allclose(c.values, np.cos(omega * c["lag"].values), atol=1e-12)
    cv = an.dipole_correlation(traj, wan2, kind="vector", max_lag_ps=0.5)
    np.testing.assert_allclose(cv.values, np.cos(omega * cv["lag"].values), atol=1e-12)


def test_lone_pair_angular_velocity_recovers_omega():
    T, dt, omega = 40, 0.005, 12.0
    axis = np.array([0.3, -0.5, 0.8])
    rot = rotation_about(axis, omega * np.arange(T) * dt) @ GENERIC
    orient = np.stack([rot, np.broadcast_to(GENERIC, rot.shape)], axis=1)  # I1 stays still
    traj, wan = agi_lattice_with_centres(n=1, n_frames=T, dt_ps=dt, orientations=orient, wannier_every=2)
    w = an.lone_pair_angular_velocity(traj, wan)
    assert w.attrs["units"] == "rad/ps"
    np.testing.assert_allclose(w.values[1:-1, 0], omega, rtol=1e-9)
    np.testing.assert_allclose(w.values[1:-1, 1], 0.0, atol=1e-6)
    assert np.isnan(w.values[[0, -1]]).all()


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------

def test_clear_errors_for_bad_input():
    traj, wan = agi_lattice_with_centres(n=1, n_frames=5, orientations=GENERIC)
    with pytest.raises(WannierError, match="no Wannier data"):
        an.rotor_function(traj, None)
    with pytest.raises(WannierError, match="no Wannier data"):
        an.assign_wannier(traj, wan.drop_vars("centres"))
    with pytest.raises(WannierError, match=r"frames \[7, 9\] that the run does not have"):
        an.assign_wannier(traj, wan.assign_coords(frame=[0, 1, 2, 7, 9]))
    with pytest.raises(WannierError, match="assigns no centre"):
        an.assign_wannier(traj, wan, cutoff=0.1)
    with pytest.raises(WannierError, match="mismatched cells"):
        an.rotor_function(traj, wan.assign(cell=(("vec", "xyz"), np.eye(3) * 5.2)))
    with pytest.raises(WannierError, match="frame_time does not match"):
        an.assign_wannier(traj, wan.assign_coords(frame_time=("frame", np.arange(5) * 0.5)))
    with pytest.raises(WannierError, match="needs 4 centres per Ag"):
        an.rotor_function(traj, wan, species="Ag")
    with pytest.raises(WannierError, match="no invariant of order 2"):
        an.rotor_function(traj, wan, l=2)
    with pytest.raises(SchemaError, match="Cl"):
        an.rotor_function(traj, wan, species="Cl")
    # a species present in the run that owns no centres
    pos = np.concatenate([traj["positions"].values, np.full((5, 1, 3), 1.3)], axis=1)
    traj_k = trajectory_dataset(pos, ["I", "I", "Ag", "Ag", "K"], traj["cell"].values, 0.01)
    with pytest.raises(WannierError, match="has no centres"):
        an.iodide_dipoles(traj_k, wan, species="K", expected={"I": 4, "Ag": 5, "K": 4})
    # correlations need an equally spaced trajectory time axis and ≥ 2 frames
    with pytest.raises(WannierError, match="at least 2 frames"):
        an.rotor_correlation(traj, wan.isel(frame=[2]))
    uneven = traj.assign_coords(time=[0.0, 0.01, 0.02, 0.05, 0.06])
    with pytest.raises(SchemaError, match="not equally spaced"):
        an.rotor_correlation(uneven, wan.drop_vars("frame_time"))


def test_accessor_and_store_round_trip(store_dir):
    from agi_data import open_store

    T = 40
    rot = rotation_about([0, 0, 1], 5.0 * np.arange(T) * 0.01) @ GENERIC
    traj, wan = agi_lattice_with_centres(n=1, n_frames=T, orientations=iodide_orientations(T, rot),
                                         wannier_every=4, noise=0.02)
    direct = an.rotor_correlation(traj, wan)
    xr.testing.assert_identical(traj.agi.rotor_correlation(wan), direct)
    store = open_store(store_dir)
    with store.create_run("pw", traj["symbol"].values.tolist(), traj["cell"].values, 0.01) as w:
        w.append(traj["positions"].values)
    store.add_wannier("pw", wan["frame"].values, wan["centres"].values)
    via_store = an.rotor_correlation(store.trajectory("pw"), store.wannier("pw"))
    np.testing.assert_allclose(via_store.values, direct.values, atol=1e-5)  # float32 storage


# --------------------------------------------------------------------------------------------
# real output: pw.x → wannier90.x on a perturbed α-AgI cell
# --------------------------------------------------------------------------------------------

A = 5.07
FRAC = np.array([[0.01, 0.0, 0.0], [0.50, 0.52, 0.49], [0.50, 0.25, 0.02], [0.0, 0.76, 0.50]])
SYMBOLS = ["I", "I", "Ag", "Ag"]


def _run(cmd, cwd, stdin=None):
    with open(cwd / stdin) if stdin else open(os.devnull) as fin:
        proc = subprocess.run(cmd, cwd=cwd, stdin=fin, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


def read_centres_xyz(path):
    lines = path.read_text().splitlines()
    rows = [ln.split() for ln in lines[2: 2 + int(lines[0])]]
    centres = np.array([[float(v) for v in r[1:4]] for r in rows if r[0] == "X"])
    atoms = [(r[0], [float(v) for v in r[1:4]]) for r in rows if r[0] != "X"]
    return centres, atoms


@pytest.mark.slow
def test_real_wannier90_centres_assign_4_per_iodide_and_5_per_silver(tmp_path):
    from agi_data.pseudo import generate_pseudopotentials

    for exe in ("pw.x", "pw2wannier90.x", "wannier90.x", "ld1.x"):
        assert shutil.which(exe), f"{exe} is installed by `make setup`"
    t0 = time.perf_counter()
    pseudos = generate_pseudopotentials(tmp_path / "pp")
    cell_block = "\n".join(" ".join(f"{v:.6f}" for v in row) for row in np.eye(3) * A)
    atoms_block = "\n".join(f"{s} {x:.6f} {y:.6f} {z:.6f}" for s, (x, y, z) in zip(SYMBOLS, FRAC))
    n_bands = (2 * 7 + 2 * 11) // 2
    (tmp_path / "scf.in").write_text(f"""&control
  calculation='scf', prefix='agi', outdir='./out', pseudo_dir='./pp'
/
&system
  ibrav=0, nat=4, ntyp=2, ecutwfc=30, ecutrho=120, occupations='fixed', nbnd={n_bands}
/
&electrons
  conv_thr=1e-8
/
ATOMIC_SPECIES
Ag 107.8682 {pseudos['Ag'].name}
I 126.904 {pseudos['I'].name}
CELL_PARAMETERS angstrom
{cell_block}
ATOMIC_POSITIONS crystal
{atoms_block}
K_POINTS gamma
""")
    (tmp_path / "agi.win").write_text(f"""num_wann = {n_bands}
num_bands = {n_bands}
num_iter = 200
gamma_only = .true.
write_xyz = .true.
translate_home_cell = .true.
use_bloch_phases = .true.
mp_grid = 1 1 1
begin unit_cell_cart
ang
{cell_block}
end unit_cell_cart
begin atoms_frac
{atoms_block}
end atoms_frac
begin kpoints
0 0 0
end kpoints
""")
    (tmp_path / "pw2wan.in").write_text("&inputpp\n  outdir='./out', prefix='agi', seedname='agi', "
                                        "write_amn=.false., write_mmn=.true., write_unk=.false.\n/\n")
    _run(["pw.x"], tmp_path, "scf.in")
    _run(["wannier90.x", "-pp", "agi"], tmp_path)
    _run(["pw2wannier90.x"], tmp_path, "pw2wan.in")
    _run(["wannier90.x", "agi"], tmp_path)
    centres, atoms = read_centres_xyz(tmp_path / "agi_centres.xyz")
    assert centres.shape == (n_bands, 3)
    positions = FRAC @ (np.eye(3) * A)
    np.testing.assert_allclose([p for _, p in atoms], positions, atol=1e-4)  # same nuclei, same frame
    traj = trajectory_dataset(positions[None], SYMBOLS, A, 0.001)
    wan = wannier_dataset([0], centres[None], frame_time=[0.0])
    res = an.assign_wannier(traj, wan)
    np.testing.assert_array_equal(res["n_owned"].values[0], [4, 4, 5, 5])
    assert not res["bad_frame"].values.any() and res["unassigned"].values[0] == 0
    lone_pairs = res["distance"].values[0][np.isin(res["owner"].values[0], [0, 1])]
    assert np.all((lone_pairs > 0.5) & (lone_pairs < 1.0))  # ~0.75 Å (FIELD-NOTES)
    m = an.rotor_function(traj, wan)
    assert np.isfinite(m.values).all() and np.all(np.abs(m.values) <= np.sqrt(5) / 3 + 1e-9)
    assert time.perf_counter() - t0 < 30


@pytest.mark.parametrize("k", [1, 4, 10])
def test_cell_list_nearest_equals_all_pairs_exactly(k):
    rng = np.random.default_rng(k)
    n_frames = 4
    base = np.array([[14.0, 0.0, 0.0], [4.0, 13.0, 0.0], [-3.0, 2.0, 12.5]])
    cells = base[None] * (1.0 + 0.05 * rng.uniform(-1, 1, (n_frames, 1, 1)))  # time-dependent, triclinic
    b = np.einsum("fni,fij->fnj", rng.uniform(-0.3, 1.3, (n_frames, 400, 3)), cells)
    a = np.concatenate([b[:, :50], np.einsum("fni,fij->fnj", rng.uniform(0, 1, (n_frames, 30, 3)), cells)], axis=1)
    a_in_b = np.r_[np.arange(50), np.full(30, -1)]
    fast = nearest(a, b, cells, k=k, a_in_b=a_in_b, method="cell_list")
    ref = nearest(a, b, cells, k=k, a_in_b=a_in_b, method="all_pairs")
    np.testing.assert_array_equal(fast[0], ref[0])
    np.testing.assert_array_equal(fast[1], ref[1])
    assert not (fast[0][:, :50] == np.arange(50)[None, :, None]).any()  # self excluded
    # ties on a lattice go to the lower index in both
    grid = np.stack(np.meshgrid(*[np.arange(8) * 1.5] * 3, indexing="ij"), -1).reshape(1, -1, 3)
    lat = [nearest(grid[:, :40], grid, np.eye(3) * 12.0, k=k, a_in_b=np.arange(40), method=m)
           for m in ("cell_list", "all_pairs")]
    np.testing.assert_array_equal(lat[0][0], lat[1][0])
    np.testing.assert_array_equal(lat[0][1], lat[1][1])
