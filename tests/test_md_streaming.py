"""Streaming MD into the store: continuation, blow-ups, bad input, consistency of what is stored.

Engines are the real ones: LAMMPS with the classical AgI model, and ASE's
integrators with ASE's Lennard-Jones calculator (a real calculator, standing
in for Allegro where only the ASE engine is under test).
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.lj import LennardJones

from agi_data import open_store
from agi_data.md import (
    AseEngine,
    EngineNotFoundError,
    InvalidTemperatureError,
    LammpsEngine,
    MDBlowUpError,
    MDSettings,
    OverlappingAtomsError,
    RestartError,
    SpeciesMismatchError,
    StreamOptions,
    run_md,
)
from agi_data.structures import alpha_agi

VARS = ("positions", "velocities", "forces", "energies")

QUIET = StreamOptions(progress=False)


@pytest.fixture
def store(store_dir):
    return open_store(store_dir)


def _single_point(engine, atoms):
    s = MDSettings(temperature_K=1.0, n_steps=0, ensemble="nve")
    (frame,) = engine.run(atoms, np.zeros((len(atoms), 3)), s, first_frame=0, n_frames=0, include_initial=True)
    return frame


def _assert_same_frames(a, b, atol):
    assert a.sizes == b.sizes
    for v in VARS:
        np.testing.assert_allclose(a[v].values, b[v].values, atol=atol, rtol=0, err_msg=v)
    np.testing.assert_array_equal(a.time.values, b.time.values)


def test_lammps_langevin_continuation_repeats_the_uninterrupted_run(store):
    atoms = alpha_agi(2, seed=4)
    s = MDSettings(temperature_K=750.0, n_steps=200, timestep_fs=2.0, stride=10, ensemble="langevin", seed=5)
    whole = run_md(LammpsEngine(), atoms, s, store=store, run_id="whole", options=QUIET)
    assert whole.n_frames == 21 and whole.resumed_from is None
    half = MDSettings(**{**s.to_dict(), "n_steps": 100})
    first = run_md(LammpsEngine(), atoms, half, store=store, run_id="pieces", options=QUIET)
    assert first.n_frames == 11
    rest = run_md(LammpsEngine(), None, s, store=store, run_id="pieces", options=QUIET)
    assert rest.resumed_from == 10 and rest.new_frames == 10 and rest.n_frames == 21
    a, b = store.trajectory("whole").load(), store.trajectory("pieces").load()
    # no gap, no duplicate: 21 frames, equally spaced, frame 10 stored once
    assert np.allclose(np.diff(b.time.values), 0.02) and b.sizes["time"] == 21
    assert not np.any(np.all(np.isclose(b.positions.values[1:], b.positions.values[:-1]), axis=(1, 2)))
    _assert_same_frames(a, b, atol=1e-7)
    # the Langevin noise is really there: a different seed gives another trajectory
    other = MDSettings(**{**s.to_dict(), "seed": 6})
    run_md(LammpsEngine(), atoms, other, store=store, run_id="other-seed", options=QUIET)
    c = store.trajectory("other-seed").load()
    assert np.abs(c.positions.values[-1] - a.positions.values[-1]).max() > 0.01
    # continuing a finished run does nothing
    again = run_md(LammpsEngine(), None, s, store=store, run_id="whole", options=QUIET)
    assert again.new_frames == 0 and store.trajectory("whole").sizes["time"] == 21


@pytest.mark.parametrize("ensemble", ["langevin", "nose-hoover", "nve"])
def test_ase_continuation_repeats_the_uninterrupted_run(store, ensemble):
    atoms = alpha_agi(1, seed=None)
    calc = LennardJones(sigma=2.6, epsilon=0.02, rc=5.0, smooth=True)
    s = MDSettings(temperature_K=400.0, n_steps=60, timestep_fs=2.0, stride=5, ensemble=ensemble, seed=2)
    run_md(AseEngine(calc), atoms, s, store=store, run_id="whole", options=QUIET)
    run_md(AseEngine(calc), atoms, MDSettings(**{**s.to_dict(), "n_steps": 25}), store=store, run_id="pieces",
           options=QUIET)
    rest = run_md(AseEngine(calc), None, s, store=store, run_id="pieces", options=QUIET)
    assert rest.resumed_from == 5
    _assert_same_frames(store.trajectory("whole").load(), store.trajectory("pieces").load(), atol=1e-9)


def test_continuation_with_other_settings_is_refused(store):
    atoms = alpha_agi(1, seed=None)
    calc = LennardJones(sigma=2.6, epsilon=0.02, rc=5.0, smooth=True)
    s = MDSettings(temperature_K=400.0, n_steps=10, stride=5, seed=2)
    run_md(AseEngine(calc), atoms, s, store=store, run_id="r", options=QUIET)
    with pytest.raises(RestartError, match="temperature_K"):
        run_md(AseEngine(calc), None, MDSettings(**{**s.to_dict(), "temperature_K": 500.0, "n_steps": 20}),
               store=store, run_id="r", options=QUIET)


def test_stored_forces_and_energies_are_the_potentials(store):
    """With a Langevin thermostat LAMMPS's force array also holds friction and noise; the store must not."""
    atoms = alpha_agi(2, seed=1)
    s = MDSettings(temperature_K=750.0, n_steps=60, timestep_fs=2.0, stride=20, ensemble="langevin", seed=1)
    run_md(LammpsEngine(), atoms, s, store=store, run_id="r", options=QUIET)
    ds = store.trajectory("r").load()
    engine = LammpsEngine()
    for k in (1, 3):
        b = atoms.copy()
        b.positions = ds.positions.values[k]
        ref = _single_point(engine, b)
        np.testing.assert_allclose(ds.forces.values[k], ref.forces, atol=1e-9)
        assert ds.energies.values[k] == pytest.approx(ref.energy, abs=1e-9)
    assert 0.1 < np.sqrt((ds.forces.values[1:] ** 2).mean()) < 1.5  # thermal forces at 750 K, eV/Å
    assert ds.attrs["ensemble"] == "langevin" and ds.attrs["temperature_K"] == 750.0
    assert ds.attrs["md_timestep_fs"] == 2.0 and ds.attrs["timestep_ps"] == pytest.approx(0.04)


