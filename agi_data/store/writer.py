"""Appending frames and Wannier centres: one Icechunk transaction per call."""

from __future__ import annotations

import numpy as np
import zarr

from ..units import UNITS
from . import validate
from .errors import StoreValidationError, WriterClosedError
from .layout import Layout
from .store import BRANCH, FRAME_VARIABLES, WANNIER_GROUP, Store, commit


def _ensure_array(group: zarr.Group, members: set[str], name: str, dims: tuple[str, ...],
                  tail: tuple[int, ...], dtype, layout: Layout) -> zarr.Array:
    if name in members:
        return group[name]
    shape = (0, *tail)
    return group.create_array(
        name, shape=shape, dtype=dtype, chunks=layout.chunks(dims, (0, *tail)), dimension_names=list(dims),
        attributes={"units": UNITS.get(name, "")} if name in UNITS else {}, fill_value=0,
    )


def _append_block(array: zarr.Array, start: int, data: np.ndarray) -> None:
    stop = start + data.shape[0]
    array.resize((stop, *array.shape[1:]))
    array[start:stop] = data.astype(array.dtype, copy=False)


class RunWriter:
    """Appends frames to one run. Get it from :meth:`Store.create_run` or :meth:`Store.open_run`.

    Holds the run's writer lock until :meth:`close` (or the end of a
    ``with`` block). Each :meth:`append` is atomic and durable when it
    returns; frames appended in one call appear together or not at all.
    """

    def __init__(self, store: Store, run_id: str, lock):
        self.store = store
        self.run_id = run_id
        self._lock = lock
        attrs = store.attrs(run_id)
        self.n_atoms = int(attrs["n_atoms"])
        self.timestep_ps = float(attrs["timestep_ps"])
        self.time_origin_ps = float(attrs.get("time_origin_ps", 0.0))
        self._default_cell = np.asarray(attrs["default_cell"], dtype=np.float64)
        self._layout = Layout.from_dict(attrs["layout"])
        self.last_version: str = store.version(run_id)

    # --------------------------------------------------------------- state
    @property
    def chunk_frames(self) -> int:
        """Chunk length along time: appends of a multiple of it rewrite no chunk (fastest)."""
        return self._layout.chunk_frames

    @property
    def closed(self) -> bool:
        return not self._lock.held

    @property
    def n_frames(self) -> int:
        """Frames committed so far."""
        root = zarr.open_group(self.store._session(self.run_id, None).store, mode="r")
        return root["positions"].shape[0] if "positions" in root else 0

    # --------------------------------------------------------------- writing
    def append(self, positions, velocities=None, forces=None, cell=None, energies=None) -> str:
        """Append ``n`` frames; returns the run's new version.

        positions, velocities, forces: (n, n_atoms, 3) in Å, Å/ps, eV/Å;
        cell: (n, 3, 3) Å (default: the run's cell); energies: (n,) eV. The
        set of variables is fixed by the first append. Floating dtypes are
        kept (float32 or float64, fixed by the first append); every value
        must be finite. Nothing is written when a check fails.
        """
        if self.closed:
            raise WriterClosedError(f"the writer of run {self.run_id!r} is closed; reopen it with store.open_run()")
        pos = validate.frames("positions", positions, self.n_atoms)
        n = pos.shape[0]
        data = {"positions": pos}
        if velocities is not None:
            data["velocities"] = validate.frames("velocities", velocities, self.n_atoms)
        if forces is not None:
            data["forces"] = validate.frames("forces", forces, self.n_atoms)
        if energies is not None:
            data["energies"] = validate.energies(energies, n)
        for name in ("velocities", "forces"):
            if name in data and data[name].shape[0] != n:
                raise StoreValidationError(f"{name} has {data[name].shape[0]} frames, positions has {n}")
        data["cell"] = (np.broadcast_to(self._default_cell, (n, 3, 3)) if cell is None
                        else validate.cell(cell, n_frames=n))

        session = self.store.repository(self.run_id).writable_session(BRANCH)
        root = zarr.open_group(session.store, mode="r+")
        members = set(root.array_keys())
        positions_array = root["positions"] if "positions" in members else None
        start = positions_array.shape[0] if positions_array is not None else 0
        present = set(FRAME_VARIABLES) & members
        if start > 0 and set(data) != present:
            missing, extra = sorted(present - set(data)), sorted(set(data) - present)
            raise StoreValidationError(
                f"run {self.run_id!r} stores {sorted(present)}; this append "
                + (f"lacks {missing}" if missing else f"adds {extra}")
                + ": every append must give the same variables"
            )
        for name, arr in data.items():
            dims = FRAME_VARIABLES[name]
            dtype = arr.dtype if name in ("positions", "velocities", "forces") else np.float64
            if name in ("velocities", "forces") and positions_array is not None:
                dtype = positions_array.dtype
            target = _ensure_array(root, members, name, dims, arr.shape[1:], dtype, self._layout)
            _append_block(target, start, arr)
        t = _ensure_array(root, members, "time", ("time",), (), np.float64, self._layout)
        _append_block(t, start, self.time_origin_ps + (start + np.arange(n)) * self.timestep_ps)
        self.last_version = commit(session, f"append frames {start}:{start + n}", self.store._commit_lock(self.run_id))
        return self.last_version

    def close(self) -> None:
        """Release the run (idempotent). Everything appended is already committed."""
        self._lock.release()

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<RunWriter {self.run_id!r} ({state})>"


