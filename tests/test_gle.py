"""GLE memory kernels: recovery of known kernels, the Markovian limit, Einstein, bad input.

The trajectories are generated from GLEs with known kernels by Markovian
embedding (agi_data.testing.gle: exact in distribution at any time step) and
written through the store; the analyses read them back lazily.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from agi_data import open_store
from agi_data.analysis import (
    SchemaError,
    diffusion_coefficient,
    friction_coefficient,
    gle_correlations,
    memory_kernel,
    memory_kernel_from_correlations,
    msd,
)
from agi_data.analysis.correlate import correlate_numpy, lag_coordinate
from agi_data.analysis.gle import (
    GLEInputError,
    KernelInstabilityError,
    TemperatureMismatchWarning,
    volterra_trapezoid,
)
from agi_data.elements import mass
from agi_data.testing.gle import (
    exponential_kernel,
    gle_trajectory,
    langevin_trajectory,
    oscillating_kernel,
    write_to_store,
)
from agi_data.units import AMU_A2_PS2_IN_EV, kT_over_m

T_K = 750.0
M_AG = mass("Ag")
EXP = exponential_kernel(1000.0, 0.02)  # ∫K = 20 ps⁻¹, D = k_BT/(m·20) ≈ 0.29 Å²/ps
OSC = oscillating_kernel(1000.0, 0.04, 50.0)  # ∫K = 8 ps⁻¹
GAMMA = 10.0


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return open_store(tmp_path_factory.mktemp("gle") / "store")


@pytest.fixture(scope="module")
def exp_traj(store):
    # Δt = 1 fs: K(0) from the VACF is low by λΔt/3 (the OU force of the embedding is not differentiable)
    ds = gle_trajectory(EXP, n_atoms=500, n_frames=10000, dt_ps=0.001, temperature_K=T_K, seed=11)
    return write_to_store(store, "gle-exp", ds)


@pytest.fixture(scope="module")
def osc_traj(store):
    ds = gle_trajectory(OSC, n_atoms=300, n_frames=5000, dt_ps=0.002, temperature_K=T_K, seed=12)
    return write_to_store(store, "gle-osc", ds)


@pytest.fixture(scope="module")
def langevin_traj(store):
    ds = langevin_trajectory(GAMMA, n_atoms=600, n_frames=5000, dt_ps=0.002, temperature_K=T_K, seed=13)
    return write_to_store(store, "langevin", ds)


@pytest.fixture(scope="module")
def exp_corr(exp_traj):
    """The three correlations of the exponential-kernel run, once (one lag beyond 0.4 ps)."""
    return gle_correlations(exp_traj, "Ag", max_lag_ps=0.4, extra_lag=True)


@pytest.fixture(scope="module")
def exp_kernels(exp_traj, exp_corr):
    """"force" straight from the stored trajectory; "vacf" and "first" from the same correlations."""
    out = {"force": memory_kernel(exp_traj, "Ag", method="force", max_lag_ps=0.2)}
    for method in ("vacf", "first"):
        out[method] = memory_kernel_from_correlations(
            exp_corr["vacf"], force_autocorrelation=exp_corr["force_autocorrelation"] if method == "first" else None,
            velocity_force=exp_corr["velocity_force"] if method == "first" else None,
            method=method, max_lag_ps=0.2)
    return out


@pytest.fixture(scope="module")
def osc_kernels(osc_traj):
    return {m: memory_kernel(osc_traj, "Ag", method=m, max_lag_ps=0.2) for m in ("force", "vacf")}


def _max_dev(k: xr.DataArray, exact, t_max: float) -> float:
    """max |K − K_exact| over lags ≤ t_max, relative to K_exact(0)."""
    sel = k.sel(lag=slice(0, t_max))
    ref = exact(sel["lag"].values)
    return float(np.max(np.abs(sel.values - ref)) / ref[0])


# ------------------------------------------------------------------ the trajectories are what they claim


def test_generated_trajectory_is_the_gle_it_claims(exp_corr):
    """Equipartition, and the force/velocity correlations of the exact GLE solution.

    ⟨F(0)·F(t)⟩/m² = −C̈(t) and ⟨v(0)·F(t)⟩/m = Ċ(t) with C the exact VACF of
    the embedded process (not the FDT alone: F holds the friction as well as
    the noise); at t = 0, ⟨F·F⟩/m² = C(0)K(0).
    """
    corr = exp_corr.sel(lag=slice(0, 0.04))
    assert corr.attrs["kinetic_temperature_K"] == pytest.approx(T_K, rel=0.01)
    m = M_AG * AMU_A2_PS2_IN_EV
    c, c_dot, c_ddot = EXP.correlations(corr["lag"].values, T_K, M_AG)
    np.testing.assert_allclose(corr["vacf"].values, c, rtol=0.01)
    np.testing.assert_allclose(corr["force_autocorrelation"].values / m**2, -c_ddot, atol=0.02 * -c_ddot[0])
    np.testing.assert_allclose(corr["velocity_force"].values / m, c_dot, atol=0.02 * np.abs(c_dot).max())
    assert -c_ddot[0] == pytest.approx(c[0] * EXP(0.0), rel=1e-12)


# ------------------------------------------------------------------ recovery of known kernels


@pytest.mark.parametrize("method", ["force", "vacf", "first"])
def test_exponential_kernel_recovered(exp_kernels, method):
    k = exp_kernels[method]
    assert k.attrs["units"] == "ps^-2" and k.attrs["method"] == method
    assert _max_dev(k, EXP, 3 * EXP.params["tau_ps"]) < 0.05  # first decay: K(0) → 5 % of K(0)


@pytest.mark.parametrize("method", ["force", "vacf"])
def test_oscillating_kernel_recovered(osc_kernels, method):
    k = osc_kernels[method]
    # first decay of the envelope (t ≤ 2τ) spans the first zero, the minimum and the second zero of cos ωt
    assert _max_dev(k, OSC, 2 * OSC.params["tau_ps"]) < 0.05
    lag = k["lag"].values
    first_zero = lag[np.argmax(k.values < 0)]
    assert first_zero == pytest.approx(np.pi / 2 / OSC.params["omega_per_ps"], abs=0.0021)  # one frame


def test_force_and_vacf_methods_agree(exp_kernels, osc_kernels):
    for kernels, tau in [(exp_kernels, EXP.params["tau_ps"]), (osc_kernels, OSC.params["tau_ps"])]:
        kf, kv = kernels["force"], kernels["vacf"]
        assert float(np.abs(kf - kv).sel(lag=slice(0, 3 * tau)).max()) < 0.05 * float(kf[0])


def test_memory_kernel_equals_inversion_of_its_correlations(exp_kernels, exp_corr):
    """memory_kernel = gle_correlations + memory_kernel_from_correlations (the user-facing split)."""
    k = memory_kernel_from_correlations(force_autocorrelation=exp_corr["force_autocorrelation"],
                                        velocity_force=exp_corr["velocity_force"], max_lag_ps=0.2)
    np.testing.assert_allclose(k.values, exp_kernels["force"].values, rtol=1e-9)


def test_kernel_attrs_and_lag_axis(exp_kernels):
    k = exp_kernels["force"]
    assert k.dims == ("lag",) and k.sizes["lag"] == 201
    assert k["lag"].attrs["units"] == "ps"
    np.testing.assert_allclose(np.diff(k["lag"].values), 0.001)
    assert k.attrs["timestep_ps"] == pytest.approx(0.001)
    assert k.attrs["temperature_K"] == T_K and k.attrs["temperature_source"] == "attrs"
    assert k.attrs["n_samples"] == 500 * 10000 and k.attrs["n_atoms"] == 500
    assert k.attrs["mass_u"] == pytest.approx(M_AG)


# ------------------------------------------------------------------ friction: Markovian limit and Einstein


def test_langevin_friction_is_gamma(langevin_traj):
    """Langevin dynamics (stored without forces): the kernel is 2γδ(t) and ∫K dt = γ within 2 %."""
    k = memory_kernel(langevin_traj, "Ag", method="vacf", max_lag_ps=0.1)
    gamma = friction_coefficient(k)
    assert gamma.attrs["units"] == "ps^-1"
    assert float(gamma) == pytest.approx(GAMMA, rel=0.02)
    # Markovian: all the weight sits in the first step, ½K(0)Δt ≈ γ
    assert 0.5 * float(k[0]) * 0.002 == pytest.approx(GAMMA, rel=0.02)
    assert float(np.abs(k[5:]).max()) < 0.01 * float(k[0])


def test_einstein_relation_from_msd(exp_traj, exp_kernels):
    """∫K dt and the D from the MSD (same trajectory) satisfy ∫K = k_BT/(mD) within 5 %."""
    d = diffusion_coefficient(msd(exp_traj, "Ag", max_lag_ps=1.0))
    k = exp_kernels["force"].sel(lag=slice(0, 8 * EXP.params["tau_ps"]))
    gamma = friction_coefficient(k, d["D"])
    assert gamma.attrs["einstein_ratio"] == pytest.approx(1.0, abs=0.05)
    # both sides against the truth of the generator
    assert float(gamma) == pytest.approx(EXP.integral, rel=0.05)
    assert gamma.attrs["einstein_friction_per_ps"] == pytest.approx(EXP.integral, rel=0.05)
    # the running integral ends at the total
    run = friction_coefficient(k, cumulative=True)
    assert float(run[-1]) == pytest.approx(float(gamma), rel=1e-12) and float(run[0]) == 0.0


def test_einstein_units_cm2_per_s(exp_kernels):
    k = exp_kernels["force"]
    d = 0.3  # Å²/ps
    a = friction_coefficient(k, d)
    b = friction_coefficient(k, xr.DataArray(d * 1e-4, attrs={"units": "cm^2/s"}))
    assert b.attrs["einstein_friction_per_ps"] == pytest.approx(a.attrs["einstein_friction_per_ps"], rel=1e-12)
    assert a.attrs["einstein_friction_per_ps"] == pytest.approx(kT_over_m(T_K, M_AG) / d, rel=1e-12)


# ------------------------------------------------------------------ the discretisation, noise-free


@pytest.mark.parametrize("kernel", [EXP, OSC], ids=["exponential", "oscillating"])
def test_inversion_of_exact_correlations(kernel):
    """Exact C, Ċ, C̈ of the embedded GLE in, the kernel out to the trapezoidal rule's O(Δt²)."""
    dt, n = 0.001, 301
    t = np.arange(n + 1) * dt
    c, c_dot, c_ddot = kernel.correlations(t, T_K, M_AG)
    m = M_AG * AMU_A2_PS2_IN_EV
    lag = lag_coordinate(n + 1, dt)
    vacf = xr.DataArray(c, dims="lag", coords={"lag": lag})
    ff = xr.DataArray(-c_ddot * m**2, dims="lag", coords={"lag": lag})
    vf = xr.DataArray(c_dot * m, dims="lag", coords={"lag": lag})
    exact = kernel(t[:n])
    for method, forces in [("force", True), ("vacf", False), ("first", True), ("first", False)]:
        k = memory_kernel_from_correlations(vacf, force_autocorrelation=ff if forces else None,
                                            velocity_force=vf if forces else None, method=method,
                                            mass="Ag", temperature=T_K, max_lag_ps=0.3)
        assert k.sizes["lag"] == n
        np.testing.assert_allclose(k.values[1:], exact[1:], atol=1e-3 * exact[0], err_msg=method)
        if k.attrs["source"] == "forces":  # "force", and "first" fed with the force correlations
            assert float(k[0]) == pytest.approx(exact[0], rel=1e-9)
        else:
            # the embedded force is an OU process, not differentiable: C(t) has a |t|³ term
            # (C⃛(0⁺) = C(0)K(0)λ), and K(0) from the VACF's first lag is low by λΔt/3
            lam = kernel.params["tau_ps"] ** -1
            assert float(k[0]) == pytest.approx(exact[0] * (1 - lam * dt / 3), rel=2e-3)
        assert float(friction_coefficient(k)) == pytest.approx(float(np.trapezoid(exact, dx=dt)), rel=5e-3)


