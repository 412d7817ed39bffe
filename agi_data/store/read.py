"""A run's arrays as lazy xarray Datasets (the store's read side, shared by ``Store`` and ``RunRef``)."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

import google_crc32c
import numcodecs.blosc
import numpy as np
import xarray as xr
import zarr
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from ..elements import symbols
from ..units import UNITS
from . import native
from .errors import RunNotFoundError, StoreError, StoreValidationError
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
               dtype=None, buffers: int = 0) -> Iterator[AtomBlock]:
        """:func:`atom_blocks` of this array (``dtype=None``: the stored dtype; ``buffers``: recycled blocks)."""
        return atom_blocks(self.ref.handle(), self.variable, atoms=atoms, version=self.version,
                           max_block_bytes=max_block_bytes or BLOCK_BYTES, block_atoms=block_atoms, dtype=dtype,
                           buffers=buffers)


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
                max_block_bytes: int = BLOCK_BYTES, dtype=np.float64, buffers: int = 0) -> Iterator[AtomBlock]:
    """Blocks of atoms over the whole time range, read straight from the chunks.

    The plan (:func:`block_ranges`): atoms are taken in blocks of
    ``block_atoms``, or as many as ``max_block_bytes`` allows for one
    block as yielded (``T × n × k`` values of ``dtype``, or of the stored
    dtype when ``dtype=None``). A block of at least one stored chunk is
    a whole number of chunks wide; when a single chunk column over the
    whole time axis is over budget (a long run), the block is a piece of
    one chunk column, and each chunk is decoded once per piece. Atoms of a
    selection that fall in one block are read together; chunks holding no
    selected atom are never read.

    Each block's chunks are read from their files when the run lies in a
    local directory (:mod:`agi_data.store.native`: a tenth of the CPU of
    Icechunk's fetch), else fetched from the repository in batches (one
    Icechunk request per batch); no Dask graph, no Zarr task per chunk.
    Each is checked against its CRC-32C and decompressed straight into the
    block's array (:class:`_ChunkReader`); arrays with codecs other than
    the store's (Blosc and CRC-32C), and time slices other than the whole
    axis, are read by Zarr instead. ``dtype`` other than the stored one
    casts the block once.

    ``buffers``: 0 (default) yields a new array for every block, which the
    caller may keep. ``n ≥ 1`` recycles ``n`` arrays in turn: a block's
    data is overwritten when the ``n``-th block after it is read (a caller
    correlating block k while block k+1 is read passes 2), so no block
    pays for the page faults of fresh memory.

    Memory: the ``n`` recycled blocks as yielded (or one new block per
    step), each ≤ ``max_block_bytes`` whatever the length of the run, down
    to one atom per block; with a cast, one stored-dtype block more; the
    chunks of one fetch batch as stored (≤ 4 MiB decoded, :data:`FETCH_BYTES`;
    one stored chunk when the files are read directly, plus the map of the
    array's chunk files, 36 B per chunk) and one chunk of scratch for
    chunks that do not land whole in the block (the last time chunk, chunk
    columns cut by the selection).
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
    cast = dtype is not None and np.dtype(dtype) != arr.dtype
    itemsize = np.dtype(arr.dtype if dtype is None else dtype).itemsize
    per_frame = int(np.prod(arr.shape[2:], dtype=np.int64)) * itemsize
    width = block_atoms or block_width(n_time, per_frame, max_block_bytes)
    whole_axis = n_time == arr.shape[0] and t.indices(n_time)[2] == 1
    reader = _ChunkReader.of(arr, handle.run_id, lambda: _chunk_files(handle, arr)) if whole_axis else None
    ring = _Buffers(arr.dtype, 1 if cast else int(buffers))
    for lo, hi in block_ranges(arr.shape[1], arr.chunks[1], width):
        sel = idx[(idx >= lo) & (idx < hi)]
        if sel.size == 0:
            continue
        if reader is not None:
            data = reader.read(ring.take((n_time, sel.size) + arr.shape[2:]), sel)
        else:
            a, b = int(sel[0]), int(sel[-1]) + 1
            slab = arr[t, a:b]
            data = slab if sel.size == b - a else slab[:, sel - a]
        yield AtomBlock(sel, np.asarray(data, dtype=dtype) if cast else data)


def _chunk_files(handle: RunHandle, arr: zarr.Array) -> native.ChunkFiles | None:
    """Where the chunks of ``arr`` lie, when its run is in a local directory (None: fetch through Icechunk)."""
    where = handle.location.repository_dir(handle.name)
    if where is None:
        return None
    grid = tuple(-(-s // c) for s, c in zip(arr.shape, arr.chunks))
    snapshot = arr.store_path.store.session.snapshot_id  # the version ``arr`` was opened at
    return native.chunk_map(where, handle.repository, snapshot, arr.path, grid)


class _Buffers:
    """``n`` flat arrays handed out in turn, each reshaped to the block asked for (n = 0: a new array each time)."""

    def __init__(self, dtype, n: int):
        self.dtype, self.flat, self.turn = np.dtype(dtype), [None] * max(0, n), 0

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        size = int(np.prod(shape, dtype=np.int64))
        if not self.flat:
            return np.empty(shape, self.dtype)
        i, self.turn = self.turn, (self.turn + 1) % len(self.flat)
        if self.flat[i] is None or self.flat[i].size < size:
            self.flat[i] = None  # the old array is freed before the new one is taken
            self.flat[i] = np.empty(size, self.dtype)
        return self.flat[i][:size].reshape(shape)  # C-contiguous: the first ``size`` items


#: decoded bytes of the chunks fetched in one request of an atom-block read (measured on 1000 atoms × 20 000
#: frames: the same read CPU from 1 to 16 MiB, peak RSS 495 MiB at 4 MiB, 638 MiB at 16)
FETCH_BYTES = 4 << 20


class _ChunkReader:
    """Decodes an array's chunks straight into a block: their files or one batched fetch, CRC-32C, Blosc, no Zarr pipeline.

    Only for the codecs the store writes (``bytes`` in native order, then
    optionally Blosc, then optionally CRC-32C; no filters, no shards):
    :meth:`of` returns ``None`` for anything else and the caller reads
    through Zarr. The chunks' bytes come from their files when ``files``
    (:func:`agi_data.store.native.chunk_map`) says where they lie, else
    from Icechunk in batches of :data:`FETCH_BYTES`. The checks are Zarr's
    own: a chunk whose CRC-32C does not match its bytes, or whose size is
    not the chunk's, raises :class:`StoreError` naming the run, the array
    and the chunk, as does a chunk file that is missing or shorter than its
    manifest says; a chunk never written reads as the fill value.
    """

    def __init__(self, arr: zarr.Array, run_id: str, blosc: bool, crc: bool, files: native.ChunkFiles | None = None):
        self.arr, self.run_id, self.blosc, self.crc, self.files = arr, run_id, blosc, crc, files
        self.store = arr.store_path.store
        self.chunk = tuple(arr.chunks)
        self.scratch = np.empty(self.chunk, arr.dtype)
        self.staging = np.empty(0, np.uint8)  # one stored chunk, read from its file
        self.batch = max(1, FETCH_BYTES // self.scratch.nbytes)

    @classmethod
    def of(cls, arr: zarr.Array, run_id: str, files=None) -> _ChunkReader | None:
        """The reader of ``arr``, or None; ``files``: called for the chunk map once the codecs qualify."""
        if arr.metadata.zarr_format != 3 or arr.filters or arr.shards is not None:
            return None
        ser = arr.serializer
        if not isinstance(ser, BytesCodec) or (arr.dtype.itemsize > 1 and (ser.endian is None or ser.endian.value != sys.byteorder)):
            return None
        kinds = [type(c) for c in arr.compressors]
        if kinds not in ([BloscCodec, Crc32cCodec], [BloscCodec], [Crc32cCodec], []):
            return None
        return cls(arr, run_id, BloscCodec in kinds, Crc32cCodec in kinds, files() if files else None)

    def read(self, out: np.ndarray, atoms: np.ndarray) -> np.ndarray:
        """Fill ``out`` (T, len(atoms), …) with the whole time axis of the sorted ``atoms``; return it."""
        jobs = self._jobs(out.shape[0], atoms)
        if self.files is not None:
            for job in jobs:
                self._place(job, self._from_file(*job[:2]), out)
            return out
        while part := list(itertools.islice(jobs, self.batch)):  # one request per batch, fetched then decoded
            raw = sync(self.store.get_partial_values(default_buffer_prototype(), [(j[1], None) for j in part]))
            for job, buf in zip(part, raw):
                self._place(job, None if buf is None else buf.as_numpy_array(), out)
        return out

    def _place(self, job, stored: np.ndarray | None, out: np.ndarray) -> None:
        """Decode one chunk's stored bytes into its place in the block (through the scratch chunk if not whole)."""
        _, key, rows, cols, src = job
        whole = rows.stop - rows.start == self.chunk[0] and out.shape[1] == self.chunk[1] \
            and isinstance(src, slice) and src == slice(0, self.chunk[1])
        dest = out[rows] if whole else self.scratch  # a whole chunk lands contiguous in the block
        self._decode(key, stored, dest)
        if not whole:
            out[rows, cols] = self.scratch[: rows.stop - rows.start, src]

    def _jobs(self, n_time: int, atoms: np.ndarray):
        """(chunk index, chunk key, block rows, block columns, chunk columns) of every chunk the block needs, once each."""
        cf, ca = self.chunk[0], self.chunk[1]
        for c in range(int(atoms[0]) // ca, int(atoms[-1]) // ca + 1):
            pick = np.flatnonzero((atoms >= c * ca) & (atoms < (c + 1) * ca))
            if pick.size == 0:
                continue
            inner = atoms[pick] - c * ca
            cols = slice(int(pick[0]), int(pick[-1]) + 1)
            # a run of neighbouring atoms is a slice (a copy by strides), a scattered selection an index array
            src = slice(int(inner[0]), int(inner[-1]) + 1) if inner[-1] - inner[0] + 1 == inner.size else inner
            for i in range(-(-n_time // cf)):
                index = (i, c) + (0,) * (len(self.chunk) - 2)
                key = f"{self.arr.path}/{self.arr.metadata.encode_chunk_key(index)}"
                yield index, key, slice(i * cf, min((i + 1) * cf, n_time)), cols, src

    def _from_file(self, index: tuple[int, ...], key: str) -> np.ndarray | None:
        """The stored bytes of chunk ``index``, read from its file into the staging buffer (None: never written)."""
        loc = self.files.get(index)
        if loc is None or isinstance(loc, bytes):  # never written, or inline in the manifest
            return None if loc is None else np.frombuffer(loc, np.uint8)
        if self.staging.size < loc.length:
            self.staging = np.empty(loc.length, np.uint8)
        b, got = self.staging[:loc.length], 0
        try:
            fd = os.open(loc.path, os.O_RDONLY)
            try:
                while got < loc.length and (n := os.preadv(fd, [b[got:]], loc.offset + got)):
                    got += n
            finally:
                os.close(fd)
        except OSError as err:
            raise StoreError(f"{self._where(key)} cannot be read from {loc.path} ({err.strerror}); "
                             f"check the store with `agi store verify`") from None
        if got != loc.length:
            raise StoreError(f"{self._where(key)}: its file {loc.path} holds {loc.offset + got} bytes, its manifest says "
                             f"{loc.offset + loc.length}; check the store with `agi store verify`")
        return b

    def _where(self, key: str) -> str:
        return f"run {self.run_id!r}: chunk {key!r}"

    def _decode(self, key: str, b: np.ndarray | None, dest: np.ndarray) -> None:
        if b is None:  # never written
            dest[...] = self.arr.fill_value
            return
        if self.crc:
            if b.size < 4 or np.uint32(google_crc32c.value(b[:-4])).tobytes() != bytes(b[-4:]):
                raise StoreError(f"{self._where(key)} does not match its CRC-32C checksum: its stored bytes changed after they "
                                 f"were written (check the store with `agi store verify`)")
            b = b[:-4]
        if self.blosc:
            try:
                size = numcodecs.blosc._cbuffer_sizes(b)[0]
            except Exception as err:  # noqa: BLE001 - any failure to parse the header is damage
                raise StoreError(f"{self._where(key)} is not a Blosc buffer ({err}); check the store with `agi store verify`") from None
            if size != dest.nbytes:
                raise StoreError(f"{self._where(key)} decodes to {size} bytes, not the chunk's {dest.nbytes}")
            numcodecs.blosc.decompress(b, dest)
        elif b.size != dest.nbytes:
            raise StoreError(f"{self._where(key)} holds {b.size} bytes, not the chunk's {dest.nbytes}")
        else:
            dest.reshape(-1).view(np.uint8)[:] = b
