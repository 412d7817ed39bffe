"""Equilibration, then NVE production: two store runs, one continuation rule per segment, thermo attrs.

Engines are the real ones (LAMMPS with the classical AgI model; ASE's
integrators with ASE's Lennard-Jones calculator); kinetic temperatures are
checked against ASE's own ``Atoms.get_temperature``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from ase.calculators.lj import LennardJones

from agi_data import open_store
from agi_data.md import (
    AseEngine,
    BlowUpLimits,
    LammpsEngine,
    MDError,
    MDSettings,
    RestartError,
    StreamOptions,
    equilibration_run_id,
    maxwell_boltzmann,
    run_md,
    thermo,
)
from agi_data.md.base import ASE_VELOCITY_TO_A_PER_PS
from agi_data.structures import alpha_agi

QUIET = StreamOptions(progress=False)


@pytest.fixture
def store(store_dir):
    return open_store(store_dir)


def test_lammps_equilibration_then_nve_production(store):
    s = MDSettings(temperature_K=750.0, n_steps=400, timestep_fs=1.0, stride=10, ensemble="nve", seed=3,
                   equilibration_steps=200, equilibration_ensemble="langevin", equilibration_damping_fs=50.0)
    res = run_md(LammpsEngine(), alpha_agi(2, seed=1), s, store=store, run_id="prod", options=QUIET)
    eq_id = equilibration_run_id("prod")
    assert sorted(store.run_ids()) == sorted(["prod", eq_id])
    assert res.equilibration is not None and res.equilibration.n_frames == 21 and res.n_frames == 41
    eq_attrs, prod_attrs = store.attrs(eq_id), store.attrs("prod")
    assert eq_attrs["segment"] == "equilibration" and eq_attrs["ensemble"] == "langevin"
    assert eq_attrs["damping_fs"] == 50.0 and eq_attrs["analyse"] is False
    assert prod_attrs["segment"] == "production" and prod_attrs["ensemble"] == "nve"
    assert prod_attrs["equilibration_run"] == eq_id and prod_attrs["equilibration_ps"] == pytest.approx(0.2)
    assert prod_attrs["equilibration_ensemble"] == "langevin" and prod_attrs["equilibration_damping_fs"] == 50.0
    # production starts exactly where the equilibration ended
    eq, prod = store.trajectory(eq_id).load(), store.trajectory("prod").load()
    d = prod.positions[0].values - eq.positions[-1].values  # LAMMPS writes wrapped positions: compare in the cell
    frac = d @ np.linalg.inv(prod.cell[0].values)
    np.testing.assert_allclose(frac - np.round(frac), 0.0, atol=1e-10)
    np.testing.assert_allclose(prod.velocities[0], eq.velocities[-1], atol=1e-10)
    # NVE conserves U + K: fluctuations of the sum far below those of U (this fails when K's units are wrong)
    masses = thermo.masses_u(prod.symbol.values)
    total = prod.energies.values + thermo.kinetic_energy(prod.velocities.values, masses)
    assert np.std(total) < 0.05 * np.std(prod.energies.values)
    drift = prod_attrs["energy_drift_eV_per_atom_per_ps"]
    assert np.isfinite(drift) and abs(drift) < 1e-3
    assert prod_attrs["energy_drift_span_ps"] == pytest.approx(0.4)
    assert "energy_drift_eV_per_atom_per_ps" not in eq_attrs  # only NVE has a drift to report
    # the thermostat held the equilibration near 750 K (32 ions: ±25 %); NVE moves off the nominal value
    assert 560 < eq_attrs["kinetic_temperature_K"] < 940
    assert 300 < prod_attrs["kinetic_temperature_K"] < 1200
    # nothing left to do: both segments complete
    again = run_md(LammpsEngine(), None, s, store=store, run_id="prod", options=QUIET)
    assert again.new_frames == 0


class _Interrupting(LennardJones):
    """A real LJ calculator that raises KeyboardInterrupt (as Ctrl-C would) after ``n`` force evaluations."""

    def __init__(self, n, **kw):
        super().__init__(**kw)
        self.left = n

    def calculate(self, *args, **kwargs):
        self.left -= 1
        if self.left < 0:
            raise KeyboardInterrupt
        super().calculate(*args, **kwargs)


@pytest.mark.parametrize("stop_after", [12, 40])  # inside the equilibration; inside the production
def test_interrupted_segments_resume_as_themselves(store, stop_after):
    lj = dict(sigma=2.6, epsilon=0.02, rc=5.0, smooth=True)
    atoms = alpha_agi(1, seed=None)
    s = MDSettings(temperature_K=400.0, n_steps=30, timestep_fs=2.0, stride=5, ensemble="nve", seed=2,
                   equilibration_steps=20, equilibration_ensemble="langevin")
    run_md(AseEngine(LennardJones(**lj)), atoms, s, store=store, run_id="whole", options=QUIET)
    with pytest.raises(KeyboardInterrupt):
        run_md(AseEngine(_Interrupting(stop_after, **lj)), atoms, s, store=store, run_id="pieces",
               options=StreamOptions(progress=False, flush_every=1))
    rest = run_md(AseEngine(LennardJones(**lj)), atoms, s, store=store, run_id="pieces", options=QUIET)
    assert rest.n_frames == 7
    for a, b in (("whole", "pieces"), (equilibration_run_id("whole"), equilibration_run_id("pieces"))):
        x, y = store.trajectory(a).load(), store.trajectory(b).load()
        assert x.sizes == y.sizes
        for v in ("positions", "velocities", "forces", "energies"):
            np.testing.assert_allclose(x[v].values, y[v].values, atol=1e-9, rtol=0, err_msg=f"{b} {v}")


def test_production_is_never_mixed_with_another_equilibration(store):
    lj = LennardJones(sigma=2.6, epsilon=0.02, rc=5.0, smooth=True)
    atoms = alpha_agi(1, seed=None)
    plain = MDSettings(temperature_K=400.0, n_steps=10, stride=5, ensemble="nve")
    run_md(AseEngine(lj), atoms, plain, store=store, run_id="plain", options=QUIET)
    with pytest.raises(RestartError, match="without the equilibration"):
        run_md(AseEngine(lj), atoms, MDSettings(**{**plain.to_dict(), "equilibration_steps": 10}), store=store,
               run_id="plain", options=QUIET)
    seg = MDSettings(**{**plain.to_dict(), "equilibration_steps": 10})
    run_md(AseEngine(lj), atoms, seg, store=store, run_id="seg", options=QUIET)
    with pytest.raises(RestartError, match="equilibration_steps"):
        run_md(AseEngine(lj), atoms, MDSettings(**{**seg.to_dict(), "equilibration_steps": 20, "n_steps": 20}),
               store=store, run_id="seg", options=QUIET)


def test_legacy_keywords_warn_and_still_work(store):
    lj = LennardJones(sigma=2.6, epsilon=0.02, rc=5.0, smooth=True)
    s = MDSettings(temperature_K=400.0, n_steps=10, stride=5, ensemble="nve")
    with pytest.warns(DeprecationWarning, match="StreamOptions"):
        res = run_md(AseEngine(lj), alpha_agi(1, seed=None), s, store=store, run_id="old", progress=False,
                     flush_every=1, max_force=40.0)
    assert res.n_frames == 3 and res.new_frames == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_md(AseEngine(lj), None, MDSettings(**{**s.to_dict(), "n_steps": 15}), store=store, run_id="old",
               options=QUIET, limits=BlowUpLimits(max_force=40.0))
    with pytest.raises(TypeError, match="flush_evry"):
        run_md(AseEngine(lj), None, s, store=store, run_id="old", flush_evry=3)


@pytest.mark.parametrize("bad, match", [
    (dict(temperature_K=float("inf")), "temperature"),
    (dict(temperature_K=True), "temperature"),
    (dict(n_steps="ten"), "n_steps"),
    (dict(n_steps=-10), "n_steps"),
    (dict(n_steps=10.5), "n_steps"),
    (dict(timestep_fs=float("nan")), "timestep_fs"),
    (dict(timestep_fs=float("inf")), "timestep_fs"),
    (dict(timestep_fs=0.0), "timestep_fs"),
    (dict(stride=0), "stride"),
    (dict(stride=True), "stride"),
    (dict(damping_fs=-1.0), "damping_fs"),
    (dict(seed=-1), "seed"),
    (dict(ensemble="npt"), "ensemble"),
    (dict(equilibration_steps=-10), "equilibration_steps"),
    (dict(equilibration_steps=7), "multiple of stride"),
    (dict(equilibration_ensemble="nve"), "thermostat"),
    (dict(equilibration_damping_fs=float("nan")), "equilibration_damping_fs"),
])
def test_bad_settings_are_refused_with_the_field_named(bad, match):
    with pytest.raises(MDError, match=match):
        MDSettings(**{"temperature_K": 300.0, "n_steps": 10, "stride": 5, **bad})


@pytest.mark.parametrize("bad, match", [
    (dict(flush_every=0), "flush_every"), (dict(flush_seconds=float("nan")), "flush_seconds"),
    (dict(dtype="float16"), "dtype"),
])
def test_bad_stream_options_are_refused(bad, match):
    with pytest.raises(MDError, match=match):
        StreamOptions(**bad)


@pytest.mark.parametrize("bad, match", [
    (dict(max_force=float("nan")), "max_force"), (dict(max_temperature_factor=1.0), "max_temperature_factor"),
    (dict(max_temperature_factor=-2.0), "max_temperature_factor"), (dict(temperature_window=0), "temperature_window"),
    (dict(temperature_window=2.5), "temperature_window"),
])
def test_bad_limits_are_refused(bad, match):
    with pytest.raises(MDError, match=match):
        BlowUpLimits(**bad)


def test_a_run_that_heats_far_above_its_temperature_is_stopped_and_says_why(store):
    """Velocities of 1500 K in a run whose nominal temperature is 150 K: after equipartition with the
    potential energy the kinetic temperature settles near 750 K, 5 × the nominal, as a model that falls into an
    unphysical basin heats its cell; the guard stops it once its 10-frame mean exceeds 2 ×, keeps the frames
    before, and names the cause. The same start at a nominal 1500 K runs to the end."""
    from agi_data.md import MDBlowUpError

    atoms = alpha_agi(2, seed=1)
    v = maxwell_boltzmann(atoms, 1500.0, seed=2)
    s = MDSettings(temperature_K=150.0, n_steps=400, timestep_fs=2.0, stride=10, ensemble="nve", seed=1)
    limits = BlowUpLimits(temperature_window=10)
    with pytest.raises(MDBlowUpError, match="kinetic temperature.*never trained") as info:
        run_md(LammpsEngine(), atoms, s, store=store, run_id="hot", velocities=v, options=QUIET, limits=limits)
    ds = store.trajectory("hot").load()
    n = ds.sizes["time"]
    assert 9 <= n < 41 and info.value.last_good_frame == n - 1
    t_kin = [thermo.kinetic_temperature(ds.velocities.values[i:i + 1], thermo.masses_u(ds.symbol.values))
             for i in range(n)]
    assert np.mean(t_kin[-9:]) > 1.5 * 150.0  # it was hot before the frame that stopped it
    ok = run_md(LammpsEngine(), atoms, MDSettings(**{**s.to_dict(), "temperature_K": 1500.0}), store=store,
                run_id="warm", velocities=v, options=QUIET, limits=limits)
    assert ok.n_frames == 41


def test_kinetic_temperature_agrees_with_ase():
    atoms = alpha_agi(3, seed=4)
    v = maxwell_boltzmann(atoms, 750.0, seed=5)
    atoms.set_velocities(v / ASE_VELOCITY_TO_A_PER_PS)
    masses = thermo.masses_u(atoms.get_chemical_symbols())
    # ASE's constants are CODATA 2014, units.py's CODATA 2018: they differ by a few 1e-7
    assert thermo.kinetic_temperature(v, masses, remove_com=False) == pytest.approx(atoms.get_temperature(),
                                                                                    rel=1e-6)
    assert thermo.kinetic_energy(v, masses) == pytest.approx(atoms.get_kinetic_energy(), rel=1e-6)


def test_energy_drift_recovers_a_known_slope():
    rng = np.random.default_rng(0)
    t = np.linspace(0.0, 10.0, 2001)
    e = 32 * (-3.0 + 2e-4 * t) + rng.normal(0.0, 1e-3, t.size)
    assert thermo.energy_drift(t, e, 32) == pytest.approx(2e-4, rel=0.02)
    assert np.isnan(thermo.energy_drift(t[:1], e[:1], 32))