def test_engines_give_the_same_recursion(rng):
    """Blocked (FFT history + compiled blocks), compiled loop and plain numpy loop: one recursion."""
    n = 2600  # three blocks of 1024
    t = np.arange(n) * 0.001
    r = np.exp(-t / 0.05) * (1 + 0.01 * rng.normal(size=n))
    g = -np.exp(-t / 0.1) * np.sin(20 * t) + 0.01 * rng.normal(size=n)
    ks = {e: volterra_trapezoid(r, g, 2.0, 1.5, 0.001, engine=e) for e in ("blocked", "numba", "numpy")}
    assert {n_ok for _, n_ok in ks.values()} == {n}
    for e in ("blocked", "numba"):
        np.testing.assert_allclose(ks[e][0], ks["numpy"][0], rtol=1e-10, atol=1e-12 * np.abs(ks["numpy"][0]).max())
    k1 = ks["blocked"][0]
    # by hand for the first three steps
    assert k1[1] == pytest.approx((r[1] - 0.001 * 0.5 * 1.5 * g[1]) / 2.0)
    assert k1[2] == pytest.approx((r[2] - 0.001 * (k1[1] * g[1] + 0.5 * 1.5 * g[2])) / 2.0)
    # r = 0, g = −5, K(0) = 1: K_1 = 2.5Δt and K_{n+1} = (1 + 5Δt)K_n, past the bound 1000 in the third block
    stops = {e: volterra_trapezoid(np.zeros(n), np.full(n, -5.0), 1.0, 1.0, 0.001, bound=1e3, engine=e)[1]
             for e in ("blocked", "numba", "numpy")}
    expected = 1 + int(np.floor(np.log(1e3 / 2.5e-3) / np.log(1.005))) + 1
    assert set(stops.values()) == {expected}


