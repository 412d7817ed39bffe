"""Run MD and stream its frames into the store, with a progress display, restarts and segments.

:func:`run_md` is the one entry point that every route (Python, ``agi md
run``, the ``agi.md`` WorkChain) goes through:

1. checks the input — temperature > 0, no overlapping atoms, elements the
   potential knows — before anything is written;
2. with ``settings.equilibration_steps`` > 0, runs the equilibration segment
   first into its own store run, ``<run_id>-equilibration`` (attrs
   ``segment="equilibration"``: never analysed), then the production segment
   into ``run_id`` from the equilibration's last positions and velocities
   (attrs ``segment="production"``, ``equilibration_run``,
   ``equilibration_ps``, ``equilibration_ensemble``,
   ``equilibration_damping_fs``). Each segment is continued on its own, so an
   interrupted equilibration resumes as itself and a production never mixes
   with it;
3. creates the run (or, when it exists, continues it from its last stored
   frame: positions, velocities and engine state of that frame; the frames
   appended next are the ones an uninterrupted run writes, with no gap and
   no duplicate);
4. pulls frames from the engine through a :class:`FrameLoop` to which small
   observers are attached (ASE's ``dyn.attach`` pattern): the blow-up guard
   (non-finite values, forces above ``max_force``, potential energy risen by
   more than ``max_energy_rise`` eV/atom since the start: it stops the
   engine, keeps every good frame and raises
   :class:`~agi_data.md.errors.MDBlowUpError`), the batch writer (each batch
   one atomic store transaction; a crash loses at most the unflushed batch),
   the pressure average and the progress bar;
5. records the segment's thermodynamics in the run's attrs
   (:mod:`agi_data.md.thermo`): ``kinetic_temperature_K`` (mean over the
   stored frames) and, for NVE, ``energy_drift_eV_per_atom_per_ps``.

The time spent in the engine and in the store is measured separately
(:class:`RunResult`), which is how benchmarks/md.py reports the store-writing
overhead.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from ..structures import check_overlap
from . import thermo
from .base import Engine, MDSettings, maxwell_boltzmann
from .errors import MDBlowUpError, MDError, RestartError
from .observers import BatchWriter, BlowUpGuard, BlowUpStop, FrameLoop, PressureMean, progress_display
from .options import BlowUpLimits, StreamOptions

#: run attributes that must agree when a run is continued
_RESTART_KEYS = ("temperature_K", "ensemble", "md_timestep_fs", "stride", "seed", "damping_fs", "potential")
#: suffix of the store run that holds a run's equilibration segment
EQUILIBRATION_SUFFIX = "-equilibration"


_LEGACY = {"restart": StreamOptions, "flush_every": StreamOptions, "flush_seconds": StreamOptions,
           "progress": StreamOptions, "dtype": StreamOptions, "min_distance": BlowUpLimits,
           "max_force": BlowUpLimits, "max_energy_rise": BlowUpLimits}


@dataclass
class RunResult:
    """What :func:`run_md` did (for a two-segment run: the production; ``equilibration`` holds the other)."""

    run_id: str
    n_frames: int  # frames in the run now
    new_frames: int  # frames appended by this call
    version: str  # store version after the last append
    resumed_from: int | None  # frame the run was continued from (None: a new run)
    wall_s: float = 0.0
    engine_s: float = 0.0  # waiting for frames from the engine
    store_s: float = 0.0  # appending to the store
    pressure_GPa_mean: float | None = None
    attrs: dict = field(default_factory=dict)
    equilibration: RunResult | None = None

    @property
    def store_overhead(self) -> float:
        """Store-writing time as a fraction of the MD (engine) time."""
        return self.store_s / self.engine_s if self.engine_s > 0 else float("nan")

    def ns_per_day(self, settings: MDSettings) -> float:
        steps = self.new_frames * settings.stride
        return steps * settings.timestep_fs * 1e-6 / (self.wall_s / 86400.0) if self.wall_s > 0 else float("nan")


# ----------------------------------------------------------------------------- where a segment starts
@dataclass
class _Start:
    atoms: Atoms
    velocities: np.ndarray
    first_frame: int  # global frame index of ``atoms``
    n_stored: int  # frames already in the run
    state: dict  # engine state of the last stored frame
    resumed: bool


def _last_frame(store, run_id: str) -> tuple[Atoms, np.ndarray, int]:
    """(atoms, velocities Å/ps, frames in the run) of a run's last stored frame."""
    ds = store.trajectory(run_id)
    n = int(ds.sizes.get("time", 0))
    if "velocities" not in ds:
        raise RestartError(f"run {run_id!r} has no velocities: it cannot be continued")
    last = ds.isel(time=n - 1)
    cell = (np.asarray(last["cell"].values, dtype=np.float64) if "cell" in last
            else np.asarray(store.attrs(run_id)["default_cell"]))
    atoms = Atoms([str(s) for s in ds["symbol"].values], cell=cell, pbc=True,
                  positions=np.asarray(last["positions"].values, dtype=np.float64))
    return atoms, np.asarray(last["velocities"].values, dtype=np.float64), n


