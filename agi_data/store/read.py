"""A run's arrays as lazy xarray Datasets (the store's read side, shared by ``Store`` and ``RunRef``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import xarray as xr
import zarr

from ..elements import symbols
from ..units import UNITS
from .errors import RunNotFoundError, StoreValidationError
from .schema import WANNIER_GROUP

if TYPE_CHECKING:
    from .run import RunHandle


def trajectory_dataset(handle: RunHandle, version: str | None = None) -> xr.Dataset:
    """The run as a lazy, Dask-backed :class:`xarray.Dataset` (see :meth:`Store.trajectory`)."""
    session = handle.session(version)
    root = zarr.open_group(session.store, mode="r")
    attrs = dict(root.attrs)
    if "positions" in root:
        ds = xr.open_zarr(session.store, consolidated=False, chunks={}, zarr_format=3, mask_and_scale=False)
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
    _mark_sources(ds, handle, session.snapshot_id)
    return ds


#: ``encoding`` key of a per-atom array read by :func:`trajectory_dataset`: where it is stored
SOURCE_KEY = "agi_store_source"


def _mark_sources(ds: xr.Dataset, handle: RunHandle, version: str) -> None:
    """Put, in each per-atom array's encoding, the :class:`StoredSource` that reads it straight from its chunks."""
    for name in ("positions", "velocities", "forces"):
        var = ds.variables.get(name)
        if var is not None and var.chunks is not None:
            var.encoding[SOURCE_KEY] = StoredSource(handle.ref(version), name, var.data.name, tuple(var.shape))


class StoredSource(NamedTuple):
    """Where an untouched stored array of a trajectory Dataset lives, and how to read it by atom blocks.

    An analysis finds it in the array's ``encoding[SOURCE_KEY]`` and, when :meth:`valid_for` the array
    it was given, reads the same values with :meth:`blocks` instead of through the Dask graph. The
    analyses use it by these two methods alone: they never import the store.
    """

    ref: object  # a picklable RunRef: store location, run id, version
    variable: str
    dask_name: str
    shape: tuple[int, ...]

    @property
    def run_id(self) -> str:
        return self.ref.run_id

    @property
    def version(self) -> str:
        return self.ref.version

    def valid_for(self, da) -> bool:
        """True when ``da`` is this array exactly as opened (not sliced, cast, rechunked or computed on)."""
        return da.chunks is not None and getattr(da.data, "name", None) == self.dask_name

    def blocks(self, atoms=None, *, max_block_bytes: int | None = None, block_atoms: int | None = None,
               dtype=None) -> Iterator[AtomBlock]:
        """:func:`atom_blocks` of this array (``dtype=None``: the stored dtype)."""
        return atom_blocks(self.ref.handle(), self.variable, atoms=atoms, version=self.version,
                           max_block_bytes=max_block_bytes or BLOCK_BYTES, block_atoms=block_atoms, dtype=dtype)


def stored_source(da: xr.DataArray) -> StoredSource | None:
    """The :class:`StoredSource` of ``da`` if it is a stored array exactly as opened, else None.

    ``None`` when ``da`` is in memory, or was changed in any way after
    :meth:`Store.trajectory` opened it (sliced, cast, rechunked, computed
    on): its Dask name then differs from the one recorded at open.
    """
    src = da.encoding.get(SOURCE_KEY)
    return src if isinstance(src, StoredSource) and src.valid_for(da) else None


def wannier_dataset(handle: RunHandle, version: str | None = None) -> xr.Dataset:
    """The run's Wannier centres (see :meth:`Store.wannier`)."""
    session = handle.session(version)
    root = zarr.open_group(session.store, mode="r")
    if WANNIER_GROUP not in root:
        raise RunNotFoundError(f"run {handle.run_id!r} has no Wannier centres (add them with add_wannier)")
    ds = xr.open_zarr(session.store, group=WANNIER_GROUP, consolidated=False, chunks={}, zarr_format=3,
                      mask_and_scale=False)
    ds = ds.set_coords(["frame", "frame_time"]).assign_coords(xyz=["x", "y", "z"])
    ds = ds.assign_coords(frame=ds["frame"].values, frame_time=("frame", ds["frame_time"].values, ds["frame_time"].attrs))
    if not np.all(np.diff(ds["frame"].values) > 0):
        ds = ds.sortby("frame")
    ds.attrs = dict(root[WANNIER_GROUP].attrs)
    ds.attrs["run_id"] = handle.run_id
    ds.attrs["store_version"] = session.snapshot_id
    return ds


#: default bound on one block of an atom-block read, bytes of the block as yielded
BLOCK_BYTES = 64 << 20


