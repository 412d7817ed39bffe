"""The stored MSD/VACF read atom block k+1 while block k is correlated: same numbers, bounded memory, clear errors.

The read decodes each chunk straight into one of two recycled block arrays
(no Zarr pipeline). These tests check that what the kernels see is the
stored data bit for bit whatever the block plan (whole chunk columns,
pieces of one, scattered selections, a partial last time chunk), that the
reader's memory is two blocks plus one fetch batch whatever the length of
the run, and that a damaged chunk read in the prefetch thread fails the
analysis with the store's error instead of a hang or a wrong number.
"""

from __future__ import annotations

import sys
import tracemalloc

import dask
import numpy as np
import pytest
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from agi_data import open_store
from agi_data.analysis import msd, vacf
from agi_data.analysis.correlate import stored_block_atoms, stored_blocked
from agi_data.store import StoreError
from agi_data.store.read import stored_source

pytestmark = pytest.mark.timeout(120)

T, N, CF, CA, BOX = 600, 44, 128, 8, 12.0  # 600 = 4 × 128 + 88: a partial last time chunk; 44 = 5 × 8 + 4
SPECIES = ["Ag", "I"] * (N // 2)


def _write(path, n_time: int, dtype, seed: int = 3):
    """A random walk wrapped into a cubic box, with velocities, in chunks of CF frames × CA atoms."""
    rng = np.random.default_rng(seed)
    v = rng.normal(scale=0.2, size=(n_time, N, 3))
    w = (rng.uniform(0, BOX, (N, 3)) + np.cumsum(v, axis=0)) % BOX
    store = open_store(path)
    with store.create_run("walk", SPECIES, np.eye(3) * BOX, 0.01, chunk_frames=CF, chunk_atoms=CA) as wr:
        for start in range(0, n_time, 250):
            wr.append(w[start:start + 250].astype(dtype), velocities=v[start:start + 250].astype(dtype))
    return store


@pytest.fixture(scope="module", params=[np.float32, np.float64], ids=["float32", "float64"])
def stored(request, tmp_path_factory):
    return _write(tmp_path_factory.mktemp("overlap") / "s", T, request.param)


def _series(series: np.ndarray, n: int) -> np.ndarray:
    """A kernel that returns what it was given: (b, T, 3) → (b, 3T) float64."""
    return np.asarray(series, dtype=np.float64).reshape(series.shape[0], -1)[:, :n]


@pytest.mark.parametrize("width", [1, 3, 8, 20, N], ids=lambda w: f"{w}-atom-blocks")
@pytest.mark.parametrize("species", [None, "I"])
def test_prefetched_blocks_are_the_stored_values_bit_for_bit(stored, width, species):
    """Through the prefetch thread and the recycled arrays, every atom's series reaches the kernel unchanged."""
    ds = stored.trajectory("walk")
    atoms = np.arange(N) if species is None else np.flatnonzero(ds.symbol.values == species)
    itemsize = ds.positions.dtype.itemsize
    budget = 2 * width * T * 3 * itemsize
    assert stored_block_atoms(ds.positions.shape, itemsize, budget) == width
    expected = np.swapaxes(ds.positions.values[:, atoms].astype(np.float64), 0, 1).reshape(len(atoms), -1)
    with dask.config.set({"agi.block_bytes": budget}):
        for name in ("positions", "velocities"):
            got = stored_blocked(ds[name], atoms, _series, (3 * T,), n_out=3 * T).compute()
            ref = expected if name == "positions" else np.swapaxes(
                ds.velocities.values[:, atoms].astype(np.float64), 0, 1).reshape(len(atoms), -1)
            np.testing.assert_array_equal(got.values, ref)
            np.testing.assert_array_equal(got["atom"].values if "atom" in got.coords else atoms, atoms)


@pytest.mark.parametrize("time", [None, slice(0, T)], ids=["whole-axis", "zarr-path"])
def test_direct_decode_equals_zarr_bit_for_bit(stored, time):
    """The reader's own decode and Zarr's (which a time slice takes) give the same arrays."""
    ds = stored.trajectory("walk")
    sel = np.flatnonzero(ds.symbol.values == "Ag")[1::3]
    for buffers in (0, 2):
        blocks = [b.data.copy() for b in stored.atom_blocks("walk", atoms=sel, time=time, block_atoms=8)]
        got = np.concatenate(blocks, axis=1)
        np.testing.assert_array_equal(got, ds.positions.values[:, sel].astype(np.float64))
        src = stored_source(ds.positions)
        raw = np.concatenate([b.data.copy() for b in src.blocks(sel, block_atoms=8, buffers=buffers)], axis=1)
        assert raw.dtype == ds.positions.dtype
        np.testing.assert_array_equal(raw, ds.positions.values[:, sel])


def test_two_recycled_arrays_hold_every_block_and_fit_the_budget(stored):
    """buffers=2: blocks k and k+2 share one array, so the reader allocates two blocks in all, within the budget."""
    ds = stored.trajectory("walk")
    itemsize = ds.positions.dtype.itemsize
    budget = 2 * 8 * T * 3 * itemsize
    width = stored_block_atoms(ds.positions.shape, itemsize, budget)
    blocks = list(stored_source(ds.positions).blocks(block_atoms=width, buffers=2))
    assert len(blocks) == -(-N // width) >= 4
    bases = {id(b.data.base) for b in blocks}
    assert len(bases) == 2
    for k in range(len(blocks) - 2):
        assert np.shares_memory(blocks[k].data, blocks[k + 2].data)
        assert not np.shares_memory(blocks[k].data, blocks[k + 1].data)
    assert sum({id(b.data.base): b.data.base.nbytes for b in blocks}.values()) <= budget


def _peak_bytes(blocks) -> int:
    """Peak traced memory while consuming ``blocks()`` one ahead, as the correlation does (block k held while k+1 is read)."""
    for _ in blocks():  # first use: imports, caches and the event loop's own allocations are not the reader's
        pass
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        held = None
        for blk in blocks():
            held = blk  # noqa: F841 - the previous block is released only now
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("via", ["files", "icechunk"])
@pytest.mark.parametrize("n_time", [T, 8 * T])
def test_reader_memory_is_two_blocks_and_one_fetch_batch_whatever_the_run_length(tmp_path, monkeypatch, n_time, via):
    """Bytes the reader allocates: the two recycled blocks, one batch of fetched chunks (or one staged chunk file) and one scratch chunk."""
    read = sys.modules["agi_data.store.read"]
    chunk_bytes = CF * CA * 3 * 4
    monkeypatch.setattr(read, "FETCH_BYTES", 4 * chunk_bytes)  # batches of 4 chunks
    if via == "icechunk":
        monkeypatch.setattr(read, "_chunk_files", lambda *args: None)  # as for a store on object storage
    store = _write(tmp_path / "s", n_time, np.float32)
    ds = store.trajectory("walk")
    budget = 2 * CA * T * 3 * 4  # two 8-atom blocks at T frames; at 8·T frames the block is one atom
    width = stored_block_atoms(ds.positions.shape, 4, budget)
    assert width == max(1, CA * T // n_time)
    block = width * n_time * 3 * 4
    fetched = 4 * (chunk_bytes + 64)  # stored chunk: Blosc header and an incompressible payload, and the CRC
    peak = _peak_bytes(lambda: stored_source(ds.positions).blocks(block_atoms=width, buffers=2))
    assert block == budget // 2  # the same two blocks at T and 8·T frames: the bound does not grow with the run
    assert peak <= 2 * block + fetched + chunk_bytes + (128 << 10), (peak, block)  # + fixed: requests, views
    assert peak < ds.positions.nbytes * (0.7 if n_time == T else 0.1)  # the run: 5.5 or 44 blocks
    kept = _peak_bytes(lambda: iter(list(stored_source(ds.positions).blocks(block_atoms=width))))
    assert kept >= ds.positions.nbytes  # the measure sees memory: every block kept is the whole run


def _chunk_file(store_path, store, key: str):
    """The file holding the stored bytes of one chunk (Icechunk names chunk files by content-free ids)."""
    handle = store._existing("walk")
    data = sync(handle.session(None).store.get(key, default_buffer_prototype())).to_bytes()
    hits = [p for p in (store_path / "runs" / "walk" / "chunks").iterdir() if p.read_bytes() == data]
    assert len(hits) == 1, key
    return hits[0]


@pytest.mark.parametrize("per_atom", [True, False])
def test_a_damaged_chunk_read_ahead_fails_the_analysis_with_the_stores_error(tmp_path, per_atom):
    """A chunk of the last block fails its CRC-32C in the prefetch thread: the call raises, names it, does not hang."""
    store = _write(tmp_path / "s", T, np.float32)
    key = f"positions/c/{T // CF}/{N // CA}/0"  # the last chunk of the last block
    target = _chunk_file(tmp_path / "s", store, key)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x10
    target.write_bytes(bytes(data))
    ds = store.trajectory("walk")
    budget = 2 * CA * T * 3 * 4  # one chunk column per block: the damaged chunk is read while block 4 is correlated
    with dask.config.set({"agi.block_bytes": budget}):
        with pytest.raises(StoreError, match=rf"chunk '{key}' does not match its CRC-32C checksum.*agi store verify"):
            msd(ds, per_atom=per_atom).compute()
        ok = vacf(ds, per_atom=per_atom).compute()  # the velocities are intact: the same process reads them
    assert np.isfinite(ok.values).all()


@pytest.mark.parametrize("analysis", [msd, vacf])
def test_a_per_atom_result_is_a_new_array_on_every_compute(stored, analysis):
    """Computed without Dask's defensive copy, so each compute must build its own array (and persist keeps the copy)."""
    ds = stored.trajectory("walk")
    lazy = analysis(ds, per_atom=True)
    first, second = lazy.compute(), lazy.compute()
    assert not np.shares_memory(first.values, second.values)
    np.testing.assert_array_equal(first.values, second.values)
    first.values[:] = 0  # a caller writing into one result changes no other
    assert np.array_equal(lazy.compute().values, second.values) and second.values[:, 1:].any()
    kept = lazy.persist()
    assert not np.shares_memory(kept.compute().values, kept.compute().values)