def _resume_state(store, run_id: str, settings: MDSettings, engine: Engine, atoms: Atoms | None) -> _Start | None:
    """Where an existing run continues (None: it has no frame yet); refuses other settings or atoms."""
    attrs = store.attrs(run_id)
    wanted = {"temperature_K": settings.temperature_K, "ensemble": settings.ensemble,
              "md_timestep_fs": settings.timestep_fs, "stride": settings.stride, "seed": settings.seed,
              "damping_fs": settings.damping_fs, "potential": engine.describe().get("potential")}
    diff = {k: (attrs.get(k), wanted[k]) for k in _RESTART_KEYS if k in attrs and attrs.get(k) != wanted[k]}
    if diff:
        pretty = ", ".join(f"{k}: stored {a!r} ≠ asked {b!r}" for k, (a, b) in diff.items())
        raise RestartError(f"run {run_id!r} was made with other settings ({pretty}); "
                           "use a new run id or the run's own settings to continue it")
    if int(store.trajectory(run_id).sizes.get("time", 0)) == 0:
        return None
    start, velocities, n = _last_frame(store, run_id)
    if atoms is not None and list(atoms.get_chemical_symbols()) != start.get_chemical_symbols():
        raise RestartError(f"run {run_id!r} has other atoms ({len(start)}) than the structure given "
                           f"({len(atoms)}); pass the same structure or a new run id")
    state = attrs.get("engine_state") or {}
    if state.get("frame") != n - 1:
        state = {}
    return _Start(start, velocities, n - 1, n, state, True)


def _fresh_start(atoms: Atoms | None, settings: MDSettings, velocities) -> _Start:
    if atoms is None:
        raise MDError("a structure is needed to start a new run")
    if not atoms.pbc.all():
        raise MDError("the structure must be periodic in x, y and z (atoms.pbc = True)")
    v0 = (maxwell_boltzmann(atoms, settings.temperature_K, settings.seed) if velocities is None
          else np.asarray(velocities, dtype=np.float64))
    if v0.shape != (len(atoms), 3):
        raise MDError(f"velocities must have shape ({len(atoms)}, 3), got {v0.shape}")
    if not np.isfinite(v0).all():
        raise MDError("the initial velocities are not all finite")
    return _Start(atoms, v0, 0, 0, {}, False)


def _new_run_attrs(engine: Engine, settings: MDSettings, attrs: dict | None) -> dict:
    describe = engine.describe()
    return {
        **describe,
        "temperature_K": float(settings.temperature_K), "ensemble": settings.ensemble,
        "md_timestep_fs": float(settings.timestep_fs), "stride": int(settings.stride),
        "n_steps": int(settings.n_steps), "seed": int(settings.seed), "damping_fs": float(settings.damping_fs),
        "energies": "potential energy (eV)", "positions_wrapped": describe.get("engine") == "lammps",
        **(attrs or {}),
    }


def _thermo_attrs(store, run_id: str, settings: MDSettings, chunk: int = 4096) -> dict:
    """The run's mean kinetic temperature and, under NVE, its energy drift (read in chunks of frames)."""
    ds = store.trajectory(run_id)
    n_frames = int(ds.sizes.get("time", 0))
    if "velocities" not in ds or n_frames == 0:
        return {}
    masses = thermo.masses_u(ds["symbol"].values)
    kin = np.concatenate([thermo.kinetic_energy(ds["velocities"].isel(time=slice(i, i + chunk)).values, masses)
                          for i in range(0, n_frames, chunk)])
    out = {"kinetic_temperature_K": thermo.temperature_from_kinetic(float(kin.mean()), 3 * len(masses) - 3)}
    if settings.ensemble == "nve" and "energies" in ds:
        t = np.asarray(ds["time"].values)
        out["energy_drift_eV_per_atom_per_ps"] = thermo.energy_drift(t, np.asarray(ds["energies"].values) + kin,
                                                                     len(masses))
        out["energy_drift_span_ps"] = float(t[-1] - t[0])
    return {k: v for k, v in out.items() if math.isfinite(v)}  # one frame has no drift; attrs are JSON