def block_width(n_time: int, per_frame_bytes: int, budget_bytes: int) -> int:
    """Atoms per block so that ``n_time`` frames of ``per_frame_bytes`` per atom fit ``budget_bytes`` (≥ 1)."""
    return max(1, int(budget_bytes) // max(1, int(n_time) * int(per_frame_bytes)))


def block_ranges(n_atoms: int, chunk_atoms: int, width: int) -> list[tuple[int, int]]:
    """The atom ranges ``[lo, hi)`` of a block plan: no block straddles a stored chunk edge it need not.

    ``width ≥ chunk_atoms``: blocks of whole chunks, ``width`` rounded down
    to a multiple of ``chunk_atoms`` (each chunk is read once). ``width <
    chunk_atoms`` (one chunk column over the whole time axis is over
    budget): each chunk column is split into ``ceil(chunk_atoms / width)``
    equal pieces of at most ``width`` atoms, and each piece is read on its
    own, so every chunk of the column is decoded once per piece: the memory
    stays within the budget, the decoding work grows by that factor.
    """
    n_atoms, chunk, width = int(n_atoms), max(1, int(chunk_atoms)), max(1, int(width))
    if width >= chunk:
        step = width // chunk * chunk
        return [(lo, min(lo + step, n_atoms)) for lo in range(0, n_atoms, step)]
    out = []
    for c0 in range(0, n_atoms, chunk):
        c1 = min(c0 + chunk, n_atoms)
        pieces = -(-(c1 - c0) // width)
        edges = [c0 + i * (c1 - c0) // pieces for i in range(pieces + 1)]  # sizes differ by at most one
        out += list(zip(edges[:-1], edges[1:]))
    return out


class AtomBlock(NamedTuple):
    """One block of an atom-block read: the atom indices and their data over the whole time range."""

    atoms: np.ndarray   # (n,) indices into the run's atom axis, increasing
    data: np.ndarray    # (T, n, ...) float64 (or the stored dtype, when asked)


def _atom_indices(n_atoms: int, atoms) -> np.ndarray:
    if atoms is None:
        return np.arange(n_atoms)
    idx = np.asarray(atoms)
    if idx.dtype == bool:
        if idx.shape != (n_atoms,):
            raise StoreValidationError(f"an atom mask needs {n_atoms} entries, got {idx.shape}")
        idx = np.flatnonzero(idx)
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise StoreValidationError("atoms must be None, a boolean mask or a 1-D array of atom indices")
    idx = np.unique(idx)
    if idx.size and (idx[0] < 0 or idx[-1] >= n_atoms):
        raise StoreValidationError(f"atom indices must lie in 0..{n_atoms - 1}")
    return idx


def atom_blocks(handle: RunHandle, variable: str = "positions", *, atoms=None, version: str | None = None,
                time: slice | None = None, block_atoms: int | None = None,
                max_block_bytes: int = BLOCK_BYTES, dtype=np.float64) -> Iterator[AtomBlock]:
    """Blocks of atoms over the whole time range, read straight from the chunks.

    The plan (:func:`block_ranges`): atoms are taken in blocks of
    ``block_atoms``, or as many as ``max_block_bytes`` allows for one
    block as yielded (``T × n × k`` values of ``dtype``, or of the stored
    dtype when ``dtype=None``). A block of at least one stored chunk is
    a whole number of chunks wide; when a single chunk column over the
    whole time axis is over budget (a long run), the block is a piece of
    one chunk column, and each chunk is decoded once per piece. Each block
    is one Zarr read of its slab (its chunks fetched and decoded
    concurrently, no Dask graph, no per-chunk task), cast once to
    ``dtype``. Atoms of a selection that fall in one block are read
    together; chunks holding no selected atom are never read.

    Memory: one block as yielded (≤ ``max_block_bytes``, whatever the
    length of the run, down to one atom per block) plus, with a cast, its
    stored-dtype slab, plus the chunks Zarr decodes concurrently
    (``async.concurrency`` chunks). ``dtype=None`` yields the stored dtype
    (no cast, no second copy: for a consumer that casts as it copies
    anyway, such as the FFT kernels).
    """
    root = handle.group(version)
    if variable not in root.array_keys():
        raise StoreValidationError(f"run {handle.run_id!r} stores no {variable!r}")
    arr = root[variable]
    if arr.ndim < 2 or "atom" not in (arr.metadata.dimension_names or ())[1:2]:
        raise StoreValidationError(f"{variable!r} has no atom axis after time")
    t = slice(None) if time is None else time
    n_time = len(range(*t.indices(arr.shape[0])))
    idx = _atom_indices(arr.shape[1], atoms)
    itemsize = np.dtype(arr.dtype if dtype is None else dtype).itemsize
    per_frame = int(np.prod(arr.shape[2:], dtype=np.int64)) * itemsize
    width = block_atoms or block_width(n_time, per_frame, max_block_bytes)
    for lo, hi in block_ranges(arr.shape[1], arr.chunks[1], width):
        sel = idx[(idx >= lo) & (idx < hi)]
        if sel.size == 0:
            continue
        a, b = int(sel[0]), int(sel[-1]) + 1
        slab = arr[t, a:b]
        data = slab if sel.size == b - a else slab[:, sel - a]
        yield AtomBlock(sel, data if dtype is None else np.asarray(data, dtype=dtype))