def append_wannier(store: Store, run_id: str, frames, centres, spreads, attrs) -> str:
    """Validate and append one batch of Wannier centres (caller holds the Wannier lock)."""
    frames = np.asarray(frames)
    if frames.ndim != 1 or frames.size == 0 or frames.dtype.kind not in "iu":
        raise StoreValidationError(f"frames must be a non-empty 1-D array of integer frame indices, got {frames!r}")
    n = frames.size
    c = np.asarray(centres)
    if c.ndim != 3 or c.shape[0] != n or c.shape[2] != 3 or c.shape[1] < 1:
        raise StoreValidationError(f"centres must have shape ({n}, n_wannier, 3), got {c.shape}")
    c = validate._float_array("centres", c, c.shape).astype(np.float64)
    if spreads is not None:
        s = validate._float_array("spreads", np.asarray(spreads), (n, c.shape[1])).astype(np.float64)
    else:
        s = np.full((n, c.shape[1]), np.nan)
    if len(np.unique(frames)) != n:
        raise StoreValidationError("frames contains the same frame twice")

    session = store.repository(run_id).writable_session(BRANCH)
    root = zarr.open_group(session.store, mode="r+")
    n_traj = root["positions"].shape[0] if "positions" in root else 0
    bad = frames[(frames < 0) | (frames >= n_traj)]
    if bad.size:
        raise StoreValidationError(
            f"frames {bad[:5].tolist()} do not exist in run {run_id!r}, which has {n_traj} frames"
        )
    layout = Layout(chunk_frames=256, chunk_atoms=10**9)
    group = root.require_group(WANNIER_GROUP)
    if "centres" in group:
        have = group["frame"][:]
        dup = np.intersect1d(have, frames)
        if dup.size:
            raise StoreValidationError(f"run {run_id!r} already has Wannier centres for frames {dup[:5].tolist()}")
        if group["centres"].shape[1] != c.shape[1]:
            raise StoreValidationError(
                f"run {run_id!r} stores {group['centres'].shape[1]} centres per frame; this batch has {c.shape[1]}"
            )
    start = group["frame"].shape[0] if "frame" in group else 0
    arrays = {
        "centres": (c, ("frame", "wannier", "xyz"), {"units": UNITS["centres"]}),
        "spread": (s, ("frame", "wannier"), {"units": UNITS["spread"]}),
        "frame": (frames.astype(np.int64), ("frame",), {"long_name": "trajectory frame index"}),
        "frame_time": (root["time"][:][frames], ("frame",), {"units": UNITS["frame_time"]}),
    }
    for name, (arr, dims, meta) in arrays.items():
        if name not in group:
            group.create_array(name, shape=(0, *arr.shape[1:]), dtype=arr.dtype,
                               chunks=layout.chunks(dims, (0, *arr.shape[1:])), dimension_names=list(dims),
                               attributes=meta, fill_value=0)
        _append_block(group[name], start, arr)
    if attrs:
        group.attrs.update(attrs)
    return commit(session, f"add Wannier centres for {n} frames", store._commit_lock(run_id))