# ----------------------------------------------------------------------------- one segment
def _run_segment(engine: Engine, atoms: Atoms | None, settings: MDSettings, *, store, run_id: str,
                 velocities, attrs: dict | None, options: StreamOptions, limits: BlowUpLimits) -> RunResult:
    t_start = time.perf_counter()
    existing = run_id in store.run_ids()
    if existing and not options.restart:
        raise MDError(f"run {run_id!r} already exists in the store; pass restart=True to continue it "
                      "or choose another run id")
    # the run's writer lock first, its state second: a second writer that read the state before the
    # first one appended would otherwise append the same frames again
    writer = store.open_run(run_id) if existing else None
    try:
        start = (_resume_state(store, run_id, settings, engine, atoms) if existing else None) \
            or _fresh_start(atoms, settings, velocities)
        check_overlap(start.atoms, limits.min_distance)
        engine.check_species(start.atoms.get_chemical_symbols())
    except BaseException:
        if writer is not None:
            writer.close()
        raise

    n_new = settings.n_frames - start.n_stored
    result = RunResult(run_id=run_id, n_frames=start.n_stored, new_frames=0,
                       version=store.version(run_id) if existing else "",
                       resumed_from=start.first_frame if start.resumed else None)
    if n_new <= 0:
        writer.close()
        result.wall_s = time.perf_counter() - t_start
        result.attrs = store.attrs(run_id)
        return result

    if start.resumed:
        if settings.n_steps != store.attrs(run_id).get("n_steps"):
            store.set_attrs(run_id, n_steps=int(settings.n_steps))
    elif writer is None:  # a new run (an existing run with no frame yet keeps the writer it has)
        writer = store.create_run(run_id, start.atoms.get_chemical_symbols(), start.atoms.cell.array,
                                  settings.frame_interval_ps, attrs=_new_run_attrs(engine, settings, attrs))
    frames = engine.run(start.atoms, start.velocities, settings, first_frame=start.first_frame,
                        n_frames=n_new if start.resumed else n_new - 1, include_initial=not start.resumed,
                        state=start.state)
    loop = FrameLoop(frames)
    batches = BatchWriter(writer, store, run_id, engine, options, result)
    pressure = PressureMean()
    guard = BlowUpGuard(limits, len(start.atoms), masses=thermo.masses_u(start.atoms.get_chemical_symbols()),
                        nominal_K=settings.temperature_K)
    for observer in (guard, pressure, batches):
        loop.attach(observer)
    label = f"MD {run_id} ({engine.describe().get('engine')}, {settings.temperature_K:g} K, {settings.ensemble})"
    try:
        with progress_display(options.progress) as prog:
            task = prog.add_task(label, total=n_new)
            loop.attach(lambda _fr: prog.advance(task))
            loop.run()
            batches.flush()
    except BlowUpStop as err:
        frames.close()
        batches.flush()
        cause = (f"A model that conserves energy and heats has fallen into configurations it was never trained "
                 f"on (an unphysical basin whose potential energy turns into heat): label frames of this run "
                 f"with DFT and retrain (an active-learning round); if the NVE energy drift also grows with the "
                 f"time step ({settings.timestep_fs} fs), shorten it" if err.heating else
                 f"The time step ({settings.timestep_fs} fs) is probably too large for this potential, or the "
                 f"structure is unphysical")
        raise MDBlowUpError(
            f"the dynamics blew up at frame {err.step // settings.stride} (step {err.step}): {err.why}. {cause}; "
            f"the {result.n_frames} frame(s) before it are kept in run {run_id!r}",
            last_good_frame=result.n_frames - 1) from None
    except BaseException:
        frames.close()
        batches.flush()  # keep every good frame (KeyboardInterrupt, engine failure)
        raise
    finally:
        result.engine_s = loop.engine_s
        writer.close()
    if result.n_frames != settings.n_frames:
        raise MDError(f"the engine stopped early: run {run_id!r} has {result.n_frames} of {settings.n_frames} frames")
    extra = _thermo_attrs(store, run_id, settings)
    result.pressure_GPa_mean = pressure.mean
    if pressure.mean is not None:
        extra["pressure_GPa_mean_last_segment"] = pressure.mean
    if extra:
        result.version = store.set_attrs(run_id, **extra)
    result.wall_s = time.perf_counter() - t_start
    result.attrs = store.attrs(run_id)
    return result


# ----------------------------------------------------------------------------- equilibration, then production
def equilibration_run_id(run_id: str) -> str:
    """The store run that holds the equilibration segment of run ``run_id``."""
    return f"{run_id}{EQUILIBRATION_SUFFIX}"


