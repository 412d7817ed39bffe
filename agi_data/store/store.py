"""The agi-data store: one Icechunk repository (transactional, versioned Zarr v3) per run.

Layout of a store directory::

    <root>/agi-store.json          marker: format name and schema version
    <root>/runs/<run_id>/          an Icechunk repository, branch "main"
        /                          root group: trajectory arrays, run metadata in attrs
        /wannier/                  Wannier-centre set of the run (optional)
        /electronic/               a model's predicted lone-pair moments (optional; store/electronic.py)
    <root>/runs/.creating-<id>-*   a run being built (invisible; removed if its creator died)
    <root>/locks/<run_id>@<part>.lock   writer, wannier, attrs and commit locks (fcntl, die with
                                        their process; hold the holder's pid, host, since)

Why a repository per run: writers on different runs never contend for the
same branch, a run's version (its snapshot id) changes only when that run
changes, and a run can be copied, exported or deleted on its own.

Durability: every :meth:`RunWriter.append` is one Icechunk transaction.
Chunks are written as new immutable objects and become visible only when
the commit moves the branch reference, which is a single atomic write. A
crash at any instant leaves the previous snapshot (every earlier append)
intact and nothing of the interrupted append visible. See store/README.md
for the measurements behind this choice.

Layers: :class:`Store` (this module) is the public face; it and both
writers reach a run only through :class:`~agi_data.store.run.RunHandle`
(sessions, locks, commits, attrs), where a storage backend plugs in.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from .._version import __version__
from ..elements import symbols
from ..units import UNITS
from . import validate
from .errors import NotAStoreError, RunExistsError, RunNotFoundError, StoreValidationError
from .layout import Layout, compressors
from .location import S3Location, parse_location
from .locks import DEFAULT_TIMEOUT_S
from .read import AtomBlock, atom_blocks, trajectory_dataset, wannier_dataset
from .run import RunHandle, RunRef, holding, location_for
from .schema import BRANCH, FRAME_VARIABLES, WANNIER_GROUP
from .writer import RunWriter, append_wannier

MARKER = "agi-store.json"
FORMAT = "agi-data store"
SCHEMA_VERSION = 1

__all__ = ["Store", "open_store", "BRANCH", "FRAME_VARIABLES", "WANNIER_GROUP", "MARKER"]


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


class Store:
    """A directory of runs. Open it with :func:`open_store`.

    ``lock_timeout_s`` bounds every wait for another writer's commit of the
    same run; the error then names the holder (pid, host, since).
    """

    def __init__(self, root: str | os.PathLike, *, lock_timeout_s: float = DEFAULT_TIMEOUT_S):
        self.location = location_for(root)
        self.root = self.location.root
        self.lock_timeout_s = float(lock_timeout_s)
        self._handles: dict[str, RunHandle] = {}

    # ---------------------------------------------------------------- handles
    def handle(self, run_id: str) -> RunHandle:
        """The lower-layer handle of a run (sessions, locks, commits); validates the id first."""
        run_id = validate.run_id(run_id)
        h = self._handles.get(run_id)
        if h is None:
            h = RunHandle(self.location, run_id, lock_timeout_s=self.lock_timeout_s)
            self._handles[run_id] = h
        return h

    def _existing(self, run_id: str) -> RunHandle:
        h = self.handle(run_id)
        if not self.location.has(run_id):
            known = ", ".join(self.run_ids()[:10]) or "none"
            raise RunNotFoundError(f"no run {run_id!r} in the store at {self.root} (runs: {known})")
        return h

    def repository(self, run_id: str):
        """The Icechunk repository of a run (for advanced use: history, tags)."""
        return self._existing(run_id).repository

    def ref(self, run_id: str, version: str | None = None) -> RunRef:
        """A small picklable reference (store, run id, version) a worker process opens itself."""
        return self._existing(run_id).ref(version)

    # ------------------------------------------------------------------ runs
    def run_ids(self) -> list[str]:
        """Every run id in the store, damaged runs included (:meth:`runs` says what is wrong with them)."""
        return sorted(self.location.entries())

    def __contains__(self, run_id: str) -> bool:
        return validate.is_run_id(run_id) and self.location.has(run_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self.run_ids())

    def create_run(self, run_id: str, species: Sequence[str | int], cell, timestep_ps: float, *,
                   attrs: dict | None = None, chunk_frames: int | None = None,
                   chunk_atoms: int | None = None, staged: bool = False,
                   time_origin_ps: float = 0.0) -> RunWriter:
        """Create a run and return its writer (a context manager).

        Parameters
        ----------
        run_id : safe name (letters, digits, ``._-``)
        species : element symbols or atomic numbers, one per atom
        cell : 3×3 lattice vectors (rows) in Å; the cell of every frame
            appended without its own ``cell``
        timestep_ps : interval between stored frames, ps
        attrs : metadata recorded on the run (temperature_K, ensemble,
            potential, engine, md_timestep_ps, provenance_uuid, …); JSON
            without NaN, not the store's reserved keys
        chunk_frames, chunk_atoms : chunk shape along time and atoms
            (defaults from :class:`~agi_data.store.layout.Layout`)
        staged : build the run out of sight: nobody sees it until
            ``writer.publish()``, and closing the writer unpublished removes
            it (an import is all or nothing)
        time_origin_ps : time of the first frame, ps (a run imported from a
            file whose clock does not start at zero)
        """
        handle = self.handle(run_id)
        numbers = validate.species(species)
        cell = validate.cell(cell)
        dt = validate.timestep(timestep_ps)
        layout = Layout.for_run(len(numbers), chunk_frames, chunk_atoms)
        meta = validate.attrs(attrs)
        origin = validate.finite_number(time_origin_ps, "time_origin_ps")
        root_attrs = {
            **meta, "run_id": handle.run_id, "timestep_ps": dt, "n_atoms": int(len(numbers)),
            "default_cell": cell.tolist(), "created": _now(), "agi_data_version": __version__,
            "layout": layout.to_dict(), **({"time_origin_ps": origin} if origin else {}),
            "units": {k: UNITS[k] for k in ("positions", "velocities", "forces", "energies", "cell", "time")},
        }
        self._ensure_root()
        lock = handle.lock("writer").acquire(0)
        try:
            if self.location.has(handle.run_id):
                raise RunExistsError(f"run {handle.run_id!r} already exists in {self.root}; use open_run() to append to it")
            for leftover in self.location.leftovers(handle.run_id):  # of a creator that died: we hold its lock
                self.location.discard(leftover)
            # Build the repository beside its final place and move it in with one
            # rename: a crash during creation never leaves a half-made run.
            name = self.location.stage(handle.run_id)
            try:
                built = RunHandle.create(self.location, handle.run_id, name, lock_timeout_s=self.lock_timeout_s)
                session = built.writable()
                zarr.open_group(session.store, mode="a").attrs.update(root_attrs)
                zarr.create_array(session.store, name="species", data=numbers.astype(np.int16),
                                  dimension_names=["atom"], attributes={"long_name": "atomic number"},
                                  compressors=compressors())
                built.commit(session, f"create run {handle.run_id}")
                if not staged:
                    self.location.publish(name, handle.run_id)
                    built = built.moved_to(handle.run_id)
            except BaseException:
                self.location.discard(name)
                raise
        except BaseException:
            lock.release()
            raise
        self._handles.pop(handle.run_id, None)
        return RunWriter(built, lock, staged=staged)

    def _ensure_root(self) -> None:
        if isinstance(self.location, S3Location):
            self.location.open(create=False)
        elif not (self.root / MARKER).is_file():
            raise NotAStoreError(f"{self.root} is not an agi-data store (no {MARKER}); open it with open_store()")

    def open_run(self, run_id: str) -> RunWriter:
        """Reopen a run to append more frames (one writer per run at a time)."""
        handle = self._existing(run_id)
        lock = handle.lock("writer").acquire(0)
        try:
            return RunWriter(handle, lock)
        except BaseException:
            lock.release()
            raise

    def delete_run(self, run_id: str) -> None:
        """Remove a run and its history (needs its writer and Wannier locks; a damaged run can be removed too)."""
        handle = self._existing(run_id)
        with holding(handle.lock("writer"), 0), holding(handle.lock("wannier"), 0):
            self._handles.pop(run_id, None)
            self.location.remove(run_id)

    # ---------------------------------------------------------------- reading
    def version(self, run_id: str) -> str:
        """Immutable id (Icechunk snapshot id) of the run's current content.

        ``trajectory(run_id, version=v)`` and ``wannier(run_id, version=v)``
        read exactly that content later, whatever was appended since.
        """
        return self._existing(run_id).version()

    def history(self, run_id: str) -> pd.DataFrame:
        """Every version of a run, newest first: snapshot id, time, message."""
        rows = [{"version": s.id, "written_at": s.written_at, "message": s.message}
                for s in self._existing(run_id).ancestry()]
        return pd.DataFrame(rows)

    def attrs(self, run_id: str, version: str | None = None) -> dict:
        return self._existing(run_id).attrs(version)

    def set_attrs(self, run_id: str, *, group: str | None = None, **attrs) -> str:
        """Record metadata on a run (or on its ``wannier`` group); returns the new version.

        The store's own keys (``run_id``, ``timestep_ps``, ``layout``, …) are
        reserved: setting one is refused, since reads depend on them.
        """
        attrs = validate.attrs(attrs)
        if group not in (None, WANNIER_GROUP):
            raise StoreValidationError(f"group must be None or {WANNIER_GROUP!r}, got {group!r}")
        if not attrs:
            raise StoreValidationError("set_attrs needs at least one key=value")
        handle = self._existing(run_id)
        if group is not None and group not in handle.group():
            raise StoreValidationError(f"run {run_id!r} has no {group!r} group yet")
        return handle.update_attrs(attrs, group)

    def trajectory(self, run_id: str, version: str | None = None) -> xr.Dataset:
        """The run as a lazy, Dask-backed :class:`xarray.Dataset`.

        ``positions(time, atom, xyz)`` Å and, where stored, ``velocities``
        (Å/ps), ``forces`` (eV/Å), ``energies(time)`` (eV),
        ``cell(time, vec, xyz)`` (Å); coordinates ``time`` (ps),
        ``species(atom)`` (atomic numbers), ``symbol(atom)``. Nothing is
        read until computed; Dask chunks equal the stored chunks.
        """
        return trajectory_dataset(self._existing(run_id), version)

    def atom_blocks(self, run_id: str, variable: str = "positions", *, atoms=None, version: str | None = None,
                    time: slice | None = None, block_atoms: int | None = None) -> Iterator[AtomBlock]:
        """Yield ``(atoms, data)`` blocks: float64 ``(T, n, 3)`` of a selection, read aligned to the chunks.

        The fast path for analyses that need the whole time axis of a block
        of atoms (correlation functions): no Dask graph, one concurrent
        read per block; see :func:`agi_data.store.read.atom_blocks`.
        ``atoms``: None (all), a boolean mask or indices (e.g.
        ``np.flatnonzero(ds.symbol == "Ag")``).
        """
        return atom_blocks(self._existing(run_id), variable, atoms=atoms, version=version, time=time,
                           block_atoms=block_atoms)

    def wannier(self, run_id: str, version: str | None = None) -> xr.Dataset:
        """The run's Wannier centres: ``centres(frame, wannier, xyz)`` Å, ``spread(frame, wannier)`` Å².

        Coordinates ``frame`` (index into the trajectory's ``time``) and
        ``frame_time`` (ps), sorted by frame.
        """
        return wannier_dataset(self._existing(run_id), version)

    def electronic(self, run_id: str, version: str | None = None) -> xr.Dataset:
        """The run's predicted lone-pair moments (``agi.electronic_predict``), lazily.

        The Dataset of :func:`agi_data.analysis.lone_pair_moments`:
        ``octupole(frame, ion, m)`` (dimensionless), ``dipole(frame, ion, xyz)``
        (e·Å), coordinates ``frame``, ``frame_time`` (ps), ``atom(ion)``,
        ``bad_frame``; attrs name the model (``model_uuid``, ``model_sha256``)
        and the basis. ``version`` reads earlier predictions (e.g. those a
        ``replace=True`` swapped out). See :mod:`agi_data.store.electronic`.
        """
        from .electronic import electronic_dataset

        return electronic_dataset(self._existing(run_id), version)

    def add_wannier(self, run_id: str, frames, centres, spreads=None, *, attrs: dict | None = None) -> str:
        """Append Wannier centres computed on some frames of a run; returns the new version.

        ``frames``: indices into the run's time axis (each at most once over
        all calls); ``centres``: (n_frames, n_wannier, 3) Å; ``spreads``:
        (n_frames, n_wannier) Å². One transaction: all of it or nothing.
        """
        handle = self._existing(run_id)
        with holding(handle.lock("wannier"), self.lock_timeout_s):
            return append_wannier(handle, frames, centres, spreads, attrs)

    def _summary(self, run_id: str) -> dict:
        handle = self.handle(run_id)
        session = handle.session()
        root = zarr.open_group(session.store, mode="r")
        a = root.attrs
        counts = Counter(symbols(root["species"][:]))
        n_frames = root["positions"].shape[0] if "positions" in root else 0
        n_wannier = root[WANNIER_GROUP]["frame"].shape[0] if WANNIER_GROUP in root else 0
        return {
            "frames": n_frames, "atoms": a.get("n_atoms"),
            "species": " ".join(f"{el}{n}" for el, n in sorted(counts.items())),
            "timestep_ps": a.get("timestep_ps"), "duration_ps": n_frames * a.get("timestep_ps", np.nan),
            "temperature_K": a.get("temperature_K"), "potential": a.get("potential"), "engine": a.get("engine"),
            "wannier_frames": n_wannier, "created": a.get("created"),
            "provenance_uuid": a.get("provenance_uuid"), "version": session.snapshot_id,
        }

    RUN_COLUMNS = ["run_id", "frames", "atoms", "species", "timestep_ps", "duration_ps", "temperature_K",
                   "potential", "engine", "wannier_frames", "created", "provenance_uuid", "version", "problem"]

    def runs(self) -> pd.DataFrame:
        """One row per run: id, frames, atoms, species counts, timestep, temperature, potential, ….

        A damaged run keeps its row, with what is wrong in ``problem`` (empty
        for healthy runs): one damaged run never hides the others.
        """
        rows = []
        for run_id, problem in self.location.entries().items():
            row = {"run_id": run_id, "problem": problem or ""}
            if problem is None:
                try:
                    row.update(self._summary(run_id))
                except Exception as err:  # noqa: BLE001 - any failure to read a run is that run's problem
                    row["problem"] = f"unreadable: {err}"
            rows.append(row)
        return pd.DataFrame(rows, columns=self.RUN_COLUMNS)

    def atoms(self, run_id: str, frames=None, *, version: str | None = None):
        """The run's frames as ``ase.Atoms``: SinglePointCalculator (energy eV, forces eV/Å), velocities in ASE units.

        A generator (one frame read at a time); ``frames`` an index, slice or sequence (default: all).
        """
        from ..interop.ase import atoms

        return atoms(self, run_id, frames, version=version)

    def __repr__(self) -> str:
        return f"<agi_data.Store {self.root} ({len(self.run_ids())} runs)>"


def _read_marker(marker: Path) -> dict:
    try:
        info = json.loads(marker.read_bytes())
    except (OSError, ValueError) as err:
        raise NotAStoreError(f"{marker} is unreadable ({err}): not an agi-data store marker") from None
    return _check_marker(info, str(marker), str(marker.parent))


def _check_marker(info, marker: str, store: str) -> dict:
    """The marker's content is an agi-data store's of a schema this version reads."""
    if not isinstance(info, dict):
        raise NotAStoreError(f"{marker} holds {type(info).__name__} {info!r:.40}, not an agi-data store marker (a JSON object)")
    if info.get("format") != FORMAT:
        raise NotAStoreError(f"{store} holds a {info.get('format')!r}, not an {FORMAT}")
    version = info.get("schema_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise NotAStoreError(f"{marker} has schema_version {version!r}, not an integer")
    if version > SCHEMA_VERSION:
        raise NotAStoreError(
            f"{store} uses store schema {version}, newer than this agi-data ({SCHEMA_VERSION}): upgrade agi-data"
        )
    return info


def _new_marker() -> dict:
    return {"format": FORMAT, "schema_version": SCHEMA_VERSION, "created": _now()}


#: what an interrupted store creation may leave behind: such a directory is still made a store
_CREATION_DEBRIS = {f".{MARKER}.tmp"}


def open_store(path: str | os.PathLike | None = None, *, create: bool = True,
               lock_timeout_s: float = DEFAULT_TIMEOUT_S, endpoint_url: str | None = None,
               region: str | None = None, allow_http: bool | None = None) -> Store:
    """Open the store at ``path``; with ``create`` (the default), make it if the directory is missing or empty.

    Read-only callers pass ``create=False``: a missing store is then a
    :class:`NotAStoreError` (a mistyped path never becomes a new store).
    Raises :class:`NotAStoreError` for an existing, non-empty directory that
    is not an agi-data store (nothing in it is touched). ``lock_timeout_s``
    bounds every wait for another process's commit to a run.

    ``path`` may be ``s3://bucket/prefix`` (see :mod:`agi_data.store.location`:
    ``endpoint_url``, ``region`` and ``allow_http`` override what the URL and
    the AWS environment say); an unsupported or malformed URL raises
    :class:`~agi_data.store.location.StoreLocationError` and creates nothing.
    """
    if path is None:
        from ..config import store_path

        path = store_path()
    location = parse_location(path, endpoint_url=endpoint_url, region=region, allow_http=allow_http)
    if isinstance(location, S3Location):
        info = location.open(create=create, schema=_new_marker())
        _check_marker(info, f"{location.describe()} {MARKER}", location.describe())
        return Store(location, lock_timeout_s=lock_timeout_s)
    root = location
    marker = root / MARKER
    if root.exists() and not root.is_dir():
        raise NotAStoreError(f"{root} is a file, not a store directory")
    if marker.is_file():
        _read_marker(marker)
        return Store(root, lock_timeout_s=lock_timeout_s)
    if marker.exists() or marker.is_symlink():
        raise NotAStoreError(f"{marker} is not a regular file: {root} is not an agi-data store")
    if root.is_dir() and {p.name for p in root.iterdir()} - _CREATION_DEBRIS:
        raise NotAStoreError(
            f"{root} exists, is not empty and has no {MARKER}: it is not an agi-data store "
            "(choose an empty or new directory)"
        )
    if not create:
        raise NotAStoreError(
            f"there is no agi-data store at {root}" + ("" if root.exists() else " (no such directory)")
            + ": check the path (--store or AGI_HOME)"
        )
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{MARKER}.tmp"
    if tmp.is_symlink():
        tmp.unlink()
    tmp.write_text(json.dumps(_new_marker(), indent=1))
    os.replace(tmp, marker)
    return Store(root, lock_timeout_s=lock_timeout_s)
