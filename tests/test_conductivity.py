"""Ionic conductivity, Nernst–Einstein, Haven ratio and jump diffusion against analytic walkers and kinisi."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.constants as C

from agi_data import open_store
from agi_data.analysis import hops
from agi_data.analysis.conductivity import ConductivityError, conductivity, haven_ratio, jump_diffusion
from agi_data.structures import tetrahedral_sites
from agi_data.testing import random_walk, trajectory_dataset, wrap
from agi_data.testing.paddlewheel import agi_lattice_with_centres

T_K = 700.0


def sigma_analytic(D_charge_e2A2ps: float, volume_A3: float, temperature_K: float = T_K) -> float:
    """σ = D_X e² / (V k_B T) in S/cm, with SI constants from scipy (independent of the module's factors)."""
    D_si = D_charge_e2A2ps * 1e-20 / 1e-12 * C.e**2  # C²·m²/s
    return D_si / (volume_A3 * 1e-30 * C.k * temperature_K) / 100.0


def test_independent_walkers_have_haven_ratio_one_from_a_store_run(store_dir):
    """N independent ±1 walkers: D_X = Σ q² D, σ = σ_NE, H_R = 1 within its error; T and V read from the run."""
    species = ["Ag", "I"] * 16
    rw = random_walk(n_atoms=32, n_frames=4000, D=0.5, dt=0.01, cell=12.0, species=species, seed=3)
    store = open_store(store_dir)
    with store.create_run("walk", species, np.eye(3) * 12.0, 0.01, attrs={"temperature_K": T_K}) as w:
        w.append(rw.positions.values)
    res = conductivity(store.trajectory("walk"))
    expected = sigma_analytic(32 * 0.5, 12.0**3)
    assert res.attrs["temperature_K"] == T_K and res.attrs["volume_A3"] == pytest.approx(1728.0)
    assert res.sigma.attrs["units"] == "S/cm"
    assert abs(float(res.sigma) - expected) < 3 * float(res.sigma_stderr)
    assert abs(float(res.sigma_ne) - expected) < 3 * float(res.sigma_ne_stderr)
    assert float(res.sigma_stderr) < 0.1 * expected  # a usable error bar from 40 ps of one charge walker
    np.testing.assert_allclose(res.D_tracer.values, [0.5, 0.5], rtol=0.05)
    h = haven_ratio(res)
    assert abs(float(h) - 1.0) < 3 * h.attrs["stderr"]
    assert 0.005 < h.attrs["stderr"] < 0.2


def test_correlated_walkers_match_the_analytic_collective_D():
    """Ag steps = √a²·(common step) + √b²·(own step); I independent. D_X and H_R known in closed form."""
    rng = np.random.default_rng(8)
    n_ag, n_i, T, dt, D0, a2, b2 = 8, 8, 4000, 0.01, 0.5, 0.3, 0.7
    s = np.sqrt(2 * D0 * dt)
    common = rng.normal(scale=s, size=(T - 1, 1, 3))
    ag = np.sqrt(a2) * common + np.sqrt(b2) * rng.normal(scale=s, size=(T - 1, n_ag, 3))
    io = rng.normal(scale=s, size=(T - 1, n_i, 3))
    steps = np.concatenate([ag, io], axis=1)
    start = rng.random((n_ag + n_i, 3)) * 10.0
    path = np.concatenate([start[None], start + np.cumsum(steps, axis=0)])
    ds = trajectory_dataset(wrap(path, np.eye(3) * 10.0), ["Ag"] * n_ag + ["I"] * n_i, 10.0, dt,
                            attrs={"temperature_K": T_K})
    res = conductivity(ds, fit_range=(0.05, 15.0))
    D_x = n_ag**2 * a2 * D0 + n_ag * b2 * D0 + n_i * D0  # = 16.4 e²Å²/ps
    assert abs(float(res.D_charge) - D_x) < 3 * float(res.D_charge_stderr)
    assert abs(float(res.sigma) - sigma_analytic(D_x, 1000.0)) < 3 * float(res.sigma_stderr)
    h = haven_ratio(res)
    h_true = (n_ag * D0 + n_i * D0) / D_x  # tracer D_Ag = (a² + b²) D0 = D0
    assert abs(float(h) - h_true) < 3 * h.attrs["stderr"]
    assert abs(float(h) - 1.0) > 5 * h.attrs["stderr"]  # the correlation is resolved, not within noise of 1


def test_conductivity_agrees_with_kinisi_on_the_same_trajectory():
    """kinisi 2's ConductivityAnalyzer (Bayesian, its own covariance) on the same ±1 walkers.

    kinisi takes one species with one charge and removes the drift of the other
    atoms; for equal numbers of Ag⁺ and I⁻ that is N(ΔR_Ag − ΔR_I) = Σ q_i Δr_i,
    the same charge displacement as ours.
    """
    import scipp as sc
    from ase import Atoms
    from kinisi.analyze import ConductivityAnalyzer

    species = ["Ag", "I"] * 8
    ds = random_walk(n_atoms=16, n_frames=1000, D=0.5, dt=0.01, cell=10.0, species=species, seed=3)
    ours = conductivity(ds, temperature_K=T_K, fit_range=(0.2, 5.0))
    frames = [Atoms(symbols=species, positions=p, cell=np.eye(3) * 10.0, pbc=True) for p in ds.positions.values]
    lags = sc.array(dims=["time interval"], values=np.round(np.arange(1, 26) * 0.2, 10), unit="ps")
    an = ConductivityAnalyzer.from_ase(frames, specie="Ag", time_step=sc.scalar(0.01, unit="ps"),
                                       step_skip=sc.scalar(1), ionic_charge=1 * sc.Unit("e"), dt=lags,
                                       progress=False)
    an.conductivity(sc.scalar(0.2, unit="ps"), sc.scalar(T_K, unit="K"), progress=False, n_samples=200,
                    n_burn=100, random_state=np.random.RandomState(0))
    samples = an.sigma.values / 1000.0  # mS/cm → S/cm
    k_mean, k_err = samples.mean(), samples.std()
    assert abs(float(ours.sigma) - k_mean) < 2 * np.hypot(k_err, float(ours.sigma_stderr))
    assert 0.4 < float(ours.sigma_stderr) / k_err < 2.5


def test_charges_temperature_and_neutrality_are_checked():
    ds = random_walk(n_atoms=4, n_frames=50, species=["Ag", "I", "Ag", "I"], seed=1)
    with pytest.raises(ConductivityError, match=r"\['I'\] is missing from charges: pass charges=\{'Ag': 1.*'I': -1"):
        conductivity(ds, charges={"Ag": 1}, temperature_K=T_K)
    with pytest.raises(ConductivityError, match="temperature_K="):
        conductivity(ds)
    with pytest.raises(ConductivityError, match="sum to 2"):
        conductivity(ds, charges={"Ag": 1, "I": 0}, temperature_K=T_K)
    xe = random_walk(n_atoms=2, n_frames=50, species=["Xe", "Ag"], seed=1)
    with pytest.raises(ConductivityError, match=r"\['Xe'\] has no formal charge known: pass charges="):
        conductivity(xe, temperature_K=T_K)


def test_jump_diffusion_from_known_hops():
    """Ag⁺ between face-sharing tetrahedral sites (λ = a√2/4) at known frames: D_J = n λ² / (6 N t)."""
    sites = tetrahedral_sites(2)
    d = np.linalg.norm(sites[:, None] - sites[None], axis=-1)
    T, dt = 300, 0.01
    starts = [0, 30, 60, 90]
    plan = np.empty((T, 4), dtype=int)
    for k, s0 in enumerate(starts):
        nb = int(np.flatnonzero(np.isclose(d[s0], np.sort(d[s0])[1]))[0])
        plan[:, k] = s0
        if k < 3:  # three ions hop out and back (2 hops each); the fourth stays
            plan[100:200, k] = nb
    traj, _ = agi_lattice_with_centres(n=2, n_frames=T, dt_ps=dt, ag_sites=plan, noise=0.03, seed=2)
    table = hops(traj, "Ag", min_dwell_ps=0.05)
    assert len(table) == 6
    lam = 5.07 * np.sqrt(2) / 4
    expected = 6 * lam**2 / (6 * 4 * (T - 1) * dt)
    res = jump_diffusion(table, traj=traj)
    assert float(res) == pytest.approx(expected, rel=0.02)
    assert res.attrs["mean_jump_length_A"] == pytest.approx(lam, rel=0.02)
    assert res.attrs["stderr"] == pytest.approx(expected / np.sqrt(6), rel=0.05)
    assert float(jump_diffusion(traj, min_dwell_ps=0.05)) == pytest.approx(float(res))
    with pytest.raises(ConductivityError, match="traj="):
        jump_diffusion(table)