def _run_two_segments(engine, atoms, settings: MDSettings, *, store, run_id, velocities, attrs, options, limits
                      ) -> RunResult:
    eq_id = equilibration_run_id(run_id)
    eq_settings = settings.equilibration()
    segment_attrs = {"equilibration_run": eq_id, "equilibration_steps": int(settings.equilibration_steps),
                     "equilibration_ps": settings.equilibration_steps * settings.timestep_fs * 1e-3,
                     "equilibration_ensemble": eq_settings.ensemble,
                     "equilibration_damping_fs": float(eq_settings.damping_fs)}
    if run_id in store.run_ids() and store.trajectory(run_id).sizes.get("time", 0) > 0:
        stored = store.attrs(run_id)
        if stored.get("equilibration_run") != eq_id:
            raise RestartError(f"run {run_id!r} exists without the equilibration segment {eq_id!r} that these "
                               "settings ask for; use a new run id, or equilibration_steps=0 to continue it")
        changed = {k: (stored.get(k), v) for k, v in segment_attrs.items() if stored.get(k) != v}
        if changed:
            pretty = ", ".join(f"{k}: stored {a!r} ≠ asked {b!r}" for k, (a, b) in changed.items())
            raise RestartError(f"run {run_id!r} was equilibrated otherwise ({pretty}); use a new run id or the "
                               "run's own equilibration settings to continue it")
        prod = _run_segment(engine, atoms, settings.production(), store=store, run_id=run_id, velocities=None,
                            attrs=None, options=options, limits=limits)
        prod.equilibration = None
        return prod
    eq = _run_segment(engine, atoms, eq_settings, store=store, run_id=eq_id, velocities=velocities,
                      attrs={**(attrs or {}), "segment": "equilibration", "production_run": run_id,
                             "analyse": False}, options=options, limits=limits)
    start, v_end, _ = _last_frame(store, eq_id)
    prod_attrs = {**(attrs or {}), "segment": "production", **segment_attrs,
                  "equilibration_version": store.version(eq_id)}
    prod = _run_segment(engine, start, settings.production(), store=store, run_id=run_id, velocities=v_end,
                        attrs=prod_attrs, options=options, limits=limits)
    prod.equilibration = eq
    return prod


def _options(options: StreamOptions | None, limits: BlowUpLimits | None, legacy: dict
             ) -> tuple[StreamOptions, BlowUpLimits]:
    unknown = sorted(set(legacy) - set(_LEGACY))
    if unknown:
        raise TypeError(f"run_md() got unexpected keyword argument(s) {unknown}")
    if legacy:
        warnings.warn(f"run_md({', '.join(f'{k}=…' for k in legacy)}) is deprecated: pass "
                      "options=StreamOptions(restart, flush_every, flush_seconds, progress, dtype) and "
                      "limits=BlowUpLimits(min_distance, max_force, max_energy_rise)", DeprecationWarning, stacklevel=3)
    opt = {k: v for k, v in legacy.items() if _LEGACY[k] is StreamOptions}
    lim = {k: v for k, v in legacy.items() if _LEGACY[k] is BlowUpLimits}
    options = StreamOptions(**{**(vars(options) if options else {}), **opt})
    limits = BlowUpLimits(**{**(vars(limits) if limits else {}), **lim})
    return options, limits


def run_md(engine: Engine, atoms: Atoms | None, settings: MDSettings, *, store, run_id: str,
           velocities: np.ndarray | None = None, attrs: dict | None = None,
           options: StreamOptions | None = None, limits: BlowUpLimits | None = None, **legacy) -> RunResult:
    """Run ``settings.n_steps`` steps of MD with ``engine`` from ``atoms`` into run ``run_id`` of ``store``.

    Parameters
    ----------
    engine
        :class:`~agi_data.md.lammps_engine.LammpsEngine`,
        :class:`~agi_data.md.ase_engine.AseEngine`, …
    atoms
        Starting structure (periodic). May be None when continuing a run.
    settings
        :class:`~agi_data.md.base.MDSettings`; ``n_steps`` is the length of
        the whole run: a continued run runs what is missing. With
        ``equilibration_steps`` > 0 the equilibration segment goes into
        ``<run_id>-equilibration`` first (see the module docstring).
    store
        An :class:`agi_data.store.Store` (``agi_data.open_store(path)``).
    velocities
        Initial velocities (Å/ps); default: Maxwell–Boltzmann at
        ``settings.temperature_K`` from ``settings.seed``.
    attrs
        Extra run attributes (e.g. ``provenance_uuid``, ``potential_uuid``).
    options
        :class:`StreamOptions`: restart, batching, progress, storage dtype.
    limits
        :class:`BlowUpLimits`: overlap at the start, force and energy limits.
    **legacy
        ``restart``, ``flush_every``, ``flush_seconds``, ``progress``,
        ``dtype``, ``min_distance``, ``max_force``, ``max_energy_rise`` as
        keywords: deprecated (a DeprecationWarning), still honoured.

    Returns
    -------
    RunResult
        Of the production segment; ``equilibration`` holds the
        equilibration's when this call ran one.
    """
    options, limits = _options(options, limits, legacy)
    kwargs = dict(store=store, run_id=run_id, velocities=velocities, attrs=attrs, options=options, limits=limits)
    if settings.has_equilibration:
        return _run_two_segments(engine, atoms, settings, **kwargs)
    return _run_segment(engine, atoms, settings, **kwargs)
