"""Run MD and stream its frames into the store, with a progress display and restarts.

:func:`run_md` is the one entry point that every route (Python, ``agi md
run``, the ``agi.md`` WorkChain) goes through:

1. checks the input — temperature > 0, no overlapping atoms, elements the
   potential knows — before anything is written;
2. creates the run (or, when it exists, continues it from its last stored
   frame: positions, velocities and engine state of that frame; the frames
   appended next are the ones an uninterrupted run writes, with no gap and
   no duplicate);
3. pulls frames from the engine and appends them in batches, each batch one
   atomic store transaction (a crash loses at most the unflushed batch);
4. watches every frame for a blow-up (non-finite values, forces above
   ``max_force``, potential energy risen by more than
   ``max_energy_rise`` eV/atom since the start): it stops the engine, keeps
   every good frame and raises :class:`~agi_data.md.errors.MDBlowUpError`.

The time spent in the engine and in the store is measured separately
(:class:`RunResult`), which is how benchmarks/md.py reports the store-writing
overhead.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from ..structures import check_overlap
from .base import Engine, Frame, MDSettings, maxwell_boltzmann
from .errors import MDBlowUpError, MDError, RestartError

#: run attributes that must agree when a run is continued
_RESTART_KEYS = ("temperature_K", "ensemble", "md_timestep_fs", "stride", "seed", "damping_fs", "potential")


@dataclass
class RunResult:
    """What :func:`run_md` did."""

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

    @property
    def store_overhead(self) -> float:
        """Store-writing time as a fraction of the MD (engine) time."""
        return self.store_s / self.engine_s if self.engine_s > 0 else float("nan")

    def ns_per_day(self, settings: MDSettings) -> float:
        steps = self.new_frames * settings.stride
        return steps * settings.timestep_fs * 1e-6 / (self.wall_s / 86400.0) if self.wall_s > 0 else float("nan")


def _progress(enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("frames"), TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled)


def _check_frame(fr: Frame, n_atoms: int, e_ref: float | None, max_force: float, max_rise: float,
                 settings: MDSettings) -> str | None:
    """Why this frame is a blow-up, or None."""
    if not (np.isfinite(fr.positions).all() and np.isfinite(fr.velocities).all() and np.isfinite(fr.forces).all()
            and math.isfinite(fr.energy)):
        return "non-finite positions, velocities, forces or energy"
    fmax = float(np.sqrt((fr.forces**2).sum(axis=1)).max())
    if fmax > max_force:
        return f"a force of {fmax:.3g} eV/Å (limit {max_force} eV/Å)"
    if e_ref is not None and (fr.energy - e_ref) / n_atoms > max_rise:
        return (f"the potential energy rose by {(fr.energy - e_ref) / n_atoms:.3g} eV/atom since the start "
                f"(limit {max_rise} eV/atom)")
    return None


def _start_state(store, run_id: str, settings: MDSettings, engine: Engine, atoms: Atoms):
    """(atoms, velocities, first_frame, n_stored, state) to continue an existing run."""
    attrs = store.attrs(run_id)
    wanted = {"temperature_K": settings.temperature_K, "ensemble": settings.ensemble,
              "md_timestep_fs": settings.timestep_fs, "stride": settings.stride, "seed": settings.seed,
              "damping_fs": settings.damping_fs, "potential": engine.describe().get("potential")}
    diff = {k: (attrs.get(k), wanted[k]) for k in _RESTART_KEYS if k in attrs and attrs.get(k) != wanted[k]}
    if diff:
        pretty = ", ".join(f"{k}: stored {a!r} ≠ asked {b!r}" for k, (a, b) in diff.items())
        raise RestartError(f"run {run_id!r} was made with other settings ({pretty}); "
                           "use a new run id or the run's own settings to continue it")
    ds = store.trajectory(run_id)
    n = int(ds.sizes.get("time", 0))
    if n == 0:
        return None
    if "velocities" not in ds:
        raise RestartError(f"run {run_id!r} has no velocities: it cannot be continued")
    symbols = [str(s) for s in ds["symbol"].values]
    if atoms is not None and list(atoms.get_chemical_symbols()) != symbols:
        raise RestartError(f"run {run_id!r} has other atoms ({len(symbols)}) than the structure given "
                           f"({len(atoms)}); pass the same structure or a new run id")
    last = ds.isel(time=n - 1)
    cell = np.asarray(last["cell"].values, dtype=np.float64) if "cell" in last else np.asarray(attrs["default_cell"])
    start = Atoms(symbols, positions=np.asarray(last["positions"].values, dtype=np.float64), cell=cell, pbc=True)
    velocities = np.asarray(last["velocities"].values, dtype=np.float64)
    state = attrs.get("engine_state") or {}
    if state.get("frame") != n - 1:
        state = {}
    return start, velocities, n - 1, n, state


def run_md(engine: Engine, atoms: Atoms | None, settings: MDSettings, *, store, run_id: str,
           restart: bool = True, velocities: np.ndarray | None = None, attrs: dict | None = None,
           flush_every: int = 1000, flush_seconds: float = 30.0, progress: bool = True, dtype: str = "float64",
           min_distance: float = 1.0, max_force: float = 50.0, max_energy_rise: float = 1.0) -> RunResult:
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
        the whole run: a continued run runs what is missing.
    store
        An :class:`agi_data.store.Store` (``agi_data.open_store(path)``).
    restart
        When the run exists: continue it (True) or raise (False).
    velocities
        Initial velocities (Å/ps); default: Maxwell–Boltzmann at
        ``settings.temperature_K`` from ``settings.seed``.
    attrs
        Extra run attributes (e.g. ``provenance_uuid``, ``potential_uuid``).
    flush_every, flush_seconds
        A batch is appended every ``flush_every`` frames or ``flush_seconds``
        seconds, whichever comes first.
    dtype
        Storage precision of positions, velocities and forces; float64 keeps
        continuations bit-exact.
    max_force, max_energy_rise
        Blow-up limits: eV/Å, and eV/atom above the first frame.

    Returns
    -------
    RunResult
    """
    t_start = time.perf_counter()
    existing = run_id in store.run_ids()
    resume = None
    if existing:
        if not restart:
            raise MDError(f"run {run_id!r} already exists in the store; pass restart=True to continue it "
                          "or choose another run id")
        resume = _start_state(store, run_id, settings, engine, atoms)
    if resume is None:
        if atoms is None:
            raise MDError("a structure is needed to start a new run")
        if not atoms.pbc.all():
            raise MDError("the structure must be periodic in x, y and z (atoms.pbc = True)")
        start, first_frame, n_stored, state = atoms, 0, 0, {}
        v0 = (maxwell_boltzmann(atoms, settings.temperature_K, settings.seed) if velocities is None
              else np.asarray(velocities, dtype=np.float64))
        if v0.shape != (len(atoms), 3):
            raise MDError(f"velocities must have shape ({len(atoms)}, 3), got {v0.shape}")
    else:
        start, v0, first_frame, n_stored, state = resume
    check_overlap(start, min_distance)
    engine.check_species(start.get_chemical_symbols())

    n_new = settings.n_frames - n_stored
    version = store.version(run_id) if existing else ""
    result = RunResult(run_id=run_id, n_frames=n_stored, new_frames=0, version=version,
                       resumed_from=first_frame if resume is not None else None)
    if n_new <= 0:
        result.wall_s = time.perf_counter() - t_start
        return result

    describe = engine.describe()
    if resume is None:
        run_attrs = {
            **describe,
            "temperature_K": float(settings.temperature_K), "ensemble": settings.ensemble,
            "md_timestep_fs": float(settings.timestep_fs), "stride": int(settings.stride),
            "n_steps": int(settings.n_steps), "seed": int(settings.seed), "damping_fs": float(settings.damping_fs),
            "energies": "potential energy (eV)", "positions_wrapped": describe.get("engine") == "lammps",
            **(attrs or {}),
        }
        writer = (store.open_run(run_id) if existing else  # an existing run with no frame yet
                  store.create_run(run_id, start.get_chemical_symbols(), start.cell.array,
                                   settings.frame_interval_ps, attrs=run_attrs))
        include_initial = True
        n_yield = n_new - 1
    else:
        writer = store.open_run(run_id)
        include_initial = False
        n_yield = n_new
        if settings.n_steps != store.attrs(run_id).get("n_steps"):
            store.set_attrs(run_id, n_steps=int(settings.n_steps))

    n_atoms = len(start)
    buf: list[Frame] = []
    pressures: list[float] = []
    e_ref: float | None = None
    last_flush = time.perf_counter()

    def flush():
        nonlocal last_flush
        if not buf:
            return
        t0 = time.perf_counter()
        result.version = writer.append(
            np.stack([f.positions for f in buf]).astype(dtype),
            velocities=np.stack([f.velocities for f in buf]).astype(dtype),
            forces=np.stack([f.forces for f in buf]).astype(dtype),
            energies=np.array([f.energy for f in buf]),
        )
        result.n_frames += len(buf)
        result.new_frames += len(buf)
        st = engine.state()
        if st:  # engine state of the last stored frame, for an exact continuation
            result.version = store.set_attrs(run_id, engine_state={**st, "frame": result.n_frames - 1})
        buf.clear()
        result.store_s += time.perf_counter() - t0
        last_flush = time.perf_counter()

    label = f"MD {run_id} ({describe.get('engine')}, {settings.temperature_K:g} K)"
    frames = engine.run(start, v0, settings, first_frame=first_frame, n_frames=n_yield,
                        include_initial=include_initial, state=state)
    try:
        with _progress(progress) as prog:
            task = prog.add_task(label, total=n_new)
            while True:
                t0 = time.perf_counter()
                try:
                    fr = next(frames)
                except StopIteration:
                    result.engine_s += time.perf_counter() - t0
                    break
                result.engine_s += time.perf_counter() - t0
                frame_index = fr.step // settings.stride
                why = _check_frame(fr, n_atoms, e_ref, max_force, max_energy_rise, settings)
                if why is not None:
                    frames.close()
                    flush()
                    raise MDBlowUpError(
                        f"the dynamics blew up at frame {frame_index} (step {fr.step}): {why}. The time step "
                        f"({settings.timestep_fs} fs) is probably too large for this potential, or the structure is "
                        f"unphysical; the {result.n_frames} frame(s) before it are kept in run {run_id!r}",
                        last_good_frame=result.n_frames - 1)
                if e_ref is None:
                    e_ref = fr.energy
                if fr.pressure_GPa is not None:
                    pressures.append(fr.pressure_GPa)
                buf.append(fr)
                prog.advance(task)
                if len(buf) >= flush_every or time.perf_counter() - last_flush > flush_seconds:
                    flush()
            flush()
    except MDBlowUpError as err:
        flush()
        err.last_good_frame = result.n_frames - 1
        raise
    except BaseException:
        frames.close()
        flush()  # keep every good frame (KeyboardInterrupt, engine failure)
        raise
    finally:
        writer.close()
    if result.n_frames != settings.n_frames:
        raise MDError(f"the engine stopped early: run {run_id!r} has {result.n_frames} of {settings.n_frames} frames")
    if pressures:
        result.pressure_GPa_mean = float(np.mean(pressures))
        result.version = store.set_attrs(run_id, pressure_GPa_mean_last_segment=result.pressure_GPa_mean)
    result.wall_s = time.perf_counter() - t_start
    result.attrs = store.attrs(run_id)
    return result