def test_blow_up_stops_with_message_and_keeps_frames(store):
    atoms = alpha_agi(2, seed=1)
    s = MDSettings(temperature_K=750.0, n_steps=200, timestep_fs=60.0, stride=1, ensemble="nve", seed=1)
    with pytest.raises(MDBlowUpError, match="time step") as info:
        run_md(LammpsEngine(), atoms, s, store=store, run_id="hot", options=StreamOptions(progress=False, flush_every=2))
    ds = store.trajectory("hot").load()
    n = ds.sizes["time"]
    assert 1 <= n < 201 and info.value.last_good_frame == n - 1
    assert np.isfinite(ds.positions.values).all() and np.abs(ds.forces.values).max() < 50.0
    # a sane time step on the same structure runs to the end
    ok = run_md(LammpsEngine(), atoms, MDSettings(**{**s.to_dict(), "timestep_fs": 2.0, "n_steps": 20}),
                store=store, run_id="sane", options=QUIET)
    assert ok.n_frames == 21


def test_bad_input_is_refused_before_anything_is_written(store, monkeypatch):
    atoms = alpha_agi(1, seed=None)
    for t in (0.0, -10.0, float("nan")):
        with pytest.raises(InvalidTemperatureError, match="temperature"):
            MDSettings(temperature_K=t, n_steps=10)
    s = MDSettings(temperature_K=300.0, n_steps=10, stride=5)
    crowded = atoms.copy()
    crowded.positions[3] = crowded.positions[0] + [0.3, 0.0, 0.0]
    with pytest.raises(OverlappingAtomsError, match="apart"):
        run_md(LammpsEngine(), crowded, s, store=store, run_id="crowded", options=QUIET)
    foreign = atoms.copy()
    foreign.symbols[0] = "Cu"
    with pytest.raises(SpeciesMismatchError, match="Cu"):
        run_md(LammpsEngine(), foreign, s, store=store, run_id="foreign", options=QUIET)
    with pytest.raises(EngineNotFoundError, match="lmp-missing"):
        run_md(LammpsEngine(executable="lmp-missing"), atoms, s, store=store, run_id="noengine", options=QUIET)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EngineNotFoundError, match="not on PATH"):
        run_md(LammpsEngine(), atoms, s, store=store, run_id="nopath", options=QUIET)
    assert store.run_ids() == []
