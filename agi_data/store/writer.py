"""Appending frames and Wannier centres: one Icechunk transaction per call, every check before any write.

Both writers reach the run through its :class:`~agi_data.store.run.RunHandle`
(sessions, commits under the commit lock); neither knows the :class:`Store`.
"""

from __future__ import annotations

import numpy as np
import zarr

from ..units import UNITS
from . import validate
from .errors import StoreValidationError, WriterClosedError
from .layout import Layout, compressors
from .run import RunHandle
from .schema import FRAME_VARIABLES, WANNIER_GROUP


def _ensure_array(group: zarr.Group, name: str, dims: tuple[str, ...], tail: tuple[int, ...], dtype,
                  layout: Layout) -> zarr.Array:
    if name in group.array_keys():
        return group[name]
    return group.create_array(
        name, shape=(0, *tail), dtype=dtype, chunks=layout.chunks(dims, (0, *tail)), dimension_names=list(dims),
        attributes={"units": UNITS.get(name, "")} if name in UNITS else {}, fill_value=0,
        compressors=compressors(),
    )


def _append_block(array: zarr.Array, start: int, data: np.ndarray) -> None:
    stop = start + data.shape[0]
    array.resize((stop, *array.shape[1:]))
    array[start:stop] = data


class RunWriter:
    """Appends frames to one run. Get it from :meth:`Store.create_run` or :meth:`Store.open_run`.

    Holds the run's writer lock until :meth:`close` (or the end of a
    ``with`` block). Each :meth:`append` is atomic and durable when it
    returns; frames appended in one call appear together or not at all.
    A *staged* writer (``create_run(..., staged=True)``) builds a run that
    nobody sees until :meth:`publish`; closing it unpublished discards it.
    """

    def __init__(self, handle: RunHandle, lock, *, staged: bool = False):
        self._handle = handle
        self.run_id = handle.run_id
        self._lock = lock
        self._staged = staged
        attrs = handle.attrs()
        self.n_atoms = int(attrs["n_atoms"])
        self.timestep_ps = float(attrs["timestep_ps"])
        self.time_origin_ps = float(attrs.get("time_origin_ps", 0.0))
        self._default_cell = np.asarray(attrs["default_cell"], dtype=np.float64)
        self._layout = Layout.from_dict(attrs["layout"])
        self.last_version: str = handle.version()

    # --------------------------------------------------------------- state
    @property
    def chunk_frames(self) -> int:
        """Chunk length along time: appends of a multiple of it rewrite no chunk (fastest)."""
        return self._layout.chunk_frames

    @property
    def closed(self) -> bool:
        return not self._lock.held

    @property
    def staged(self) -> bool:
        """True while the run is being built out of sight (see :meth:`publish`)."""
        return self._staged

    @property
    def n_frames(self) -> int:
        """Frames committed so far."""
        root = self._handle.group()
        return root["positions"].shape[0] if "positions" in root else 0

    # --------------------------------------------------------------- writing
    def _checked(self, root: zarr.Group, positions, velocities, forces, cell, energies) -> dict[str, np.ndarray]:
        """Every array of an append, validated and cast to the run's dtypes; raises before any write."""
        members = set(root.array_keys())
        stored = root["positions"].dtype if "positions" in members else None
        pos = validate.frames("positions", positions, self.n_atoms, stored)
        n = pos.shape[0]
        data = {"positions": pos}
        for name, value in (("velocities", velocities), ("forces", forces)):
            if value is None:
                continue
            if stored is None:
                own = validate.frame_dtype(name, validate._numeric(name, value))
                if np.asarray(value).dtype.kind == "f" and own != pos.dtype:
                    raise StoreValidationError(
                        f"{name} is {own} but positions are {pos.dtype}: a run stores one floating dtype "
                        "(give all arrays the same dtype)"
                    )
            data[name] = validate.frames(name, value, self.n_atoms, pos.dtype)
            if data[name].shape[0] != n:
                raise StoreValidationError(f"{name} has {data[name].shape[0]} frames, positions has {n}")
        if energies is not None:
            data["energies"] = validate.energies(energies, n)
        data["cell"] = (np.broadcast_to(self._default_cell, (n, 3, 3)) if cell is None
                        else validate.cell(cell, n_frames=n))
        present = set(FRAME_VARIABLES) & members
        if stored is not None and set(data) != present:
            missing, extra = sorted(present - set(data)), sorted(set(data) - present)
            raise StoreValidationError(
                f"run {self.run_id!r} stores {sorted(present)}; this append "
                + (f"lacks {missing}" if missing else f"adds {extra}")
                + ": every append must give the same variables"
            )
        return data

    def append(self, positions, velocities=None, forces=None, cell=None, energies=None) -> str:
        """Append ``n`` frames; returns the run's new version.

        positions, velocities, forces: (n, n_atoms, 3) in Å, Å/ps, eV/Å;
        cell: (n, 3, 3) Å (default: the run's cell); energies: (n,) eV. The
        set of variables is fixed by the first append, and so is the
        floating dtype (float32 or float64; integers are stored as float64;
        every array of one append has the same dtype). Later appends are cast
        to the run's dtype, and every value must be finite *after* the cast.
        Nothing is written when a check fails.
        """
        if self.closed:
            raise WriterClosedError(f"the writer of run {self.run_id!r} is closed; reopen it with store.open_run()")
        data = self._checked(self._handle.group(), positions, velocities, forces, cell, energies)
        n = data["positions"].shape[0]
        session = self._handle.writable()
        root = zarr.open_group(session.store, mode="r+")
        start = root["positions"].shape[0] if "positions" in root.array_keys() else 0
        for name, arr in data.items():
            target = _ensure_array(root, name, FRAME_VARIABLES[name], arr.shape[1:], arr.dtype, self._layout)
            _append_block(target, start, arr)
        t = _ensure_array(root, "time", ("time",), (), np.float64, self._layout)
        _append_block(t, start, self.time_origin_ps + (start + np.arange(n)) * self.timestep_ps)
        self.last_version = self._handle.commit(session, f"append frames {start}:{start + n}")
        return self.last_version

    def set_variable_attrs(self, name: str, **attrs) -> str:
        """Record attributes on one stored variable (e.g. ``positions``: ``unwrapped=True``); returns the version."""
        if self.closed:
            raise WriterClosedError(f"the writer of run {self.run_id!r} is closed; reopen it with store.open_run()")
        if name not in FRAME_VARIABLES or name not in self._handle.group().array_keys():
            raise StoreValidationError(f"run {self.run_id!r} stores no variable {name!r}")
        attrs = validate.attrs(attrs)
        if "units" in attrs:
            raise StoreValidationError("a variable's units are the store's (see store/README.md): not settable")
        return self._handle.update_attrs(attrs, group=name)

    def publish(self) -> str:
        """Make a staged run visible under its id (one atomic step); returns its version."""
        if self._staged:
            if self.closed:
                raise WriterClosedError(f"the staged run {self.run_id!r} was closed and discarded")
            self._handle.location.publish(self._handle.name, self.run_id)
            self._handle = self._handle.moved_to(self.run_id)
            self._staged = False
        return self._handle.version()

    def close(self) -> None:
        """Release the run (idempotent). Everything appended is committed; a staged run is discarded."""
        if self._staged and self._lock.held:
            self._handle.location.discard(self._handle.name)
        self._lock.release()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("staged" if self._staged else "open")
        return f"<RunWriter {self.run_id!r} ({state})>"