# ------------------------------------------------------------------ subsets and time-dependent masks


@pytest.fixture(scope="module")
def two_populations():
    """200 Ag under kernel A then 200 Ag under kernel B, one trajectory (the 'rotating/still' comparison)."""
    ka, kb = exponential_kernel(1000.0, 0.02), exponential_kernel(2500.0, 0.01)
    a = gle_trajectory(ka, n_atoms=200, n_frames=3000, dt_ps=0.002, seed=21)
    b = gle_trajectory(kb, n_atoms=200, n_frames=3000, dt_ps=0.002, seed=22)
    return xr.concat([a, b], dim="atom", data_vars="minimal", coords="minimal", compat="override"), ka, kb


def test_static_subset_and_time_mask_select_the_population(two_populations, rng):
    ds, ka, kb = two_populations
    is_a = np.arange(400) < 200
    k_idx = memory_kernel(ds, "Ag", atoms=np.flatnonzero(is_a), max_lag_ps=0.06)
    k_bool = memory_kernel(ds, "Ag", atoms=is_a, max_lag_ps=0.06)
    np.testing.assert_allclose(k_idx.values, k_bool.values, rtol=1e-12)
    assert _max_dev(k_idx, ka, 0.06) < 0.05
    # time-dependent mask: atoms of A at random half of the origins / B likewise (independent of dynamics)
    on = rng.random((400, 3000)) < 0.5
    mask_a = xr.DataArray(on & is_a[:, None], dims=("atom", "time"))
    mask_b = xr.DataArray(on & ~is_a[:, None], dims=("atom", "time"))
    k_a = memory_kernel(ds, "Ag", atoms=mask_a, max_lag_ps=0.06)
    k_b = memory_kernel(ds, "Ag", atoms=mask_b, max_lag_ps=0.06)
    assert k_a.attrs["time_dependent_selection"] and k_a.attrs["n_samples"] == on[:200].sum()
    assert _max_dev(k_a, ka, 0.06) < 0.05
    assert _max_dev(k_b, kb, 0.03) < 0.05
    assert float(k_b[0]) / float(k_a[0]) == pytest.approx(2.5, rel=0.05)


