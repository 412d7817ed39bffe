"""The agi-data store: one Icechunk repository (transactional, versioned Zarr v3) per run.

Layout of a store directory::

    <root>/agi-store.json          marker: format name and schema version
    <root>/runs/<run_id>/          an Icechunk repository, branch "main"
        /                          root group: trajectory arrays, run metadata in attrs
        /wannier/                  Wannier-centre set of the run (optional)
    <root>/locks/<run_id>.lock     writer lock of the trajectory (fcntl, dies with its process)
    <root>/locks/<run_id>.wannier.lock

Why a repository per run: writers on different runs never contend for the
same branch, a run's version (its snapshot id) changes only when that run
changes, and a run can be copied, exported or deleted on its own.

Durability: every :meth:`RunWriter.append` is one Icechunk transaction.
Chunks are written as new immutable objects and become visible only when
the commit moves the branch reference, which is a single atomic write. A
crash at any instant leaves the previous snapshot (every earlier append)
intact and nothing of the interrupted append visible. See store/README.md
for the measurements behind this choice.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import icechunk
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from .. import __version__
from ..elements import symbols
from ..units import UNITS
from . import validate
from .errors import (
    NotAStoreError,
    RunExistsError,
    RunNotFoundError,
    StoreValidationError,
)
from .layout import Layout
from .locks import FileLock

MARKER = "agi-store.json"
FORMAT = "agi-data store"
SCHEMA_VERSION = 1
BRANCH = "main"
WANNIER_GROUP = "wannier"

#: trajectory variables that may be stored per frame, with their dimensions
FRAME_VARIABLES = {
    "positions": ("time", "atom", "xyz"),
    "velocities": ("time", "atom", "xyz"),
    "forces": ("time", "atom", "xyz"),
    "energies": ("time",),
    "cell": ("time", "vec", "xyz"),
}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _storage(path: Path) -> icechunk.Storage:
    return icechunk.local_filesystem_storage(str(path))


# Commits to one run are serialised across processes by a file lock (below),
# which is what makes the local-filesystem storage safe for them; silence
# Icechunk's generic warning about unsynchronised concurrent commits.
icechunk.set_logs_filter("error")


def commit(session: icechunk.Session, message: str, lock_path: Path) -> str:
    """Commit under the run's commit lock, rebasing over commits that touched other arrays.

    A trajectory append, a Wannier batch and an attrs update on the same run
    may run in different processes; the lock makes their branch updates
    take turns, and the rebase lets each land on top of the others.
    """
    with FileLock(lock_path, "commit", blocking=True):
        return session.commit(message, rebase_with=icechunk.ConflictDetector())


class Store:
    """A directory of runs. Open it with :func:`open_store`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._repos: dict[str, icechunk.Repository] = {}

    # ------------------------------------------------------------------ paths
    def _run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / validate.run_id(run_id)

    def _lock(self, run_id: str, part: str = "") -> FileLock:
        what = f"run {run_id!r}" + (f" ({part})" if part else "")
        return FileLock(self.root / "locks" / f"{run_id}{'.' + part if part else ''}.lock", what)

    def _commit_lock(self, run_id: str) -> Path:
        return self.root / "locks" / f"{run_id}.commit.lock"

    def repository(self, run_id: str) -> icechunk.Repository:
        """The Icechunk repository of a run (for advanced use: history, tags)."""
        path = self._run_dir(run_id)
        if run_id not in self._repos:
            if not path.is_dir():
                known = ", ".join(self.run_ids()[:10]) or "none"
                raise RunNotFoundError(f"no run {run_id!r} in the store at {self.root} (runs: {known})")
            self._repos[run_id] = icechunk.Repository.open(_storage(path))
        return self._repos[run_id]

    def _session(self, run_id: str, version: str | None) -> icechunk.Session:
        repo = self.repository(run_id)
        if version is None:
            return repo.readonly_session(branch=BRANCH)
        try:
            return repo.readonly_session(snapshot_id=str(version))
        except (icechunk.IcechunkError, ValueError) as err:
            raise StoreValidationError(f"run {run_id!r} has no version {version!r}: {err}") from None

    # ------------------------------------------------------------------ runs
    def run_ids(self) -> list[str]:
        runs = self.root / "runs"
        if not runs.is_dir():
            return []
        return sorted(p.name for p in runs.iterdir() if p.is_dir() and validate.RUN_ID_PATTERN.match(p.name))

    def __contains__(self, run_id: str) -> bool:
        return run_id in self.run_ids()

    def __iter__(self) -> Iterator[str]:
        return iter(self.run_ids())

    def create_run(self, run_id: str, species: Sequence[str | int], cell, timestep_ps: float, *,
                   attrs: dict | None = None, chunk_frames: int | None = None,
                   chunk_atoms: int | None = None) -> "RunWriter":
        """Create a run and return its writer (a context manager).

        Parameters
        ----------
        run_id : safe name (letters, digits, ``._-``)
        species : element symbols or atomic numbers, one per atom
        cell : 3×3 lattice vectors (rows) in Å; the cell of every frame
            appended without its own ``cell``
        timestep_ps : interval between stored frames, ps
        attrs : metadata recorded on the run (temperature_K, ensemble,
            potential, engine, md_timestep_ps, provenance_uuid, …); JSON-able
        chunk_frames, chunk_atoms : chunk shape along time and atoms
            (defaults from :class:`~agi_data.store.layout.Layout`)
        """
        from .writer import RunWriter

        run_id = validate.run_id(run_id)
        numbers = validate.species(species)
        cell = validate.cell(cell)
        dt = validate.timestep(timestep_ps)
        layout = Layout.for_run(len(numbers), chunk_frames, chunk_atoms)
        meta = dict(attrs or {})
        try:
            json.dumps(meta)
        except TypeError as err:
            raise StoreValidationError(f"attrs must be JSON-serialisable: {err}") from None
        reserved = {"run_id", "timestep_ps", "n_atoms", "created", "agi_data_version", "layout", "default_cell"}
        clash = reserved & set(meta)
        if clash:
            raise StoreValidationError(f"attrs may not set reserved keys {sorted(clash)}")

        lock = self._lock(run_id).acquire()
        try:
            final = self._run_dir(run_id)
            if final.exists():
                raise RunExistsError(f"run {run_id!r} already exists in {self.root}; use open_run() to append to it")
            # Build the repository beside its final place and move it in with one
            # rename: a crash during creation never leaves a half-made run.
            tmp = self.root / "runs" / f".creating-{run_id}-{uuid.uuid4().hex[:8]}"
            tmp.parent.mkdir(parents=True, exist_ok=True)
            try:
                repo = icechunk.Repository.create(_storage(tmp))
                session = repo.writable_session(BRANCH)
                root = zarr.open_group(session.store, mode="a")
                root.attrs.update({
                    **meta,
                    "run_id": run_id,
                    "timestep_ps": dt,
                    "n_atoms": int(len(numbers)),
                    "default_cell": cell.tolist(),
                    "created": _now(),
                    "agi_data_version": __version__,
                    "layout": layout.to_dict(),
                    "units": {k: UNITS[k] for k in ("positions", "velocities", "forces", "energies", "cell", "time")},
                })
                zarr.create_array(session.store, name="species", data=numbers.astype(np.int16),
                                  dimension_names=["atom"], attributes={"long_name": "atomic number"})
                commit(session, f"create run {run_id}", self._commit_lock(run_id))
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        except BaseException:
            lock.release()
            raise
        return RunWriter(self, run_id, lock)

    def open_run(self, run_id: str) -> "RunWriter":
        """Reopen a run to append more frames (one writer per run at a time)."""
        from .writer import RunWriter

        self.repository(run_id)  # raises RunNotFoundError
        return RunWriter(self, run_id, self._lock(run_id).acquire())

    def delete_run(self, run_id: str) -> None:
        """Remove a run and its history (needs its writer lock)."""
        self.repository(run_id)
        with self._lock(run_id), self._lock(run_id, "wannier"):
            self._repos.pop(run_id, None)
            trash = self.root / "runs" / f".deleting-{run_id}-{uuid.uuid4().hex[:8]}"
            os.rename(self._run_dir(run_id), trash)  # atomic: the run disappears at once
            shutil.rmtree(trash, ignore_errors=True)

    # ---------------------------------------------------------------- reading
    def version(self, run_id: str) -> str:
        """Immutable id (Icechunk snapshot id) of the run's current content.

        ``trajectory(run_id, version=v)`` and ``wannier(run_id, version=v)``
        read exactly that content later, whatever was appended since.
        """
        return self.repository(run_id).lookup_branch(BRANCH)

    def history(self, run_id: str) -> pd.DataFrame:
        """Every version of a run, newest first: snapshot id, time, message."""
        rows = [
            {"version": s.id, "written_at": s.written_at, "message": s.message}
            for s in self.repository(run_id).ancestry(branch=BRANCH)
        ]
        return pd.DataFrame(rows)

    def attrs(self, run_id: str, version: str | None = None) -> dict:
        session = self._session(run_id, version)
        return dict(zarr.open_group(session.store, mode="r").attrs)

    def set_attrs(self, run_id: str, *, group: str | None = None, **attrs) -> str:
        """Record metadata on a run (or on its ``wannier`` group); returns the new version."""
        try:
            json.dumps(attrs)
        except TypeError as err:
            raise StoreValidationError(f"attrs must be JSON-serialisable: {err}") from None
        if group not in (None, WANNIER_GROUP):
            raise StoreValidationError(f"group must be None or {WANNIER_GROUP!r}, got {group!r}")
        with self._lock(run_id, "attrs"):
            session = self.repository(run_id).writable_session(BRANCH)
            root = zarr.open_group(session.store, mode="r+")
            if group is not None and group not in root:
                raise StoreValidationError(f"run {run_id!r} has no {group!r} group yet")
            target = root if group is None else root[group]
            target.attrs.update(attrs)
            return commit(session, f"set attrs {sorted(attrs)}" + (f" on {group}" if group else ""),
                          self._commit_lock(run_id))

    def trajectory(self, run_id: str, version: str | None = None) -> xr.Dataset:
        """The run as a lazy, Dask-backed :class:`xarray.Dataset`.

        ``positions(time, atom, xyz)`` Å and, where stored, ``velocities``
        (Å/ps), ``forces`` (eV/Å), ``energies(time)`` (eV),
        ``cell(time, vec, xyz)`` (Å); coordinates ``time`` (ps),
        ``species(atom)`` (atomic numbers), ``symbol(atom)``. Nothing is
        read until computed; Dask chunks equal the stored chunks.
        """
        session = self._session(run_id, version)
        root = zarr.open_group(session.store, mode="r")
        attrs = dict(root.attrs)
        if "positions" in root:
            ds = xr.open_zarr(session.store, consolidated=False, chunks={}, zarr_format=3,
                              mask_and_scale=False)
        else:  # a run with no frames yet
            n = attrs["n_atoms"]
            ds = xr.Dataset({
                "positions": (("time", "atom", "xyz"), np.zeros((0, n, 3), np.float32), {"units": UNITS["positions"]}),
                "cell": (("time", "vec", "xyz"), np.zeros((0, 3, 3)), {"units": UNITS["cell"]}),
                "time": ("time", np.zeros(0), {"units": UNITS["time"]}),
                "species": ("atom", np.asarray(root["species"][:])),
            })
        ds = ds.set_coords([c for c in ("time", "species") if c in ds.variables])
        species = np.asarray(ds["species"].values)
        ds = ds.assign_coords(
            species=("atom", species, {"long_name": "atomic number"}),
            symbol=("atom", np.array(symbols(species)), {"long_name": "element"}),
            xyz=["x", "y", "z"],
        )
        if "vec" in ds.dims:
            ds = ds.assign_coords(vec=["a", "b", "c"])
        ds.attrs = {k: v for k, v in attrs.items() if k not in ("layout", "units")}
        ds.attrs["store_version"] = session.snapshot_id
        return ds

    def wannier(self, run_id: str, version: str | None = None) -> xr.Dataset:
        """The run's Wannier centres: ``centres(frame, wannier, xyz)`` Å, ``spread(frame, wannier)`` Å².

        Coordinates ``frame`` (index into the trajectory's ``time``) and
        ``frame_time`` (ps), sorted by frame.
        """
        session = self._session(run_id, version)
        root = zarr.open_group(session.store, mode="r")
        if WANNIER_GROUP not in root:
            raise RunNotFoundError(f"run {run_id!r} has no Wannier centres (add them with add_wannier)")
        ds = xr.open_zarr(session.store, group=WANNIER_GROUP, consolidated=False, chunks={}, zarr_format=3,
                          mask_and_scale=False)
        ds = ds.set_coords(["frame", "frame_time"]).assign_coords(xyz=["x", "y", "z"])
        ds = ds.assign_coords(frame=ds["frame"].values, frame_time=("frame", ds["frame_time"].values, ds["frame_time"].attrs))
        if not np.all(np.diff(ds["frame"].values) > 0):
            ds = ds.sortby("frame")
        ds.attrs = dict(root[WANNIER_GROUP].attrs)
        ds.attrs["run_id"] = run_id
        ds.attrs["store_version"] = session.snapshot_id
        return ds

    def add_wannier(self, run_id: str, frames, centres, spreads=None, *, attrs: dict | None = None) -> str:
        """Append Wannier centres computed on some frames of a run; returns the new version.

        ``frames``: indices into the run's time axis (each at most once over
        all calls); ``centres``: (n_frames, n_wannier, 3) Å; ``spreads``:
        (n_frames, n_wannier) Å². One transaction: all of it or nothing.
        """
        from .writer import append_wannier

        with self._lock(run_id, "wannier"):
            return append_wannier(self, run_id, frames, centres, spreads, attrs)

    def runs(self) -> pd.DataFrame:
        """One row per run: id, frames, atoms, species counts, timestep, temperature, potential, …"""
        rows = []
        for run_id in self.run_ids():
            session = self._session(run_id, None)
            root = zarr.open_group(session.store, mode="r")
            a = root.attrs
            counts = Counter(symbols(root["species"][:]))
            n_frames = root["positions"].shape[0] if "positions" in root else 0
            n_wannier = root[WANNIER_GROUP]["frame"].shape[0] if WANNIER_GROUP in root else 0
            rows.append({
                "run_id": run_id,
                "frames": n_frames,
                "atoms": a.get("n_atoms"),
                "species": " ".join(f"{el}{n}" for el, n in sorted(counts.items())),
                "timestep_ps": a.get("timestep_ps"),
                "duration_ps": n_frames * a.get("timestep_ps", np.nan),
                "temperature_K": a.get("temperature_K"),
                "potential": a.get("potential"),
                "engine": a.get("engine"),
                "wannier_frames": n_wannier,
                "created": a.get("created"),
                "provenance_uuid": a.get("provenance_uuid"),
                "version": session.snapshot_id,
            })
        columns = ["run_id", "frames", "atoms", "species", "timestep_ps", "duration_ps", "temperature_K",
                   "potential", "engine", "wannier_frames", "created", "provenance_uuid", "version"]
        return pd.DataFrame(rows, columns=columns)

    def __repr__(self) -> str:
        return f"<agi_data.Store {self.root} ({len(self.run_ids())} runs)>"