def _checked_wannier(root: zarr.Group, run_id: str, frames, centres, spreads) -> tuple:
    frames = np.asarray(frames)
    if frames.ndim != 1 or frames.size == 0 or frames.dtype.kind not in "iu":
        raise StoreValidationError(f"frames must be a non-empty 1-D array of integer frame indices, got {frames!r}")
    n = frames.size
    c = validate._numeric("centres", centres)
    if c.ndim != 3 or c.shape[0] != n or c.shape[2] != 3 or c.shape[1] < 1:
        raise StoreValidationError(f"centres must have shape ({n}, n_wannier, 3), got {c.shape}")
    c = validate.cast("centres", c, np.float64)
    if spreads is not None:
        s = validate._float_array("spreads", spreads, (n, c.shape[1]))
    else:
        s = np.full((n, c.shape[1]), np.nan)
    if len(np.unique(frames)) != n:
        raise StoreValidationError("frames contains the same frame twice")
    n_traj = root["positions"].shape[0] if "positions" in root.array_keys() else 0
    bad = frames[(frames < 0) | (frames >= n_traj)]
    if bad.size:
        raise StoreValidationError(f"frames {bad[:5].tolist()} do not exist in run {run_id!r}, which has {n_traj} frames")
    if WANNIER_GROUP in root and "centres" in root[WANNIER_GROUP]:
        group = root[WANNIER_GROUP]
        dup = np.intersect1d(group["frame"][:], frames)
        if dup.size:
            raise StoreValidationError(f"run {run_id!r} already has Wannier centres for frames {dup[:5].tolist()}")
        if group["centres"].shape[1] != c.shape[1]:
            raise StoreValidationError(
                f"run {run_id!r} stores {group['centres'].shape[1]} centres per frame; this batch has {c.shape[1]}"
            )
    return frames.astype(np.int64), c, s


def append_wannier(handle: RunHandle, frames, centres, spreads=None, attrs=None) -> str:
    """Validate and append one batch of Wannier centres (caller holds the run's Wannier lock)."""
    attrs = validate.attrs(attrs)
    frames, c, s = _checked_wannier(handle.group(), handle.run_id, frames, centres, spreads)
    session = handle.writable()
    root = zarr.open_group(session.store, mode="r+")
    layout = Layout(chunk_frames=256, chunk_atoms=10**9)
    group = root.require_group(WANNIER_GROUP)
    start = group["frame"].shape[0] if "frame" in group else 0
    arrays = {
        "centres": (c, ("frame", "wannier", "xyz"), {"units": UNITS["centres"]}),
        "spread": (s, ("frame", "wannier"), {"units": UNITS["spread"]}),
        "frame": (frames, ("frame",), {"long_name": "trajectory frame index"}),
        "frame_time": (root["time"][:][frames], ("frame",), {"units": UNITS["frame_time"]}),
    }
    for name, (arr, dims, meta) in arrays.items():
        if name not in group:
            group.create_array(name, shape=(0, *arr.shape[1:]), dtype=arr.dtype,
                               chunks=layout.chunks(dims, (0, *arr.shape[1:])), dimension_names=list(dims),
                               attributes=meta, fill_value=0, compressors=compressors())
        _append_block(group[name], start, arr)
    if attrs:
        group.attrs.update(attrs)
    return handle.commit(session, f"add Wannier centres for {len(frames)} frames")
