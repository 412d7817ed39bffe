"""Ag⁺ hops, residence times, cage correlation and hop-conditioned averages.

Known answers: constructed bcc iodide lattices with Ag⁺ jumping between
known tetrahedral sites at known frames, brute-force O(T²) cage
correlations, and iodides whose lone pairs turn at known angular speeds
around known hops.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import agi_data.analysis as an
from agi_data.analysis import SchemaError
from agi_data.analysis.hops import HopError
from agi_data.analysis.pbc import distances
from agi_data.analysis.wannier import WannierError
from agi_data.structures import iodide_bcc, tetrahedral_sites
from agi_data.testing.paddlewheel import TETRAHEDRON, agi_lattice_with_centres, rotation_about

N_CELL = 2
SITES = tetrahedral_sites(N_CELL)
IODIDES = iodide_bcc(N_CELL)
CELL = IODIDES.cell.array
N_I = len(IODIDES)
SITE_D = distances(SITES, SITES, CELL)
GENERIC = rotation_about([0.2, 0.5, -0.7], 1.3)


def tetrahedron_of(site: int) -> tuple:
    """The 4 iodides around a site, by brute force."""
    return tuple(int(i) for i in np.sort(np.argsort(distances(SITES[[site]], IODIDES.positions, CELL)[0])[:4]))


def face_neighbour(site: int, k: int = 0) -> int:
    """The k-th face-sharing neighbour site (1.79 Å away at a = 5.07 Å)."""
    return int(np.flatnonzero(np.isclose(SITE_D[site], np.sort(SITE_D[site])[1]))[k])


def schedule(T: int, segments) -> np.ndarray:
    """Site per frame from [(start_frame, site), ...]."""
    out = np.empty(T, dtype=int)
    for (start, site), (stop, _) in zip(segments, segments[1:] + [(T, None)]):
        out[start:stop] = site
    return out


# four Ag: a return trip, rattling shorter than the dwell, a visit exactly as long as it, a flicker then a hop
T, DT, DWELL_PS = 200, 0.01, 0.05  # dwell = 5 frames
A = [0, 30, 60, 90]
PLAN = [
    [(0, A[0]), (60, face_neighbour(A[0])), (150, A[0])],
    [(0, A[1]), (80, face_neighbour(A[1])), (83, A[1])],
    [(0, A[2]), (50, face_neighbour(A[2])), (55, A[2])],
    [(0, A[3]), (40, face_neighbour(A[3])), (42, A[3]), (44, face_neighbour(A[3]))],
]
EXPECTED_HOPS = [  # (ag, frame, from site, to site)
    (0, 60, A[0], face_neighbour(A[0])), (0, 150, face_neighbour(A[0]), A[0]),
    (2, 50, A[2], face_neighbour(A[2])), (2, 55, face_neighbour(A[2]), A[2]),
    (3, 44, A[3], face_neighbour(A[3])),
]


@pytest.fixture(scope="module")
def hopping():
    sites = np.stack([schedule(T, p) for p in PLAN], axis=1)
    traj, _ = agi_lattice_with_centres(n=N_CELL, n_frames=T, dt_ps=DT, ag_sites=sites, noise=0.05, seed=11)
    return traj


def test_hop_table_is_exact(hopping):
    table = an.hops(hopping, "Ag", min_dwell_ps=DWELL_PS)
    expected = pd.DataFrame(
        [(N_I + ag, f, f * DT, tetrahedron_of(a), tetrahedron_of(b), 3) for ag, f, a, b in EXPECTED_HOPS],
        columns=["atom", "frame", "time", "from_site", "to_site", "shared"],
    ).sort_values(["atom", "frame"]).reset_index(drop=True)
    got = table.sort_values(["atom", "frame"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_exact=False, atol=1e-12)
    assert table.attrs["units"] == {"time": "ps"} and table.attrs["min_dwell_frames"] == 5
    assert table.attrs["n_atoms"] == 4 and table.attrs["duration_ps"] == pytest.approx((T - 1) * DT)
    # rattling (Ag 1, 3 frames) is not a hop; with no dwell threshold it is, and the flicker too
    assert 1 + N_I not in table["atom"].values
    raw = an.hops(hopping, "Ag", min_dwell_ps=0.0)
    assert (raw["atom"] == 1 + N_I).sum() == 2 and (raw["atom"] == 3 + N_I).sum() == 3


def test_hop_rate_and_residence_times(hopping):
    table = an.hops(hopping, "Ag", min_dwell_ps=DWELL_PS)
    rate = an.hop_rate(table)
    assert rate.item() == pytest.approx(5 / (4 * (T - 1) * DT))
    assert rate.attrs["units"] == "1/ps" and rate.attrs["error"] == pytest.approx(np.sqrt(5) / (4 * (T - 1) * DT))
    res = an.residence_times(table)
    np.testing.assert_allclose(np.sort(res.values), [5 * DT, 90 * DT], atol=1e-12)
    assert res.attrs["units"] == "ps" and res.attrs["n_censored"] == 2 * 3 + 1
    assert set(res["site"].values) == {"-".join(map(str, tetrahedron_of(face_neighbour(a)))) for a in (A[0], A[2])}
    dist = an.residence_time_distribution(table, bins=[0.0, 0.5, 1.0])
    np.testing.assert_allclose(dist.values, [1.0, 1.0])  # one residence per 0.5 ps bin: density 1/ps
    # the accessor computes hops from the trajectory
    assert hopping.agi.hop_rate("Ag", min_dwell_ps=DWELL_PS).item() == rate.item()


def test_hops_with_dask_equal_eager(hopping):
    eager = an.hops(hopping, min_dwell_ps=DWELL_PS)
    lazy = an.hops(hopping.chunk({"time": 64}), min_dwell_ps=DWELL_PS)
    pd.testing.assert_frame_equal(lazy, eager)


def test_frozen_lattice_has_cage_correlation_one_and_no_hops():
    traj, _ = agi_lattice_with_centres(n=N_CELL, n_frames=60, dt_ps=DT)
    c = an.cage_correlation(traj, "Ag")
    np.testing.assert_allclose(c.values, 1.0, atol=1e-12)
    assert c["lag"].attrs["units"] == "ps" and c.sizes["lag"] == 60
    assert len(an.hops(traj)) == 0


def test_cage_correlation_of_one_permanent_jump_is_exact():
    T1, T2 = 70, 50
    sites = np.tile(np.array(A)[None], (T1 + T2, 1))
    sites[T1:, 0] = face_neighbour(A[0])
    traj, _ = agi_lattice_with_centres(n=N_CELL, n_frames=T1 + T2, dt_ps=DT, ag_sites=sites, noise=0.04, seed=2)
    c = an.cage_correlation(traj, "Ag", n_neighbors=4, neighbor_species="I").values
    m = np.arange(T1 + T2)
    jumper = (np.maximum(T1 - m, 0) + np.maximum(T2 - m, 0)) / (T1 + T2 - m)
    np.testing.assert_allclose(c, (3 + jumper) / 4, atol=1e-12)


def test_cage_correlation_equals_the_direct_all_origins_loop(rng):
    T = 90
    # each Ag goes a → b → a: the intermittent definition counts the return
    sites = np.stack([np.repeat(rng.choice(len(SITES), 2, replace=False)[[0, 1, 0]], T // 3) for _ in range(5)], 1)
    traj, _ = agi_lattice_with_centres(n=N_CELL, n_frames=T, dt_ps=DT, ag_sites=sites, noise=0.03, seed=5)
    c = an.cage_correlation(traj.chunk({"time": 25}), "Ag", n_neighbors=10, max_lag_ps=0.7)
    pos, ag = traj["positions"].values, np.arange(N_I, traj.sizes["atom"])
    lists = np.empty((T, len(ag), 10), dtype=int)
    for t in range(T):
        d = distances(pos[t, ag], pos[t], CELL)
        d[np.arange(len(ag)), ag] = np.inf
        lists[t] = np.sort(np.argsort(d, axis=1)[:, :10], axis=1)
    same = (lists[:, None] == lists[None, :]).all(-1)  # (t0, t, ag)
    direct = [np.mean([same[t0, t0 + m] for t0 in range(T - m)]) for m in range(71)]
    assert 0.2 < direct[60] < 0.9 and direct[30] < 0.2  # lists change, and come back
    np.testing.assert_allclose(c.values, direct, atol=1e-12)


# --------------------------------------------------------------------------------------------
# hop-conditioned averages
# --------------------------------------------------------------------------------------------

HC_T, HC_DT, HALF = 400, 0.005, 20  # lone pairs turn during hop ± 20 frames
HOP_FRAMES = (100, 300)
OMEGAS = (20.0, 30.0)  # rad/ps


def disjoint_hops():
    """Two face-sharing hops whose 5 iodides each do not overlap."""
    for a, b in itertools.combinations(range(0, len(SITES), 7), 2):
        na = set(tetrahedron_of(a)) | set(tetrahedron_of(face_neighbour(a)))
        nb = set(tetrahedron_of(b)) | set(tetrahedron_of(face_neighbour(b)))
        if not na & nb and SITE_D[a, b] > 4:
            return (a, face_neighbour(a), sorted(na)), (b, face_neighbour(b), sorted(nb))
    raise AssertionError("no disjoint pair of hops")


def turned(frame_idx, hop_frame):
    """Frames of turning since the start of the rotation window, clipped to it."""
    return np.clip(frame_idx - (hop_frame - HALF), 0, 2 * HALF)


@pytest.fixture(scope="module")
def paddlewheel():
    hops_ = disjoint_hops()
    t = np.arange(HC_T)
    sites = np.stack([schedule(HC_T, [(0, a), (f, b)]) for (a, b, _), f in zip(hops_, HOP_FRAMES)], axis=1)
    angle = np.zeros((HC_T, N_I))
    for (_, _, near), f, w in zip(hops_, HOP_FRAMES, OMEGAS):
        angle[:, near] = w * HC_DT * turned(t, f)[:, None]
    rot = rotation_about([0, 0, 1], angle) @ GENERIC
    traj, wan = agi_lattice_with_centres(n=N_CELL, n_frames=HC_T, dt_ps=HC_DT, ag_sites=sites, orientations=rot,
                                         wannier_every=2)
    # lengthen one lone pair of every iodide by 0.1 Å: a dipole −0.2 R·e₀ that turns with the tetrahedron
    centres = wan["centres"].values.copy()
    lp0 = 0.1 * np.einsum("tiab,b->tia", rot, TETRAHEDRON[0])[wan["frame"].values]
    centres[:, 0:4 * N_I:4] += lp0
    return traj, wan.copy(data={"centres": centres}), hops_, rot


def test_hop_conditioned_angular_velocity_profile_is_exact(paddlewheel):
    traj, wan, hops_, _ = paddlewheel
    res = an.hop_conditioned_average(traj, wan, "angular_velocity", window_ps=0.15, far_cutoff=4.0,
                                     min_dwell_ps=0.05)
    tau = res["tau"].values
    np.testing.assert_allclose(tau, np.arange(-15, 16) * 2 * HC_DT)
    k = np.rint(tau / HC_DT).astype(int)  # frames relative to the hop
    per_event = np.array([w * (turned(k + 2, 0) - turned(k - 2, 0)) / 4 for w in OMEGAS])
    np.testing.assert_allclose(res["near_by_event"].values, per_event, atol=1e-6)
    np.testing.assert_allclose(res["near"].values, per_event.mean(0), atol=1e-6)
    np.testing.assert_allclose(res["near_error"].values, np.abs(per_event[0] - per_event[1]) / 2, atol=1e-6)
    np.testing.assert_allclose(res["baseline"].values, 0.0, atol=1e-6)
    np.testing.assert_allclose(res["difference"].values, per_event.mean(0), atol=1e-6)
    assert res.attrs["units"] == "rad/ps" and res.attrs["n_hops_used"] == 2
    np.testing.assert_array_equal(res["n_events"].values, 2)
    assert res.attrs["mean_far_ions"] == N_I - 5
    # the near iodides are exactly the from/to tetrahedra
    np.testing.assert_array_equal(res["atom"].values, [N_I, N_I + 1])
    assert abs(res["near"].sel(tau=0.0).item() - np.mean(OMEGAS)) < 1e-6


def test_hop_conditioned_rotor_change_and_dipole_angle(paddlewheel):
    traj, wan, hops_, rot = paddlewheel
    rc = an.hop_conditioned_average(traj, wan, "rotor_change", window_ps=0.15, far_cutoff=4.0, min_dwell_ps=0.05)
    k = np.rint(rc["tau"].values / HC_DT).astype(int)

    def m_of(angle):
        x = np.einsum("...ab,kb->...ka", rotation_about([0, 0, 1], angle) @ GENERIC, TETRAHEDRON)[..., 0]
        return 3 * np.sqrt(5) / 40 * (5 * x**3 - 3 * x).sum(-1)

    per_event = np.array([np.abs(m_of(w * HC_DT * turned(k, 0)) - m_of(w * HC_DT * turned(0, 0))) for w in OMEGAS])
    np.testing.assert_allclose(rc["near"].values, per_event.mean(0), atol=1e-9)
    np.testing.assert_allclose(rc["baseline"].values, 0.0, atol=1e-12)
    assert rc.attrs["units"] == "1"
    da = an.hop_conditioned_average(traj, wan, "dipole_angle", window_ps=0.15, far_cutoff=4.0, min_dwell_ps=0.05)
    # a vector with z-component c turned by Δθ about z: cos(angle) = c² + (1 − c²) cos Δθ
    c = (GENERIC @ TETRAHEDRON[0])[2]
    per_event = np.array([np.degrees(np.arccos(np.clip(c**2 + (1 - c**2) * np.cos(w * HC_DT * (turned(k, 0) - HALF)),
                                                       -1, 1))) for w in OMEGAS])
    np.testing.assert_allclose(da["near"].values, per_event.mean(0), atol=1e-6)
    np.testing.assert_allclose(da["baseline"].values, 0.0, atol=1e-6)
    assert da.attrs["units"] == "deg"


def test_hop_conditioned_average_of_a_user_quantity(paddlewheel):
    traj, wan, hops_, _ = paddlewheel
    frames = np.arange(0, HC_T, 4)  # every 4th frame: grid step 4
    iodides = np.arange(N_I)
    q = xr.DataArray(frames[:, None] * 1.0 + 1000.0 * iodides[None, :], dims=("frame", "atom"),
                     coords={"frame": frames, "atom": iodides}, attrs={"units": "arb"})
    table = an.hops(traj, min_dwell_ps=0.05)
    res = an.hop_conditioned_average(traj, None, q, window_ps=0.04, far_cutoff=4.0, hop_table=table)
    k = np.arange(-2, 3) * 4
    near_mean = [1000 * np.mean(near) for _, _, near in hops_]
    expected = np.array([f + k + nm for f, nm in zip(HOP_FRAMES, near_mean)])
    np.testing.assert_allclose(res["near_by_event"].values, expected)
    np.testing.assert_allclose(res["tau"].values, k * HC_DT)
    assert res.attrs["units"] == "arb"


def test_clear_errors_for_hop_analyses(paddlewheel, hopping):
    traj, wan, _, _ = paddlewheel
    with pytest.raises(HopError, match="window_ps"):
        an.hop_conditioned_average(traj, wan, "angular_velocity", window_ps=0.0)
    with pytest.raises(HopError, match="quantity must be one of"):
        an.hop_conditioned_average(traj, wan, "spin", window_ps=0.1)
    with pytest.raises(WannierError, match="needs Wannier centres"):
        an.hop_conditioned_average(traj, None, "rotor_change", window_ps=0.1)
    with pytest.raises(SchemaError, match="Cl"):
        an.hops(traj, host="Cl")
    with pytest.raises(HopError, match="min_dwell_ps"):
        an.hops(traj, min_dwell_ps=-1)
    with pytest.raises(HopError, match="existing hop table"):
        an.hop_rate(an.hops(hopping, min_dwell_ps=DWELL_PS), min_dwell_ps=0.1)
    frozen, _ = agi_lattice_with_centres(n=N_CELL, n_frames=20, dt_ps=DT)
    with pytest.raises(HopError, match="no completed residence"):
        an.residence_time_distribution(frozen)
    uneven = frozen.assign_coords(time=np.r_[np.arange(19) * DT, 1.0])
    with pytest.raises(SchemaError, match="not equally spaced"):
        an.hops(uneven)


def test_default_far_cutoff_adapts_to_a_small_cell_and_no_baseline_is_an_error(paddlewheel):
    traj, wan, _, _ = paddlewheel
    half = 0.5 * CELL[0, 0]  # the 2×2×2 cell is 10.2 Å: 6 Å would leave no iodide "far" from both hops
    res = an.hop_conditioned_average(traj, wan, "angular_velocity", window_ps=0.15, min_dwell_ps=0.05)
    assert res.attrs["far_cutoff_A"] == pytest.approx(half) and "default" in res.attrs["far_cutoff_source"]
    assert res.attrs["mean_far_ions"] > 0
    np.testing.assert_allclose(res["baseline"].values, 0.0, atol=1e-6)  # far iodides do not turn
    with pytest.raises(HopError, match="no baseline"):
        an.hop_conditioned_average(traj, wan, "angular_velocity", window_ps=0.15, min_dwell_ps=0.05, far_cutoff=9.0)