def open_store(path: str | os.PathLike | None = None) -> Store:
    """Open the store at ``path``, creating it if the directory is missing or empty.

    Raises :class:`NotAStoreError` for an existing, non-empty directory that
    is not an agi-data store (nothing in it is touched).
    """
    if path is None:
        from ..config import store_path

        path = store_path()
    root = Path(path).expanduser()
    marker = root / MARKER
    if root.exists() and not root.is_dir():
        raise NotAStoreError(f"{root} is a file, not a store directory")
    if marker.is_file():
        try:
            info = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise NotAStoreError(f"{marker} is unreadable: {err}") from None
        if info.get("format") != FORMAT:
            raise NotAStoreError(f"{root} holds a {info.get('format')!r}, not an {FORMAT}")
        if info.get("schema_version", 0) > SCHEMA_VERSION:
            raise NotAStoreError(
                f"{root} uses store schema {info['schema_version']}, newer than this agi-data ({SCHEMA_VERSION}): upgrade agi-data"
            )
        return Store(root)
    if root.is_dir() and any(root.iterdir()):
        raise NotAStoreError(
            f"{root} exists, is not empty and has no {MARKER}: it is not an agi-data store "
            "(choose an empty or new directory)"
        )
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{MARKER}.tmp"
    tmp.write_text(json.dumps({"format": FORMAT, "schema_version": SCHEMA_VERSION, "created": _now()}, indent=1))
    os.replace(tmp, marker)
    return Store(root)
