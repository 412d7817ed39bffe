"""Ag⁺–lone-pair-centre g(r) and the joint (r, θ) density against constructed cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from agi_data.analysis.lonepair import LonePairError, lone_pair_angle_distribution, lone_pair_rdf
from agi_data.analysis.wannier import WannierError
from agi_data.testing.paddlewheel import (
    LONE_PAIR_DISTANCE,
    TETRAHEDRON,
    agi_lattice_with_centres,
    wannier_dataset,
)
from agi_data.testing.processes import trajectory_dataset

A = 5.0855  # the study's lattice constant, Å
D_AGI = A * np.sqrt(5) / 4  # Ag on a tetrahedral site to its 4 iodides
COS = np.array([3, 1, -1, -3]) / np.sqrt(15)  # angles at I between I→Ag and the 4 lone pairs (identity orientation)


@pytest.fixture(scope="module")
def perfect():
    """α-AgI on the perfect lattice, lone pairs along (±1, ±1, ±1)/√3 on every iodide, 3 frames."""
    return agi_lattice_with_centres(n=2, n_frames=3, a=A)


def test_perfect_tetrahedral_angles(perfect):
    traj, wan = perfect
    p = lone_pair_angle_distribution(traj, wan, r_max=3.5, r_bins=35, angle_bins=180)
    # every sample at the Ag–I distance a√5/4, four angles with a quarter of the weight each
    marg_r = p.sum("angle") * 1.0  # × dθ = 1°
    assert float(marg_r.sel(r=D_AGI, method="nearest")) * 0.1 == pytest.approx(1.0)
    marg_a = p.sum("r") * 0.1
    for c in COS:
        assert float(marg_a.sel(angle=np.degrees(np.arccos(c)), method="nearest")) == pytest.approx(0.25)
    assert p.attrs["n_samples"] == 16 * 4 * 4 * 3  # Ag × iodides of the site × centres × frames
    assert p.attrs["units"] == "1/(Å·deg)"


def test_perfect_tetrahedral_lone_pair_rdf(perfect):
    """The 16 nearest centres of each Ag lie at the 4 distances √(d² + b² − 2bd cos θ_k), 4 at each."""
    traj, wan = perfect
    g = lone_pair_rdf(traj, wan, r_max=5.0, dr=0.01)
    expected = np.sqrt(D_AGI**2 + LONE_PAIR_DISTANCE**2 - 2 * LONE_PAIR_DISTANCE * D_AGI * COS)
    n = g["coordination_number"]
    for k, r in enumerate(sorted(expected)):
        assert float(n.sel(r=r + 0.012, method="nearest")) == pytest.approx(4 * (k + 1))
        assert float(n.sel(r=r - 0.012, method="nearest")) == pytest.approx(4 * k)
    assert float(n.sel(r=3.7, method="nearest")) == 16  # the next iodides' centres start beyond 3.8 Å
    assert g.attrs["n_frames"] == 3 and g.attrs["n_bad_frames"] == 0


@pytest.fixture(scope="module")
def ideal_gas():
    """2 iodides with randomly turning lone pairs and 100 Ag placed uniformly (ideal gas) in a 20 Å box."""
    rng = np.random.default_rng(5)
    n_frames, box = 300, 20.0
    pos, cen = [], []
    for _ in range(n_frames):
        r_i = np.array([[5.0, 5.0, 5.0], [15.0, 15.0, 15.0]]) + rng.normal(scale=0.3, size=(2, 3))
        lp = r_i[:, None, :] + LONE_PAIR_DISTANCE * np.einsum("iab,kb->ika", Rotation.random(2, random_state=rng)
                                                              .as_matrix(), TETRAHEDRON)
        lp = lp.reshape(-1, 3)
        ag = []
        while len(ag) < 100:  # Ag farther than 0.76 Å from every centre, so no Ag takes an iodide's centre
            x = rng.uniform(0, box, 3)
            d = np.abs(lp - x)
            d = np.linalg.norm(np.minimum(d, box - d), axis=1)
            if d.min() > 0.76:
                ag.append(x)
        pos.append(np.concatenate([r_i, np.array(ag)]))
        cen.append(lp)
    traj = trajectory_dataset(np.array(pos), ["I"] * 2 + ["Ag"] * 100, box, 0.01)
    wan = wannier_dataset(np.arange(n_frames), np.mod(np.array(cen), box))
    return traj, wan


def test_ideal_gas_rdf_is_one(ideal_gas):
    traj, wan = ideal_gas
    g = lone_pair_rdf(traj, wan, r_max=9.0, dr=1.0, expected={"I": 4})
    far = g.sel(r=slice(2.0, 9.0))
    assert float(np.abs(far - 1.0).max()) < 0.1
    assert float(far.mean()) == pytest.approx(1.0, abs=0.03)


def test_ideal_gas_angles_are_isotropic(ideal_gas):
    traj, wan = ideal_gas
    p = lone_pair_angle_distribution(traj, wan, r_max=6.0, r_bins=6, angle_bins=18, expected={"I": 4})
    edges = np.array(p.attrs["angle_edges"])
    cdf = np.cumsum((p.sum("r") * 1.0 * 10.0).values)  # × dr (1 Å) × dθ (10°)
    exact = (1 - np.cos(np.radians(edges[1:]))) / 2  # isotropic directions: P(θ) = sin θ / 2
    assert np.abs(cdf - exact).max() < 0.02
    # the distance marginal of an ideal gas grows as r² (pairs per shell)
    marg_r = (p.sum("angle") * 10.0).values
    shells = np.diff(np.array(p.attrs["r_edges"]) ** 3)
    np.testing.assert_allclose(marg_r[2:] / marg_r[2:].sum(), shells[2:] / shells[2:].sum(), rtol=0.1)


def test_bad_input(perfect, ideal_gas):
    traj, wan = perfect
    with pytest.raises(Exception, match="r_max"):
        lone_pair_rdf(traj, wan, r_max=6.0, dr=0.1)  # beyond half the 10.17 Å cell
    with pytest.raises(WannierError, match="no Wannier centres"):
        lone_pair_rdf(traj, wan, r_max=4.0, dr=0.1, frames=[0, 7])
    with pytest.raises(LonePairError, match="on_bad"):
        lone_pair_angle_distribution(traj, wan, on_bad="ignore")
    g_traj, g_wan = ideal_gas
    with pytest.raises(WannierError, match="expected number"):  # Ag own no centres here: every frame is bad
        lone_pair_rdf(g_traj, g_wan, r_max=4.0, dr=0.5, on_bad="raise")
    with pytest.raises(LonePairError, match="left out as bad"):
        lone_pair_rdf(g_traj, g_wan, r_max=4.0, dr=0.5)


def test_frames_in_chunks_give_the_same_answer(ideal_gas, monkeypatch):
    import agi_data.analysis.lonepair as lp

    traj, wan = ideal_gas
    sub = wan.isel(frame=slice(0, 9))
    whole = lone_pair_angle_distribution(traj, sub, r_max=6.0, expected={"I": 4})
    g_whole = lone_pair_rdf(traj, sub, r_max=9.0, dr=1.0, expected={"I": 4})
    monkeypatch.setattr(lp, "FRAME_CHUNK", 2)
    np.testing.assert_allclose(lone_pair_angle_distribution(traj, sub, r_max=6.0, expected={"I": 4}).values,
                               whole.values, rtol=1e-12)
    g = lone_pair_rdf(traj, sub, r_max=9.0, dr=1.0, expected={"I": 4})
    np.testing.assert_allclose(g.values, g_whole.values, rtol=1e-12)
    assert g.attrs["n_frames"] == 9
