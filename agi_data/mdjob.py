"""The MD job: one MD run from a settings file, what the ``agi.md_job`` CalcJob runs on any computer.

It sits above :mod:`agi_data.md` (which never opens a store: the store is passed in) and opens the
store the job writes to.

``python -m agi_data.mdjob job.json`` reads::

    {"structure": "structure.extxyz",                 # the starting structure (periodic)
     "potential": {"force_field": "agi-vashishta-rahman-sk"} | {"model": "model.nequip.zip",
                                                               "uuid": "<model node>"},
     "parameters": {...},                             # the resolved `md` protocol
     "store": {"store_path": "/project/agi/store", "run_id": "..."},
     "attrs": {...}}                                  # extra run attributes (provenance UUIDs)

runs :func:`run_job` — the same function the in-process route (the ``molecular_dynamics``
calcfunction of ``agi.md``) calls, so one code path decides the physics for both — and writes
``result.json`` next to it. The frames go straight into the store as the run proceeds (one
transaction per batch), so a job killed by the scheduler loses at most the unflushed batch and
the next job continues the run from its last stored frame. While it runs it prints one line per
stored batch (``frames 120/500``), which the scheduler's output file shows.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

#: written by the job, read by the ``agi.md_job`` parser
from .jobfiles import RESULT_FILE, SETTINGS_FILE, read_settings, write_result  # noqa: F401 - the names the CalcJobs use


def settings_from(params: dict):
    """The :class:`~agi_data.md.base.MDSettings` of a resolved ``md`` protocol."""
    from .md import MDSettings

    return MDSettings(**params["md"])


def engine_for(potential: dict, params: dict, *, potential_uuid: str | None = None):
    """The engine for ``{"force_field": name}`` (LAMMPS) or ``{"model": path}`` (Allegro through ASE)."""
    from .md import build_engine

    if "force_field" in potential:
        return build_engine(potential["force_field"], mpi_ranks=int(params["lammps"]["mpi_ranks"]))
    return build_engine(Path(potential["model"]), device=str(params["allegro"]["device"]),
                        potential_uuid=potential_uuid or potential.get("uuid"))


def _finite(x):
    return float(x) if x is not None and math.isfinite(x) else None


def run_job(atoms, potential: dict, params: dict, store_path: str, run_id: str, *, attrs: dict | None = None,
            progress: bool = False) -> dict:
    """Run (or continue) the MD of a resolved ``md`` protocol into ``run_id``; returns what was written.

    The returned mapping has ``status`` (``ok`` or ``blow-up``, with ``message``: the frames before
    the blow-up are kept), ``run_id``, ``store_path``, ``version``, ``n_frames``, ``new_frames``,
    ``resumed_from``, the engine/store/wall times (s), ``store_overhead``, ``pressure_GPa_mean``,
    ``ns_per_day`` and ``engine``.
    """
    from agi_data import open_store

    from .md import BlowUpLimits, MDBlowUpError, StreamOptions, run_md

    settings = settings_from(params)
    store = open_store(store_path)
    engine = engine_for(potential, params)
    out = {"run_id": run_id, "store_path": str(store.root)}
    options = StreamOptions(progress=progress, dtype=str(params["store"]["dtype"]),
                            flush_every=int(params["store"]["flush_every"]))
    try:
        res = run_md(engine, atoms, settings, store=store, run_id=run_id, attrs=attrs or {}, options=options,
                     limits=BlowUpLimits(**params["checks"]))
    except MDBlowUpError as err:
        # a blow-up in the equilibration leaves no production run yet (its frames are in the equilibration run)
        out.update(status="blow-up", message=str(err), n_frames=err.last_good_frame + 1,
                   version=store.version(run_id) if run_id in store.run_ids() else None)
        return out
    out.update(status="ok", version=res.version, n_frames=res.n_frames, new_frames=res.new_frames,
               resumed_from=res.resumed_from, engine_s=res.engine_s, store_s=res.store_s, wall_s=res.wall_s,
               store_overhead=_finite(res.store_overhead), pressure_GPa_mean=_finite(res.pressure_GPa_mean),
               ns_per_day=_finite(res.ns_per_day(settings)), engine=engine.describe().get("engine"))
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of the job: read the settings file, run, write ``result.json``; exit 0 unless it crashed."""
    from ase.io import read

    from agi_data.store.errors import RunExistsError, RunLockedError

    job, workdir = read_settings(argv)
    t0 = time.perf_counter()
    try:
        store_path = job["store"]["store_path"]
        # a new store may be created here, but only inside a directory this node sees
        if "://" not in store_path and not Path(store_path).parent.is_dir():
            raise FileNotFoundError(f"the store {store_path} is not reachable from this machine "
                                    f"({Path.cwd()}): put the store on a filesystem the job's nodes mount")
        atoms = read(workdir / job["structure"])
        potential = dict(job["potential"])
        if "model" in potential:
            potential["model"] = str(workdir / potential["model"])
        out = run_job(atoms, potential, job["parameters"], store_path, job["store"]["run_id"],
                      attrs=job.get("attrs"), progress=False)
    except FileNotFoundError as err:
        out = {"status": "store-unreachable", "message": str(err)}
    except (RunLockedError, RunExistsError) as err:  # another job or WorkChain writes this run: never interleave
        out = {"status": "run-locked", "message": str(err)}
    print(f"agi md job: {out['status']} after {time.perf_counter() - t0:.1f} s", flush=True)
    write_result(workdir, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
