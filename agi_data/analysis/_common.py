"""The helpers every analysis shares: schema checks, selection, frame spacing, lag grids, compute.

One implementation per concept, one contract each:

- :func:`require` / :func:`cell_per_frame`: the trajectory schema
  (``positions(time, atom, xyz)`` Å, optional ``velocities`` Å/ps,
  ``forces`` eV/Å, ``energies(time)`` eV, ``cell(time, vec, xyz)`` or a
  constant ``cell(vec, xyz)`` Å; coordinates ``time`` (ps), ``species(atom)``
  (atomic numbers) and ``symbol(atom)``; docs/analysis-transport.md).
- :func:`atom_indices` / :func:`select_atoms` / :func:`species_label`: which atoms.
- :func:`frame_step` / :func:`lag_step` / :func:`uniform_step`: the spacing of
  ``time`` or ``lag`` in ps, refused when not uniform (FFT correlations over
  all origins need a uniform grid), rounded to 12 significant digits so that
  0.01 ps reads 0.01, not 0.010000000000000009.
- :func:`n_lags`: lags 0..``max_lag_ps`` on a frame grid.
- :func:`frame_grid`: the regular grid spanned by a subset of frames (Wannier frames).
- :func:`compute`: compute lazy results, with a progress bar on request (dask's, or
  distributed's under a distributed Client).
- :func:`dask_scheduler`: run a block on a Dask scheduler address (``local:N``,
  ``tcp://host:port``, ``$AGI_DASK_SCHEDULER``).
- :func:`renamed_arguments`: keep an old keyword working one release, with a DeprecationWarning.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import sys
import warnings
from collections.abc import Sequence
from functools import reduce

import dask
import numpy as np
import xarray as xr

from ..elements import UnknownElementError, symbols, to_atomic_numbers
from .errors import AnalysisError, SchemaError, WannierError

#: a species selection: element symbol, atomic number, a list of them, or None (every atom)
Species = str | int | Sequence[str | int] | None

#: significant digits kept in a frame or lag spacing (float steps of a float time axis carry noise beyond)
_STEP_DIGITS = 12


# ------------------------------------------------------------------------------------------ schema

def require(ds: xr.Dataset, *variables: str, min_frames: int = 2) -> None:
    """Raise :class:`SchemaError` naming what is missing from ``ds``."""
    if not isinstance(ds, xr.Dataset):
        raise SchemaError(f"expected a trajectory xarray.Dataset, got {type(ds).__name__}")
    for name in variables:
        if name not in ds.variables:
            raise SchemaError(f"the Dataset has no variable {name!r} (it has {sorted(ds.variables)})")
    for name in variables:
        if name in ("positions", "velocities", "forces"):
            dims = ds[name].dims
            if dims != ("time", "atom", "xyz"):
                raise SchemaError(f"{name} must have dims ('time', 'atom', 'xyz'), got {dims}")
    if "species" not in ds.coords:
        raise SchemaError("the Dataset has no 'species(atom)' coordinate (atomic numbers)")
    if "time" not in ds.coords:
        raise SchemaError("the Dataset has no 'time' coordinate (ps)")
    if ds.sizes.get("time", 0) < min_frames:
        raise SchemaError(f"need at least {min_frames} frames, the Dataset has {ds.sizes.get('time', 0)}")
    _check_masked(ds, variables)


def _check_masked(ds: xr.Dataset, variables) -> None:
    """Refuse per-frame variables that ``ds.where(cond, drop=True)`` broadcast over atoms."""
    spread = [name for name in ("cell", "energies") if name in ds.variables and "atom" in ds[name].dims]
    if spread:
        raise SchemaError(
            f"{spread} have an 'atom' dimension, which the schema does not allow: Dataset.where(cond) "
            "broadcasts every variable over the condition's dimensions. Select atoms with "
            "ds.isel(atom=(ds.symbol == 'Ag').values), or pass species='Ag' to the analysis"
        )


def cell_per_frame(ds: xr.Dataset) -> xr.DataArray:
    """The cell as ``(time, vec, xyz)``, broadcasting a constant cell."""
    if "cell" not in ds.variables:
        raise SchemaError("the Dataset has no 'cell' variable (vec, xyz) or (time, vec, xyz)")
    cell = ds["cell"]
    if "time" not in cell.dims:
        cell = cell.expand_dims(time=ds["time"])
    return cell.transpose("time", "vec", "xyz")


# ------------------------------------------------------------------------------------------ spacing

def uniform_step(values, what: str, error: type[Exception] = SchemaError) -> float:
    """The spacing of equally spaced ``values`` (a time or lag axis, ps), rounded to 12 significant digits."""
    t = np.asarray(values, dtype=np.float64)
    if t.size < 2:
        raise error(f"need at least 2 values of {what} to define a time step")
    dt = np.diff(t)
    step = float(np.median(dt))
    if step <= 0 or not np.allclose(dt, step, rtol=1e-6, atol=1e-9):
        raise error(
            f"{what} is not equally spaced (steps from {dt.min():g} to {dt.max():g} ps): "
            "correlations over all time origins need a uniform grid; select an equally spaced subset"
        )
    return float(f"{step:.{_STEP_DIGITS}g}")


def frame_step(traj: xr.Dataset) -> float:
    """The frame interval in ps: ``attrs["timestep_ps"]`` where it agrees with the time coordinate.

    Raises :class:`SchemaError` when the frames are not equally spaced.
    """
    dt = uniform_step(traj["time"].values, "'time'")
    ts = traj.attrs.get("timestep_ps")
    try:
        ts = float(ts)
    except (TypeError, ValueError):
        return dt
    return ts if abs(ts - dt) <= 1e-6 * dt else dt


def lag_step(c: xr.DataArray, what: str, error: type[Exception] = SchemaError, min_lags: int = 1) -> float:
    """The spacing (ps) of the ``lag`` coordinate of a correlation ``c`` that ``what`` takes as input."""
    if not isinstance(c, xr.DataArray) or "lag" not in c.dims or "lag" not in c.coords:
        raise error(f"{what} needs a DataArray with a 'lag' dimension and coordinate in ps "
                    "(the output of vacf(), gle_correlations() or correlate.lag_coordinate)")
    if c.sizes["lag"] < max(2, min_lags):
        raise error(f"{what} needs at least {max(2, min_lags)} lags, got {c.sizes['lag']}")
    return uniform_step(c["lag"].values, "'lag'", error)


def n_lags(n_frames: int, dt: float, max_lag_ps: float | None, *, min_lags: int = 1,
           what: str = "the trajectory", error: type[Exception] = AnalysisError) -> int:
    """Number of lags 0..``max_lag_ps`` (ps; None: all) on a grid of ``dt`` ps over ``n_frames`` frames.

    A ``max_lag_ps`` between grid points is rounded down (to rounding noise).
    Raises ``error`` for a lag that is negative, not finite, beyond ``what``
    or that leaves fewer than ``min_lags`` lags.
    """
    longest = (n_frames - 1) * dt
    if max_lag_ps is None:
        n = int(n_frames)
    else:
        try:
            max_lag_ps = float(max_lag_ps)
        except (TypeError, ValueError):
            raise error(f"max_lag_ps must be a lag time in ps, got {max_lag_ps!r}") from None
        if not np.isfinite(max_lag_ps) or max_lag_ps < 0:
            raise error(f"max_lag_ps must be a lag time ≥ 0 ps, got {max_lag_ps!r}")
        if max_lag_ps > longest * (1 + 1e-9) + 1e-12:
            raise error(
                f"max_lag_ps={max_lag_ps:g} ps is longer than {what}: {n_frames} points every {dt:g} ps "
                f"give lags up to {longest:g} ps; choose max_lag_ps ≤ {longest:g}"
            )
        n = int(math.floor(max_lag_ps / dt + 1e-6)) + 1
    if n < min_lags:
        raise error(f"max_lag_ps={max_lag_ps} ps gives {n} lag(s) on a {dt:g} ps grid; this analysis needs "
                    f"at least {min_lags} (max_lag_ps ≥ {(min_lags - 1) * dt:g} ps)")
    return n


_AXES = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}


def axis_vector(axis) -> np.ndarray:
    """A projection axis ``"x"``/``"y"``/``"z"`` or a non-zero 3-vector, as a unit vector."""
    if isinstance(axis, str):
        if axis not in _AXES:
            raise WannierError(f"axis must be 'x', 'y', 'z' or a 3-vector, got {axis!r}")
        return np.array(_AXES[axis])
    n = np.asarray(axis, dtype=np.float64)
    if n.shape != (3,) or not np.linalg.norm(n) > 0:
        raise WannierError(f"axis must be 'x', 'y', 'z' or a non-zero 3-vector, got {axis!r}")
    return n / np.linalg.norm(n)


def frame_grid(frames: np.ndarray, min_coverage: float) -> tuple[np.ndarray, int]:
    """The regular grid of frame indices spanned by ``frames`` (spacing g = gcd of separations), and g.

    Raises :class:`WannierError` when fewer than 2 frames, or when less than
    ``min_coverage`` of the grid points are among ``frames``.
    """
    frames = np.asarray(frames, dtype=np.int64)
    if frames.size < 2:
        raise WannierError(f"a time correlation needs centres on at least 2 frames, got {frames.size}")
    steps = np.diff(frames)
    g = int(reduce(math.gcd, steps.tolist()))
    grid = np.arange(frames[0], frames[-1] + 1, g)
    coverage = frames.size / grid.size
    if coverage < min_coverage:
        raise WannierError(
            f"the Wannier frames are unequally spaced (steps of {steps.min()}–{steps.max()} frames, common "
            f"step {g}): only {coverage:.0%} of the {grid.size} grid points have centres, below "
            f"min_coverage={min_coverage:g}. Correlations over all origins need a uniform grid: pass an "
            "equally spaced subset (frames=...), or lower min_coverage to mask the missing points"
        )
    return grid, g


# ------------------------------------------------------------------------------------------ selection

def select_species(ds: xr.Dataset, species: Species) -> xr.Dataset:
    """The atoms of ``species`` (symbol, atomic number, or a list of them); ``None`` keeps every atom.

    Raises :class:`SchemaError` for a species that is unknown or absent from the Dataset.
    """
    if species is None:
        return ds
    return ds.isel(atom=atom_indices(ds, species))


def atom_indices(ds: xr.Dataset, species: Species) -> np.ndarray:
    """Sorted indices (into ``ds``'s ``atom`` axis) of the atoms of ``species``; ``None``: every atom."""
    if "species" not in ds.coords:
        raise SchemaError("the Dataset has no 'species(atom)' coordinate (atomic numbers)")
    present = np.asarray(ds["species"].values)
    if species is None:
        return np.arange(present.size)
    wanted = [species] if isinstance(species, (str, int, np.integer)) else list(species)
    try:
        z = to_atomic_numbers(wanted)
    except UnknownElementError as err:
        raise SchemaError(str(err)) from None
    missing = [s for s, zz in zip(wanted, z) if not np.any(present == zz)]
    if missing:
        raise SchemaError(
            f"species {missing} not in the Dataset (it has {sorted(set(symbols(np.unique(present))))})"
        )
    return np.flatnonzero(np.isin(present, z))


def select_atoms(traj: xr.Dataset, species: Species, variable: str, why: str) -> xr.Dataset:
    """The atoms of ``species`` of a trajectory that must hold ``variable`` (for ``why``, in messages).

    Indexes the data once, by a slice when the atoms are contiguous (a view,
    not a fancy-index copy).
    """
    if isinstance(traj, xr.Dataset) and variable not in traj.variables:
        raise SchemaError(
            f"{why} needs the variable {variable!r} ({variable}(time, atom, xyz)); the Dataset has "
            f"{sorted(traj.data_vars)}"
        )
    require(traj, variable)
    idx = atom_indices(traj, species)
    if idx.size == traj.sizes["atom"]:
        return traj
    if idx[-1] - idx[0] + 1 == idx.size:
        return traj.isel(atom=slice(int(idx[0]), int(idx[-1]) + 1))
    return traj.isel(atom=idx)


def species_label(sel: xr.Dataset) -> list[str]:
    """The sorted element symbols (or atomic numbers, without a ``symbol`` coordinate) of ``sel``."""
    if "symbol" in sel.coords:
        return sorted(set(np.asarray(sel["symbol"].values).tolist()))
    return sorted(set(np.asarray(sel["species"].values).astype(int).tolist()))


def result_attrs(sel: xr.Dataset, dt: float, **extra) -> dict:
    """The attrs every per-species time analysis carries: species, counts, frame interval, run id."""
    out = {
        "species": species_label(sel),
        "n_atoms": int(sel.sizes["atom"]),
        "n_frames": int(sel.sizes["time"]),
        "timestep_ps": float(dt),
    }
    if "run_id" in sel.attrs:
        out["run_id"] = str(sel.attrs["run_id"])
    out.update(extra)
    return out


# ------------------------------------------------------------------------------------------ compute

#: environment variable naming the Dask scheduler that :func:`dask_scheduler` (and ``agi --scheduler``) uses
SCHEDULER_ENV = "AGI_DASK_SCHEDULER"

#: ``local`` or ``local:N``: a LocalCluster of N worker processes (default: one per core)
_LOCAL = re.compile(r"^local(?::(\d+))?$")
#: ``host:port`` without a scheme: distributed's default protocol (tcp)
_HOST_PORT = re.compile(r"^[A-Za-z0-9_.\[\]:-]+:\d+$")
#: dask's schedulers in this process
_IN_PROCESS = ("threads", "sync", "synchronous", "processes")


def _is_lazy(obj) -> bool:
    if isinstance(obj, xr.Dataset):
        return any(v.chunks is not None for v in obj.variables.values())
    return getattr(obj, "chunks", None) is not None


def distributed_client():
    """The ``dask.distributed`` Client that ``.compute()`` uses here and now, or None (a scheduler in this process).

    None when no Client exists or when ``dask.config`` selects another
    scheduler (``dask.config.set(scheduler="threads")`` beats a default Client).
    """
    if "distributed" not in sys.modules:  # no Client can exist without it; do not import it for nothing
        return None
    from distributed import Client

    client = getattr(dask.base.get_scheduler(), "__self__", None)
    return client if isinstance(client, Client) else None


def compute(*objs, progress: bool = False):
    """Compute lazy xarray objects in one Dask pass (shared inputs read once); progress on request.

    On the scheduler ``.compute()`` uses here (threads by default, or the
    current ``dask.distributed`` Client). ``progress``: dask's progress bar
    in this process, or, under a distributed Client, distributed's progress
    bar fed by the scheduler (one line naming the task count and the
    workers first), both on stdout. Returns the computed object, or a tuple
    for several.
    """
    lazy = any(_is_lazy(o) for o in objs)
    client = distributed_client() if progress and lazy else None
    if client is not None:
        return _compute_on(client, objs)

    def run():
        return objs[0].compute() if len(objs) == 1 else dask.compute(*objs)

    if progress and lazy:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            return run()
    return run()


def _compute_on(client, objs):
    """Compute ``objs`` on a distributed Client with distributed's progress bar (fed by the scheduler)."""
    import time

    from distributed import progress as show_progress

    n_tasks = sum(len(o.__dask_graph__()) for o in objs if dask.is_dask_collection(o))
    n_workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
    print(f"computing {n_tasks} tasks on {client.scheduler.address} ({n_workers} workers)", flush=True)
    t0 = time.perf_counter()
    # optimize_graph=False: with Dask's graph optimisation, a Dataset computed as a future can lose the keys
    # of some of its variables on the scheduler (the future is cancelled: "lost dependencies")
    futures = client.compute(list(objs), optimize_graph=False)
    show_progress(futures, notebook=False, scheduler=client.scheduler.address)
    done = client.gather(futures)
    print(f"\rcomputed {n_tasks} tasks in {time.perf_counter() - t0:.1f} s", flush=True)
    return done[0] if len(objs) == 1 else tuple(done)


@contextlib.contextmanager
def dask_scheduler(address: str | None = None, *, timeout_s: float = 10.0):
    """Run the Dask computations inside the ``with`` block on the scheduler ``address``; yields the Client or None.

    ``address``:

    - ``None`` or ``""``: ``$AGI_DASK_SCHEDULER`` if set, else the default
      (threads in this process);
    - ``threads``, ``sync``, ``processes``: dask's schedulers in this process;
    - ``local`` / ``local:N``: a ``LocalCluster`` of N worker processes (one
      thread each; default one per core), closed at the end of the block;
    - ``tcp://host:8786`` (any distributed address, or ``host:port``): a
      running scheduler (``dask scheduler``) with its workers (``dask worker
      tcp://host:8786``). The workers open the store themselves: they must
      reach it (the same path on a shared filesystem, or the same s3:// URL
      and credentials in their environment).

    Raises :class:`AnalysisError` for an address it cannot parse, a
    scheduler it cannot reach within ``timeout_s`` seconds, or one with no
    worker after ``timeout_s`` seconds.
    """
    address = (address or os.environ.get(SCHEDULER_ENV) or "").strip()
    if not address:
        yield None
        return
    if address in _IN_PROCESS:
        with dask.config.set(scheduler=address):
            yield None
        return
    local = _LOCAL.match(address)
    if not local and "://" not in address and not _HOST_PORT.match(address):
        raise AnalysisError(
            f"{address!r} is not a Dask scheduler: give tcp://host:port (a running `dask scheduler`), "
            "local:N (N worker processes on this machine), or threads"
        )
    from distributed import Client, LocalCluster

    if local:
        n = int(local.group(1) or os.cpu_count() or 1)
        if n < 1:
            raise AnalysisError(f"{address!r}: a local cluster needs at least 1 worker (local:1, local:2, ...)")
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            yield client
        return
    try:
        client = Client(address, timeout=timeout_s)
    except (OSError, TimeoutError, ValueError) as err:
        raise AnalysisError(
            f"cannot reach the Dask scheduler at {address} within {timeout_s:g} s ({err}); start one "
            f"(`dask scheduler`, then `dask worker {address}` where the store is reachable) or compute on "
            "this machine (local:N, or no scheduler)"
        ) from None
    with client:
        try:
            client.wait_for_workers(1, timeout=timeout_s)
        except TimeoutError:
            raise AnalysisError(
                f"the Dask scheduler at {address} has no worker after {timeout_s:g} s; start one "
                f"(`dask worker {address}`) where the store is reachable"
            ) from None
        yield client


# ------------------------------------------------------------------------------------------ API

def renamed_arguments(**renames: str):
    """Decorator: accept the old keyword ``old`` for ``new`` (``old="new"``) for one release, with a warning.

    The call goes through with the value under the new name and a
    :class:`DeprecationWarning` naming both; passing both names is a ``TypeError``.
    """
    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{func.__name__}() got both {old!r} (the old name) and {new!r}; "
                                        f"pass {new!r} only")
                    warnings.warn(f"{func.__name__}({old}=...) is deprecated and will be removed in the next "
                                  f"release; use {func.__name__}({new}=...)", DeprecationWarning, stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        wrapper.renamed_arguments = dict(renames)
        return wrapper

    return decorate