def test_time_mask_weights_the_origins_exactly(two_populations, rng):
    """The mask-weighted FFT correlation equals the direct double loop over (atom, origin) pairs."""
    ds, _, _ = two_populations
    small = ds.isel(atom=slice(0, 6), time=slice(0, 200))
    mask = rng.random((6, 200)) < 0.3
    n_lags = 11
    corr = gle_correlations(small, "Ag", atoms=mask, max_lag_ps=(n_lags - 1) * 0.002)
    v = small["velocities"].values.astype(float)
    f = small["forces"].values.astype(float)
    for name, a, b in [("vacf", v, v), ("velocity_force", v, f), ("force_autocorrelation", f, f)]:
        direct = []
        for lag in range(n_lags):
            w = mask[:, : 200 - lag].T  # (origin, atom)
            prod = (a[: 200 - lag] * b[lag:]).sum(-1)
            direct.append((w * prod).sum() / w.sum())
        np.testing.assert_allclose(corr[name].values, direct, rtol=1e-9, err_msg=name)
    # all-true mask = plain average over atoms and origins
    full = gle_correlations(small, "Ag", atoms=np.ones((6, 200), bool), max_lag_ps=0.02)
    plain = correlate_numpy(v.transpose(1, 0, 2), None, 11).mean(0)
    np.testing.assert_allclose(full["vacf"].values, plain, rtol=1e-10)


