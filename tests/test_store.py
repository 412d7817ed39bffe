"""The store: round trips, laziness, versions, Wannier sets, concurrency rules, bad input."""

from __future__ import annotations

import os
import threading

import dask.array as da
import numpy as np
import pytest

from agi_data import open_store
from agi_data.store import (
    NotAStoreError,
    RunExistsError,
    RunLockedError,
    RunNotFoundError,
    StoreValidationError,
    WriterClosedError,
)

CELL = np.diag([10.0, 11.0, 12.0])
SPECIES = ["Ag", "Ag", "I", "I", "I"]


def frames(rng, n, n_atoms=5, dtype=np.float64):
    return rng.normal(scale=3.0, size=(n, n_atoms, 3)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_is_exact(store_dir, rng, dtype):
    store = open_store(store_dir)
    pos, vel, frc = frames(rng, 7, dtype=dtype), frames(rng, 7, dtype=dtype), frames(rng, 7, dtype=dtype)
    cells = CELL + rng.normal(scale=0.01, size=(7, 3, 3))
    energies = rng.normal(size=7)
    with store.create_run("rt", SPECIES, CELL, 0.002, attrs={"temperature_K": 750.0, "engine": "test"}) as w:
        w.append(pos[:3], velocities=vel[:3], forces=frc[:3], cell=cells[:3], energies=energies[:3])
        w.append(pos[3:], velocities=vel[3:], forces=frc[3:], cell=cells[3:], energies=energies[3:])
    ds = store.trajectory("rt")
    assert ds.positions.dtype == dtype
    np.testing.assert_array_equal(ds.positions.values, pos)
    np.testing.assert_array_equal(ds.velocities.values, vel)
    np.testing.assert_array_equal(ds.forces.values, frc)
    np.testing.assert_array_equal(ds.cell.values, cells)
    np.testing.assert_array_equal(ds.energies.values, energies)
    np.testing.assert_allclose(ds.time.values, np.arange(7) * 0.002, rtol=0, atol=1e-15)
    assert ds.species.values.tolist() == [47, 47, 53, 53, 53]
    assert ds.symbol.values.tolist() == SPECIES
    assert ds.positions.dims == ("time", "atom", "xyz")
    assert ds.positions.attrs["units"] == "Å"
    assert ds.velocities.attrs["units"] == "Å/ps"
    assert ds.forces.attrs["units"] == "eV/Å"
    assert ds.energies.attrs["units"] == "eV"
    assert ds.time.attrs["units"] == "ps"
    assert ds.attrs["temperature_K"] == 750.0 and ds.attrs["timestep_ps"] == 0.002
    table = store.runs()
    row = table.set_index("run_id").loc["rt"]
    assert (row.frames, row.atoms, row.species, row.temperature_K) == (7, 5, "Ag2 I3", 750.0)


def test_constant_cell_is_repeated_and_species_as_numbers(store_dir, rng):
    store = open_store(store_dir)
    with store.create_run("c", [47, 53], CELL, 0.01) as w:
        w.append(frames(rng, 4, 2))
    ds = store.trajectory("c")
    np.testing.assert_array_equal(ds.cell.values, np.broadcast_to(CELL, (4, 3, 3)))
    assert ds.symbol.values.tolist() == ["Ag", "I"]
    assert "velocities" not in ds


def test_opening_does_not_read_chunk_data(store_dir, rng):
    """Opening reads metadata only: with every chunk file moved away the Dataset still opens."""
    store = open_store(store_dir)
    with store.create_run("big", ["Ag"] * 200, CELL, 0.01, chunk_frames=64, chunk_atoms=64) as w:
        for _ in range(4):
            w.append(frames(rng, 128, 200, np.float32))
    chunks = store_dir / "runs" / "big" / "chunks"
    assert len(list(chunks.iterdir())) >= 4 * 2 * 4  # 512 frames / 64 × 200 atoms / 64
    hidden = chunks.with_name("chunks-hidden")
    os.rename(chunks, hidden)
    try:
        fresh = open_store(store_dir)
        ds = fresh.trajectory("big")
        assert isinstance(ds.positions.data, da.Array)
        assert ds.positions.shape == (512, 200, 3)
        assert ds.positions.data.chunksize == (64, 64, 3)
        with pytest.raises(Exception):  # noqa: B017 - whichever error the chunk reader raises
            _ = ds.positions.isel(time=0).values  # the data really is elsewhere
    finally:
        os.rename(hidden, chunks)
    assert np.isfinite(open_store(store_dir).trajectory("big").positions.isel(time=-1).values).all()


def test_version_reads_old_content_after_more_appends(store_dir, rng):
    store = open_store(store_dir)
    first = frames(rng, 3)
    with store.create_run("v", SPECIES, CELL, 0.01) as w:
        empty = store.version("v")
        w.append(first)
        v1 = store.version("v")
        assert w.last_version == v1
        w.append(frames(rng, 5))
    store.add_wannier("v", [0, 2], rng.normal(size=(2, 3, 3)))
    assert store.trajectory("v").sizes["time"] == 8
    old = store.trajectory("v", version=v1)
    assert old.sizes["time"] == 3
    np.testing.assert_array_equal(old.positions.values, first)
    assert store.trajectory("v", version=empty).sizes["time"] == 0
    with pytest.raises(RunNotFoundError):
        store.wannier("v", version=v1)  # the centres came later
    assert len(store.history("v")) >= 5
    with pytest.raises(StoreValidationError, match="no version"):
        store.trajectory("v", version="NOTAVERSION0000000000")


def test_wannier_set_round_trip_and_checks(store_dir, rng):
    store = open_store(store_dir)
    with store.create_run("w", SPECIES, CELL, 0.5) as w:
        w.append(frames(rng, 10))
    c1, c2 = rng.normal(size=(2, 8, 3)), rng.normal(size=(1, 8, 3))
    s1 = rng.random((2, 8))
    store.add_wannier("w", [6, 2], c1, s1, attrs={"provenance_uuid": "abc"})
    store.add_wannier("w", [4], c2)
    ws = store.wannier("w")
    assert ws.frame.values.tolist() == [2, 4, 6]
    np.testing.assert_array_equal(ws.frame_time.values, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(ws.centres.sel(frame=6).values, c1[0])
    np.testing.assert_array_equal(ws.centres.sel(frame=4).values, c2[0])
    np.testing.assert_array_equal(ws.spread.sel(frame=2).values, s1[1])
    assert np.isnan(ws.spread.sel(frame=4).values).all()
    assert ws.centres.attrs["units"] == "Å" and ws.attrs["provenance_uuid"] == "abc"
    assert store.runs().set_index("run_id").loc["w", "wannier_frames"] == 3
    before = store.version("w")
    for bad in [
        dict(frames=[10], centres=c2),                  # frame beyond the run
        dict(frames=[2], centres=c2),                   # already there
        dict(frames=[1], centres=rng.normal(size=(1, 7, 3))),  # other count
        dict(frames=[1, 1], centres=c1),                # duplicate in batch
        dict(frames=[1], centres=np.full((1, 8, 3), np.nan)),
    ]:
        with pytest.raises(StoreValidationError):
            store.add_wannier("w", bad["frames"], bad["centres"])
    assert store.version("w") == before


def test_one_writer_per_run_and_parallel_runs(store_dir, rng):
    store = open_store(store_dir)
    w = store.create_run("a", SPECIES, CELL, 0.01)
    with pytest.raises(RunLockedError, match="another writer"):
        store.open_run("a")
    with pytest.raises(RunLockedError):
        open_store(store_dir).open_run("a")  # a second Store object in the same process too
    # writers on different runs work at the same time, from threads
    other = store.create_run("b", SPECIES, CELL, 0.01)
    data = {"a": frames(rng, 40), "b": frames(rng, 40)}

    def write(writer, arr):
        for i in range(0, 40, 4):
            writer.append(arr[i:i + 4])

    threads = [threading.Thread(target=write, args=(w, data["a"])), threading.Thread(target=write, args=(other, data["b"]))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    w.close()
    other.close()
    for run in "ab":
        np.testing.assert_array_equal(store.trajectory(run).positions.values, data[run])
    with store.open_run("a") as again:  # released on close
        again.append(frames(rng, 1))
    assert store.trajectory("a").sizes["time"] == 41


def test_reader_sees_consistent_prefix_during_writes(store_dir, rng):
    store = open_store(store_dir)
    data = frames(rng, 60)
    seen = []
    done = threading.Event()

    def read():
        reader = open_store(store_dir)
        while not done.is_set():
            ds = reader.trajectory("live")
            n = ds.sizes["time"]
            pos = ds.positions.values
            assert ds.cell.shape[0] == n == ds.time.shape[0] == ds.velocities.shape[0]
            np.testing.assert_array_equal(pos, data[:n])
            seen.append(n)

    with store.create_run("live", SPECIES, CELL, 0.01) as w:
        w.append(data[:3], velocities=data[:3])
        t = threading.Thread(target=read)
        t.start()
        for i in range(3, 60, 3):
            w.append(data[i:i + 3], velocities=data[i:i + 3])
        done.set()
        t.join()
    assert seen and all(n % 3 == 0 for n in seen)  # never part of an append
    assert seen == sorted(seen)


def _unchanged(store, run_id, version):
    assert store.version(run_id) == version


@pytest.mark.parametrize("bad, match", [
    (dict(positions=np.zeros((2, 4, 3))), "shape"),
    (dict(positions=np.zeros((2, 5))), "shape"),
    (dict(positions=np.zeros((0, 5, 3))), "n_frames ≥ 1"),
    (dict(positions=np.full((2, 5, 3), "x")), "numeric"),
    (dict(positions=np.zeros((2, 5, 3), dtype=complex)), "numeric"),
    (dict(positions=np.array([[[np.nan, 0, 0]] * 5] * 2)), "NaN or inf"),
    (dict(positions=np.array([[[np.inf, 0, 0]] * 5] * 2)), "NaN or inf"),
    (dict(positions=np.zeros((2, 5, 3)), velocities=np.zeros((3, 5, 3))), "frames"),
    (dict(positions=np.zeros((2, 5, 3)), cell=np.zeros((2, 3, 3))), "singular"),
    (dict(positions=np.zeros((2, 5, 3)), cell=np.eye(3)), "shape"),
    (dict(positions=np.zeros((2, 5, 3)), energies=np.zeros(3)), "shape"),
    (dict(positions=np.zeros((2, 5, 3)), forces=np.zeros((2, 5, 3))), "same variables"),
])
def test_bad_appends_write_nothing(store_dir, rng, bad, match):
    store = open_store(store_dir)
    with store.create_run("r", SPECIES, CELL, 0.01) as w:
        w.append(frames(rng, 2))
        before = store.version("r")
        with pytest.raises(StoreValidationError, match=match):
            w.append(**bad)
        _unchanged(store, "r", before)
    assert store.trajectory("r").sizes["time"] == 2


@pytest.mark.parametrize("kwargs, match", [
    (dict(run_id=""), "invalid run id"),
    (dict(run_id=".."), "invalid run id"),
    (dict(run_id="a/b"), "invalid run id"),
    (dict(run_id="bad\x07id"), "invalid run id"),
    (dict(run_id="with space"), "invalid run id"),
    (dict(species=["Ag", "Xx"]), "unknown element"),
    (dict(species=[]), "empty"),
    (dict(species=[0]), "unknown atomic number"),
    (dict(cell=np.eye(2)), "shape"),
    (dict(cell=np.zeros((3, 3))), "singular"),
    (dict(cell=[[1, 0, 0], [2, 0, 0], [0, 0, 1]]), "singular"),
    (dict(timestep_ps=0), "finite number of ps in"),
    (dict(timestep_ps=-1e-3), "finite number of ps in"),
    (dict(timestep_ps=float("nan")), "finite number of ps in"),
    (dict(attrs={"x": object()}), "JSON"),
    (dict(attrs={"run_id": "other"}), "reserved"),
])
def test_bad_runs_are_refused_and_leave_the_store_unchanged(store_dir, kwargs, match):
    store = open_store(store_dir)
    args = dict(run_id="ok", species=["Ag", "I"], cell=CELL, timestep_ps=0.01) | kwargs
    with pytest.raises(StoreValidationError, match=match):
        store.create_run(args.pop("run_id"), args.pop("species"), args.pop("cell"), args.pop("timestep_ps"), **args)
    assert store.run_ids() == []
    assert sorted(p.name for p in (store_dir / "runs").iterdir()) == [] if (store_dir / "runs").exists() else True


def test_existing_run_closed_writer_and_missing_run(store_dir, rng):
    store = open_store(store_dir)
    w = store.create_run("r", SPECIES, CELL, 0.01)
    w.append(frames(rng, 1))
    w.close()
    before = store.version("r")
    with pytest.raises(WriterClosedError, match="closed"):
        w.append(frames(rng, 1))
    with pytest.raises(RunExistsError, match="already exists"):
        store.create_run("r", SPECIES, CELL, 0.01)
    _unchanged(store, "r", before)
    with pytest.raises(RunNotFoundError, match="no run 'nope'"):
        store.trajectory("nope")
    with pytest.raises(RunNotFoundError, match="no Wannier"):
        store.wannier("r")


def test_opening_a_directory_that_is_not_a_store(tmp_path):
    other = tmp_path / "thesis"
    other.mkdir()
    (other / "chapter1.tex").write_text("precious")
    with pytest.raises(NotAStoreError, match="not an agi-data store"):
        open_store(other)
    assert [p.name for p in other.iterdir()] == ["chapter1.tex"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(NotAStoreError, match="file"):
        open_store(a_file)
    (tmp_path / "empty").mkdir()
    assert open_store(tmp_path / "empty").run_ids() == []


def test_set_attrs_and_delete(store_dir, rng):
    store = open_store(store_dir)
    with store.create_run("r", SPECIES, CELL, 0.01) as w:
        w.append(frames(rng, 2))
        store.set_attrs("r", provenance_uuid="1234")  # while a writer is open
        w.append(frames(rng, 2))
    assert store.trajectory("r").attrs["provenance_uuid"] == "1234"
    assert store.trajectory("r").sizes["time"] == 4
    store.delete_run("r")
    assert "r" not in store
