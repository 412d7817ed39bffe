"""GLE kernels of caged particles, of two populations selected by masks, and the thermostat warning.

A particle in a harmonic well coupled to a bath (sampled exactly by Markovian
embedding, the TOTAL force stored) has the Mori kernel K(t) = ω₀² + K_bath(t)
(agi_data.testing.gle.CagedKernel derives it); both Volterra routes must return it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

from agi_data.analysis import friction_coefficient, memory_kernel, memory_kernel_from_correlations
from agi_data.analysis._schema import SchemaError
from agi_data.analysis.correlate import lag_coordinate
from agi_data.analysis.ensemble import ThermostatWarning, ensemble_attrs
from agi_data.analysis.gle import GLEInputError
from agi_data.elements import mass
from agi_data.testing.gle import (
    CagedKernel,
    caged_trajectory,
    exponential_kernel,
    gle_trajectory,
    switching_trajectory,
)
from agi_data.units import AMU_A2_PS2_IN_EV

T_K = 750.0
M_AG = mass("Ag")
CAGE = CagedKernel(exponential_kernel(1000.0, 0.02), omega0=20.0)  # K = 400 + 1000 e^{-t/0.02} ps⁻²


def _max_dev(k: xr.DataArray, exact, t_max: float) -> float:
    """Largest |K − K_exact| over lags ≤ t_max, relative to K_exact(0)."""
    kk = k.sel(lag=slice(0, t_max))
    ex = exact(kk["lag"].values)
    return float(np.abs(kk.values - ex).max() / ex[0])


@pytest.fixture(scope="module")
def caged():
    return caged_trajectory(CAGE, n_atoms=200, n_frames=8000, dt_ps=0.001, temperature_K=T_K, seed=3)


def test_caged_inversion_of_exact_correlations():
    """Noise-free C, Ċ, C̈ of the caged particle: both routes give ω₀² + K_bath to the trapezoidal O(Δt²)."""
    dt, n = 0.001, 201
    t = np.arange(n + 1) * dt
    c, c_dot, c_ddot = CAGE.correlations(t, T_K, M_AG)
    m = M_AG * AMU_A2_PS2_IN_EV
    lag = lag_coordinate(n + 1, dt)
    vacf = xr.DataArray(c, dims="lag", coords={"lag": lag})
    ff = xr.DataArray(-c_ddot * m**2, dims="lag", coords={"lag": lag})
    vf = xr.DataArray(c_dot * m, dims="lag", coords={"lag": lag})
    exact = CAGE(t[:n])
    assert exact[-1] == pytest.approx(400.0, rel=1e-3)  # the kernel tends to ω₀², not 0
    for method in ("force", "vacf"):
        k = memory_kernel_from_correlations(vacf, force_autocorrelation=ff, velocity_force=vf, method=method,
                                            mass="Ag", temperature=T_K, max_lag_ps=0.2)
        np.testing.assert_allclose(k.values[1:], exact[1:], atol=2e-3 * exact[0], err_msg=method)
        # the plateau: the well's ω₀², and no decay to zero
        assert float(k.sel(lag=slice(0.15, 0.2)).mean()) == pytest.approx(400.0, rel=5e-3)


@pytest.mark.parametrize("method", ["force", "vacf"])
def test_caged_kernel_from_sampled_trajectory(caged, method):
    k = memory_kernel(caged, "Ag", method=method, max_lag_ps=0.1, blocks=8)
    assert _max_dev(k, CAGE, 0.1) < 0.02
    # the jackknife error covers the deviation from the known kernel (lag 0 of the vacf route excepted:
    # K(0) from the first lag carries the O(λΔt) bias of a non-differentiable force)
    dev = np.abs(k.values - CAGE(k["lag"].values))[1:] / k["stderr"].values[1:]
    assert np.mean(dev < 3.0) > 0.9 and k.attrs["n_blocks"] == 8
    assert float(k.sel(lag=slice(0.08, 0.1)).mean()) == pytest.approx(CAGE.omega0**2 + float(CAGE.bath(0.09)),
                                                                       rel=0.05)
    # an NVE run: C(0) from the samples' own ⟨v·v⟩, and the run reported as NVE
    assert k.attrs["ensemble"] == "nve" and "kinetic" in k.attrs["temperature_source"]
    assert k.attrs["temperature_K"] == pytest.approx(k.attrs["kinetic_temperature_K"], rel=1e-12)


@pytest.fixture(scope="module")
def two_temperatures():
    """A caged population at 600 K and a free one (another kernel) at 900 K in one run; attrs say 750 K."""
    free = exponential_kernel(2500.0, 0.01)
    a = caged_trajectory(CAGE, n_atoms=150, n_frames=4000, dt_ps=0.001, temperature_K=600.0, seed=31)
    b = gle_trajectory(free, n_atoms=150, n_frames=4000, dt_ps=0.001, temperature_K=900.0, seed=32)
    ds = xr.concat([a, b], dim="atom", data_vars="minimal", coords="minimal", compat="override")
    ds.attrs.update(temperature_K=750.0, ensemble="nose-hoover")
    return ds, free


def test_two_populations_two_temperatures(two_temperatures, rng):
    ds, free = two_temperatures
    is_a = np.arange(300) < 150
    ka = memory_kernel(ds, "Ag", atoms=is_a, max_lag_ps=0.05)
    kb = memory_kernel(ds, "Ag", atoms=~is_a, max_lag_ps=0.05)
    assert _max_dev(ka, CAGE, 0.05) < 0.03 and _max_dev(kb, free, 0.03) < 0.03
    assert ka.attrs["kinetic_temperature_K"] == pytest.approx(600.0, rel=0.02)
    assert kb.attrs["kinetic_temperature_K"] == pytest.approx(900.0, rel=0.02)
    assert ka.attrs["ensemble"] == "nose-hoover" and "Nosé" in ka.attrs["thermostat"]
    # with the nominal temperature instead of the subset's own ⟨v·v⟩ the kernel is scaled by T_sub/T_nominal
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kb_nominal = memory_kernel(ds, "Ag", atoms=~is_a, max_lag_ps=0.05, temperature=750.0)
    assert float(kb_nominal[0]) / float(kb[0]) == pytest.approx(kb.attrs["kinetic_temperature_K"] / 750.0, rel=1e-6)
    # time-dependent masks (random origins, independent of the dynamics) select the same populations
    on = rng.random((300, 4000)) < 0.5
    ka_t = memory_kernel(ds, "Ag", atoms=xr.DataArray(on & is_a[:, None], dims=("atom", "time")), max_lag_ps=0.05)
    kb_t = memory_kernel(ds, "Ag", atoms=xr.DataArray(on & ~is_a[:, None], dims=("atom", "time")), max_lag_ps=0.05)
    assert _max_dev(ka_t, CAGE, 0.05) < 0.04 and _max_dev(kb_t, free, 0.03) < 0.04


@pytest.mark.parametrize("switch_ps, ok", [(2.0, True), (0.01, False)])
def test_time_dependent_labels_switching(switch_ps, ok):
    """Labels that switch as a telegraph process: a mask at the origins returns K_A when τ_s ≫ τ_K.

    τ_s = 2 ps (100 × the kernels' decay times): K_A within 5 %. τ_s = 10 fs (half
    B's decay time): the stationary sub-ensemble approximation fails visibly
    (the masked kernel mixes in B's bath), which is why time-dependent masks
    need labels that live longer than the kernel.
    """
    ka, kb = exponential_kernel(1000.0, 0.02), exponential_kernel(2500.0, 0.01)
    ds, label = switching_trajectory(ka, kb, switch_time_ps=switch_ps, n_atoms=150, n_frames=3000, dt_ps=0.001,
                                     seed=41)
    assert abs(float(label.mean()) - 0.5) < 0.1
    flips = float((label.values[:, 1:] != label.values[:, :-1]).mean())
    assert flips == pytest.approx(0.001 / switch_ps, rel=0.2)  # the known switching rate
    k_a = memory_kernel(ds, "Ag", atoms=label, max_lag_ps=0.04)
    dev = _max_dev(k_a, ka, 0.04)
    assert float(k_a[0]) == pytest.approx(1000.0, rel=0.03)  # K(0) = ⟨F²⟩/(m²C(0)) is exact at any τ_s
    if ok:
        assert dev < 0.05
    else:
        assert dev > 0.1


# ------------------------------------------------------------------ thermostat warning and Einstein ratio


def test_langevin_run_warns(caged):
    lang = caged.assign_attrs(ensemble="langevin", damping_fs=100.0, run_id="md-1")
    with pytest.warns(ThermostatWarning, match=r"Langevin.*γ = 10 ps⁻¹.*NVE"):
        k = memory_kernel(lang, "Ag", max_lag_ps=0.02)
    assert k.attrs["ensemble"] == "langevin" and "biased" in k.attrs["thermostat"]
    # an NVE run is silent
    with warnings.catch_warnings():
        warnings.simplefilter("error", ThermostatWarning)
        memory_kernel(caged, "Ag", max_lag_ps=0.02)
    assert ensemble_attrs(caged.assign_attrs(ensemble="nose-hoover"), "x")["ensemble"] == "nose-hoover"
    assert ensemble_attrs(caged.assign_attrs(ensemble=""), "x")["thermostat"] == "unknown"


def test_einstein_ratio_carried_with_a_diffusion_coefficient():
    """Free GLE particles: ∫K / (k_BT/(mD_exact)) = 1 on the friction result, with the ensemble."""
    kern = exponential_kernel(1000.0, 0.02)
    ds = gle_trajectory(kern, n_atoms=200, n_frames=4000, dt_ps=0.001, seed=5)
    k = memory_kernel(ds, "Ag", max_lag_ps=0.2)
    gamma = friction_coefficient(k, ds.attrs["diffusion_exact_A2_per_ps"])
    assert gamma.attrs["einstein_ratio"] == pytest.approx(1.0, abs=0.05)
    assert gamma.attrs["ensemble"] == k.attrs["ensemble"]


# ------------------------------------------------------------------ bad input


def test_kernel_without_velocities_or_forces(caged):
    with pytest.raises(SchemaError, match="velocities"):
        memory_kernel(caged.drop_vars("velocities"), "Ag", max_lag_ps=0.02)
    with pytest.raises(SchemaError, match="forces"):
        memory_kernel(caged.drop_vars("forces"), "Ag", max_lag_ps=0.02)


def test_bad_masks(caged):
    small = caged.isel(atom=slice(0, 10), time=slice(0, 400))
    with pytest.raises(GLEInputError, match="atoms mask has 7 atoms"):
        memory_kernel(small, "Ag", atoms=np.ones((7, 400), bool), max_lag_ps=0.02)
    with pytest.raises(GLEInputError, match="399 frames"):
        memory_kernel(small, "Ag", atoms=np.ones((10, 399), bool), max_lag_ps=0.02)
    late = np.zeros((10, 400), bool)
    late[:, -5:] = True  # no origin early enough for lags of 5 frames and more
    with pytest.raises(GLEInputError, match="early enough"):
        memory_kernel(small, "Ag", atoms=late, max_lag_ps=0.02)


def test_einstein_ratio_of_the_running_integral():
    kern = exponential_kernel(1000.0, 0.02)
    ds = gle_trajectory(kern, n_atoms=50, n_frames=2000, dt_ps=0.001, seed=6)
    k = memory_kernel(ds, "Ag", max_lag_ps=0.2)
    d = ds.attrs["diffusion_exact_A2_per_ps"]
    run = friction_coefficient(k, d, cumulative=True)
    assert run.attrs["einstein_ratio"] == pytest.approx(friction_coefficient(k, d).attrs["einstein_ratio"], rel=1e-9)


def test_hops_and_cage_report_the_ensemble():
    from agi_data.analysis import cage_correlation, hops
    from agi_data.testing.paddlewheel import agi_lattice_with_centres

    traj, _ = agi_lattice_with_centres(n=2, n_frames=4)
    with pytest.warns(ThermostatWarning, match="hops"):
        table = hops(traj.assign_attrs(ensemble="langevin"), "Ag")
    assert table.attrs["ensemble"] == "langevin"
    c = cage_correlation(traj.assign_attrs(ensemble="nose-hoover"), "Ag", n_neighbors=4)
    assert c.attrs["ensemble"] == "nose-hoover"


def test_transport_of_a_langevin_run_warns_and_names_the_thermostat(caged):
    from agi_data.analysis import diffusion_coefficient, green_kubo, msd, vacf

    lang = caged.assign_attrs(ensemble="langevin", damping_fs=50.0, run_id="md-2")
    with pytest.warns(ThermostatWarning, match=r"msd of run 'md-2'.*γ = 20 ps⁻¹"):
        m = msd(lang, "Ag", max_lag_ps=0.05)
    with pytest.warns(ThermostatWarning, match=r"vacf of run 'md-2'"):
        c = vacf(lang, "Ag", max_lag_ps=0.05)
    assert m.attrs["ensemble"] == c.attrs["ensemble"] == "langevin"
    assert "biased" in green_kubo(c).attrs["thermostat"]
    assert "biased" in diffusion_coefficient(m, fit_range=(0.01, 0.05)).attrs["thermostat"]
    nve = msd(caged.assign_attrs(ensemble="nve"), "Ag", max_lag_ps=0.05)
    assert nve.attrs["thermostat"] == "none"