# ------------------------------------------------------------------ bad input


@pytest.fixture(scope="module")
def small(two_populations):
    return two_populations[0].isel(atom=slice(0, 20), time=slice(0, 500))


def test_no_velocities(small):
    with pytest.raises(SchemaError, match="velocities"):
        memory_kernel(small.drop_vars("velocities"), "Ag", max_lag_ps=0.1)


def test_force_method_without_forces(small):
    with pytest.raises(SchemaError, match="method='vacf'"):
        memory_kernel(small.drop_vars("forces"), "Ag", method="force", max_lag_ps=0.1)
    # the vacf method works on the same data
    k = memory_kernel(small.drop_vars("forces"), "Ag", method="vacf", max_lag_ps=0.1)
    assert k.attrs["source"] == "vacf"


@pytest.mark.parametrize("max_lag", [1.0, 0.9985, 0.003, 0.0])
def test_max_lag_out_of_range(small, max_lag):
    # 500 frames of 2 fs: the trajectory spans 0.998 ps; two steps are 0.004 ps
    with pytest.raises(GLEInputError, match="max_lag_ps"):
        memory_kernel(small, "Ag", max_lag_ps=max_lag)


def test_max_lag_limits_accepted(small):
    assert memory_kernel(small, "Ag", max_lag_ps=0.004).sizes["lag"] == 3
    assert memory_kernel(small, "Ag", max_lag_ps=0.998, on_unstable="truncate").sizes["lag"] <= 500


@pytest.mark.parametrize("method", ["force", "vacf"])
def test_max_lag_between_grid_points_is_rounded_down(small, method):
    # 2 fs frames: 0.0209 ps lies between the lags 0.020 and 0.022 and gives the kernel of max_lag_ps=0.020
    on_grid = memory_kernel(small, "Ag", method=method, max_lag_ps=0.020)
    between = memory_kernel(small, "Ag", method=method, max_lag_ps=0.0209)
    assert between.sizes["lag"] == on_grid.sizes["lag"] == 11
    np.testing.assert_array_equal(between.values, on_grid.values)


