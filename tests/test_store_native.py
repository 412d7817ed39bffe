"""A local run's chunk files, read by the atom-block reader itself (agi_data.store.native), against Icechunk's own fetch.

The reader maps chunk indices to chunk files from the snapshot's manifests
and reads them without Icechunk. These tests check that the map names, for
every chunk of every array, exactly the bytes Icechunk returns (native
files, inline chunks, chunks never written), for the version asked for and
not a later one; that blocks read both ways are equal bit for bit; that a
missing or truncated chunk file is a store error naming the chunk; and that
a manifest in a format the module does not know makes the reader fall back
to Icechunk's fetch with the same result.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from agi_data import open_store
from agi_data.store import StoreError, native, read
from agi_data.store.read import stored_source

pytestmark = pytest.mark.timeout(120)

T, N, CF, CA, BOX = 600, 44, 128, 8, 12.0  # a partial last time chunk, a partial last atom chunk
SPECIES = ["Ag", "I"] * (N // 2)


def _walk(n_time: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    v = rng.normal(scale=0.2, size=(n_time, N, 3)).astype(np.float32)
    return ((rng.uniform(0, BOX, (N, 3)) + np.cumsum(v, axis=0)) % BOX).astype(np.float32), v


@pytest.fixture()
def stored(tmp_path):
    """A run written in three commits (so its manifests were rewritten), and the version after the first two."""
    r, v = _walk(T)
    store = open_store(tmp_path / "s")
    with store.create_run("walk", SPECIES, np.eye(3) * BOX, 0.01, chunk_frames=CF, chunk_atoms=CA) as wr:
        wr.append(r[:250], velocities=v[:250])
        wr.append(r[250:400], velocities=v[250:400])
        early = store._existing("walk").version()
        wr.append(r[400:], velocities=v[400:])
    return store, tmp_path / "s" / "runs" / "walk", early, r


def _icechunk_bytes(session, key: str) -> bytes | None:
    buf = sync(session.store.get(key, default_buffer_prototype()))
    return None if buf is None else buf.to_bytes()


def _map_bytes(loc) -> bytes | None:
    if loc is None or isinstance(loc, bytes):
        return loc
    with open(loc.path, "rb") as f:
        f.seek(loc.offset)
        return f.read(loc.length)


@pytest.mark.parametrize("which", ["head", "early"])
def test_the_chunk_map_names_the_bytes_icechunk_reads_for_every_chunk(stored, which):
    store, repo_dir, early, _ = stored
    handle = store._existing("walk")
    session = handle.session(None if which == "head" else early)
    root = zarr.open_group(session.store, mode="r")
    kinds = set()
    for name in root.array_keys():
        arr = root[name]
        grid = [range(-(-s // c)) for s, c in zip(arr.shape, arr.chunks)]
        files = native.chunk_map(repo_dir, handle.repository, session.snapshot_id, arr.path, [len(g) for g in grid])
        assert files is not None, name
        for index in itertools.product(*grid):
            key = f"{arr.path}/{arr.metadata.encode_chunk_key(index)}"
            assert _map_bytes(files.get(index)) == _icechunk_bytes(session, key), key
            kinds.add(type(files.get(index)).__name__)
        assert set(files) <= set(itertools.product(*grid)), name
    assert {"ChunkFile", "bytes"} <= kinds  # native files and inline chunks were both compared


def test_an_earlier_version_maps_to_its_own_chunk_files(stored):
    """The last time chunk was rewritten by the third append: the early version still names its old file."""
    store, repo_dir, early, r = stored
    handle = store._existing("walk")
    late, old = (native.chunk_map(repo_dir, handle.repository, v, "positions", (g, 6, 1))
                 for v, g in ((handle.version(), 5), (early, 4)))
    assert old[(3, 0, 0)].path != late[(3, 0, 0)].path  # frames 384-511: 16 of them were added after `early`
    assert (4, 0, 0) in late and (4, 0, 0) not in old
    blocks = list(read.atom_blocks(handle, atoms=np.arange(N), version=early, block_atoms=CA))
    got = np.concatenate([b.data for b in blocks], axis=1)
    assert got.shape == (400, N, 3) and np.array_equal(got, r[:400])


@pytest.mark.parametrize("atoms", [None, np.array([1, 2, 3, 17, 30, 43])], ids=["all", "scattered"])
@pytest.mark.parametrize("width", [3, 8, 20])
def test_blocks_read_from_the_files_equal_blocks_fetched_by_icechunk(stored, monkeypatch, atoms, width):
    store, _, _, r = stored
    src = stored_source(store.trajectory("walk").positions)
    handle = store._existing("walk")
    session = handle.session(src.version)
    arr = zarr.open_group(session.store, mode="r")["positions"]
    assert read._ChunkReader.of(arr, "walk", lambda: read._chunk_files(handle, arr)).files  # files, not a fetch
    direct = [(b.atoms, b.data.copy()) for b in src.blocks(atoms, block_atoms=width, buffers=2)]
    monkeypatch.setattr(read, "_chunk_files", lambda *args: None)
    fetched = [(b.atoms, b.data.copy()) for b in src.blocks(atoms, block_atoms=width, buffers=2)]
    assert len(direct) == len(fetched) > 1
    for (a1, d1), (a2, d2) in zip(direct, fetched):
        assert np.array_equal(a1, a2) and d1.tobytes() == d2.tobytes()
        assert np.array_equal(d1, r[:, a1])


def _a_chunk_file(repo_dir, handle, key_index=(2, 1, 0)):
    return native.chunk_map(repo_dir, handle.repository, handle.version(), "positions", (5, 6, 1))[key_index]


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_missing_or_short_chunk_file_is_a_store_error_naming_the_chunk(stored, damage):
    store, repo_dir, _, _ = stored
    loc = _a_chunk_file(repo_dir, store._existing("walk"))
    if damage == "missing":
        (repo_dir / "chunks" / loc.path.rsplit("/", 1)[1]).unlink()
        match = r"chunk 'positions/c/2/1/0' cannot be read from .*No such file.*agi store verify"
    else:
        with open(loc.path, "r+b") as f:
            f.truncate(loc.length // 2)
        match = rf"chunk 'positions/c/2/1/0'.* holds {loc.length // 2} bytes, its manifest says {loc.length}"
    src = stored_source(store.trajectory("walk").positions)
    with pytest.raises(StoreError, match=match):
        list(src.blocks(block_atoms=CA))


def test_a_manifest_format_it_does_not_know_falls_back_to_icechunk(stored, monkeypatch):
    store, repo_dir, _, r = stored
    handle = store._existing("walk")
    manifest = json.loads(handle.repository.inspect_snapshot(handle.version()))["manifests"][0]["id"]
    data = (repo_dir / "manifests" / manifest).read_bytes()
    assert data[:len(native.MAGIC)] == native.MAGIC and data[native.HEADER_BYTES - 3] == native.SPEC_VERSION
    monkeypatch.setattr(native, "SPEC_VERSION", 2)  # as if the run had been written in a newer format
    assert native.chunk_map(repo_dir, handle.repository, handle.version(), "positions", (5, 6, 1)) is None
    src = stored_source(store.trajectory("walk").positions)
    got = np.concatenate([b.data for b in src.blocks(block_atoms=CA)], axis=1)
    assert np.array_equal(got, r)