def test_temperature_disagreeing_with_velocities_warns(small):
    ref = memory_kernel(small, "Ag", max_lag_ps=0.02)
    with pytest.warns(TemperatureMismatchWarning, match="kinetic temperature"):
        k = memory_kernel(small, "Ag", max_lag_ps=0.02, temperature=2 * T_K)
    # C(0) = 3k_BT/m doubles, so K(0) halves: the warning is about a real error
    assert float(k[0]) == pytest.approx(0.5 * float(ref[0]), rel=1e-9)
    # velocities as the only source: no attrs, no argument
    bare = small.copy()
    bare.attrs = {k: v for k, v in small.attrs.items() if k != "temperature_K"}
    kb = memory_kernel(bare, "Ag", max_lag_ps=0.02)
    assert kb.attrs["temperature_source"] == "velocities"
    assert kb.attrs["temperature_K"] == pytest.approx(T_K, rel=0.05)


def test_unstable_inversion_reports_the_lag(exp_corr):
    """C(0) ten times too small (a temperature off by 10): the recursion grows like e^{73 t/ps}."""
    args = dict(force_autocorrelation=exp_corr["force_autocorrelation"], velocity_force=exp_corr["velocity_force"],
                method="force", temperature=T_K / 10)
    with pytest.warns(TemperatureMismatchWarning), pytest.raises(KernelInstabilityError) as info:
        memory_kernel_from_correlations(**args)
    err = info.value
    assert 0 < err.lag_ps < 0.4 and f"{err.lag_ps:.6g} ps" in str(err)
    assert err.kernel.sizes["lag"] == err.index
    assert np.all(np.isfinite(err.kernel.values)) and float(np.abs(err.kernel).max()) <= 10 * float(err.kernel[0])
    with pytest.warns(TemperatureMismatchWarning):
        cut = memory_kernel_from_correlations(**args, on_unstable="truncate")
    assert cut.sizes["lag"] == err.index and cut.attrs["unstable_from_ps"] == pytest.approx(err.lag_ps)
    # the kernel is well behaved with the right C(0)
    assert memory_kernel_from_correlations(**{**args, "temperature": T_K}).sizes["lag"] == exp_corr.sizes["lag"]


def test_accessor(small):
    k = memory_kernel(small, "Ag", method="vacf", max_lag_ps=0.02)
    via = small.agi.memory_kernel("Ag", method="vacf", max_lag_ps=0.02)
    np.testing.assert_allclose(via.values, k.values, rtol=1e-12)
    assert float(friction_coefficient(k)) == float(via.agi.friction_coefficient())


def test_bad_masks_and_species(small, two_populations):
    with pytest.raises(GLEInputError, match="atoms mask has"):
        memory_kernel(small, "Ag", atoms=np.ones((7, 500), bool), max_lag_ps=0.02)
    with pytest.raises(GLEInputError, match="frames"):
        memory_kernel(small, "Ag", atoms=np.ones((20, 499), bool), max_lag_ps=0.02)
    with pytest.raises(GLEInputError, match="no atom"):
        memory_kernel(small, "Ag", atoms=np.zeros(20, bool), max_lag_ps=0.02)
    with pytest.raises(GLEInputError, match="selects no"):
        memory_kernel(small, "Ag", atoms=np.zeros((20, 500), bool), max_lag_ps=0.02)
    late = np.zeros((20, 500), bool)
    late[:, -10:] = True  # origins only in the last 10 frames: no origin for lags of 10 frames or more
    with pytest.raises(GLEInputError, match="early enough"):
        memory_kernel(small, "Ag", atoms=late, max_lag_ps=0.04)
    with pytest.raises(GLEInputError, match="method"):
        memory_kernel(small, "Ag", method="second", max_lag_ps=0.02)
    with pytest.raises(SchemaError, match="species"):
        memory_kernel(small, "I", max_lag_ps=0.02)
    mixed = small.assign_coords(species=("atom", np.r_[np.full(10, 47), np.full(10, 53)]))
    with pytest.raises(GLEInputError, match="several elements"):
        memory_kernel(mixed, None, max_lag_ps=0.02)
    with pytest.raises(GLEInputError, match="not Ag atoms"):
        memory_kernel(mixed, "Ag", atoms=[0, 15], max_lag_ps=0.02)
