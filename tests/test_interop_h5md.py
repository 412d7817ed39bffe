"""H5MD 1.1 export/import: round trip, MDAnalysis' own reader on the export, foreign files, bad input, memory."""

from __future__ import annotations

import tracemalloc

import h5py
import MDAnalysis as mda
import numpy as np
import pytest
from MDAnalysis.lib.mdamath import triclinic_box

from agi_data import open_store
from agi_data.interop import H5MDError, InteropError
from agi_data.interop.h5md import export_h5md, import_h5md
from agi_data.units import UNITS

#: eV/Å → kJ/(mol·Å) from CODATA values written out here, independent of the module's constant
EV_A_IN_KJ_MOL_A = 96.48533212331

N_ATOMS, N_FRAMES = 6, 150


def _make_run(store, run_id="src", *, breathing=True, rng=None):
    rng = rng or np.random.default_rng(4)
    base = np.array([[9.0, 0.0, 0.0], [1.5, 9.5, 0.0], [-1.0, 0.5, 10.0]])
    scale = 1.0 + (0.01 * np.sin(np.arange(N_FRAMES) / 7.0) if breathing else np.zeros(N_FRAMES))
    cell = base[None] * scale[:, None, None]
    pos = (rng.random((N_FRAMES, N_ATOMS, 3)) @ base).astype(np.float32)
    vel = rng.normal(size=(N_FRAMES, N_ATOMS, 3)).astype(np.float32)
    frc = rng.normal(size=(N_FRAMES, N_ATOMS, 3)).astype(np.float32)
    energies = rng.normal(size=N_FRAMES) - 100.0
    with store.create_run(run_id, ["Ag", "I", "Ag", "I", "Ag", "I"], base, 0.02, chunk_frames=32,
                          attrs={"temperature_K": 750.0, "md_timestep_ps": 0.002}, time_origin_ps=1.0) as w:
        w.append(pos, velocities=vel, forces=frc, cell=cell, energies=energies)
    return store.trajectory(run_id).compute()


def test_round_trip_and_mdanalysis_reads_the_export(store_dir, tmp_path):
    store = open_store(store_dir)
    src = _make_run(store)
    path = export_h5md(store, "src", tmp_path / "run.h5md", chunk_frames=40)

    # MDAnalysis' own H5MD reader (no H5MD topology parser: an empty Universe of the right size)
    u = mda.Universe.empty(N_ATOMS).load_new(str(path), format="H5MD")
    assert u.trajectory.n_frames == N_FRAMES
    for i in (0, 39, 40, 149):
        ts = u.trajectory[i]
        np.testing.assert_array_equal(ts.positions, src.positions.values[i])
        np.testing.assert_allclose(ts.velocities, src.velocities.values[i], rtol=1e-6)
        np.testing.assert_allclose(ts.forces, src.forces.values[i] * EV_A_IN_KJ_MOL_A, rtol=2e-6, atol=1e-5)
        np.testing.assert_allclose(ts.dimensions, triclinic_box(*src.cell.values[i]), rtol=1e-5)
        assert ts.time == pytest.approx(src.time.values[i])
        assert ts.data["step"] == round(src.time.values[i] / 0.002)  # MD steps, from md_timestep_ps
        assert ts.data["potential_energy"] == pytest.approx(src.energies.values[i])

    with h5py.File(path) as f:  # the layout the specification asks for
        assert list(f["h5md"].attrs["version"]) == [1, 1]
        assert f["h5md/creator"].attrs["name"] == "agi-data"
        assert f["particles/all/position/value"].attrs["unit"] == "Angstrom"
        assert f["particles/all/position/time"].attrs["unit"] == "ps"
        assert f["particles/all/velocity/value"].attrs["unit"] == "Angstrom ps-1"
        assert f["particles/all/force/value"].attrs["unit"] == "kJ mol-1 Angstrom-1"
        assert f["particles/all/box/edges/value"].shape == (N_FRAMES, 3, 3)  # triclinic, time-dependent
        assert f["particles/all/position/value"].chunks == (40, N_ATOMS, 3)
        np.testing.assert_array_equal(f["particles/all/species"][()], [47, 53] * 3)

    assert import_h5md(store, path, "back") == N_FRAMES
    back = store.trajectory("back").compute()
    assert back.attrs["timestep_ps"] == pytest.approx(0.02)  # from the file's time
    assert back.attrs["temperature_K"] == 750.0
    assert back.attrs["source_format"] == "h5md"
    np.testing.assert_allclose(back.time.values, src.time.values, rtol=1e-12)
    np.testing.assert_array_equal(back.positions.values, src.positions.values)
    np.testing.assert_array_equal(back.velocities.values, src.velocities.values)
    np.testing.assert_allclose(back.forces.values, src.forces.values, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(back.cell.values, src.cell.values, rtol=1e-12)
    np.testing.assert_allclose(back.energies.values, src.energies.values, rtol=1e-12)
    np.testing.assert_array_equal(back.species.values, src.species.values)


def test_orthorhombic_box_and_store_force_unit(store_dir, tmp_path):
    store = open_store(store_dir)
    rng = np.random.default_rng(1)
    with store.create_run("o", ["Ag"] * 4 + ["I"] * 4, np.diag([8.0, 9.0, 10.0]), 0.01) as w:
        w.append(rng.random((20, 8, 3)) * 8, forces=rng.normal(size=(20, 8, 3)))
    default = export_h5md(store, "o", tmp_path / "o_kj.h5md")
    with h5py.File(default) as f:
        assert f["particles/all/box/edges/value"].shape == (20, 3)  # the diagonal of a rectangular box
        assert "velocity" not in f["particles/all"]
    u = mda.Universe.empty(8).load_new(str(default), format="H5MD")
    np.testing.assert_allclose(u.trajectory[3].dimensions, [8, 9, 10, 90, 90, 90])
    path = export_h5md(store, "o", tmp_path / "o.h5md", force_unit="eV Angstrom-1", compression="gzip")
    with pytest.raises(RuntimeError, match="not recognized"):  # why kJ/(mol·Å) is the default
        mda.Universe.empty(8).load_new(str(path), format="H5MD")
    import_h5md(store, path, "o2")
    np.testing.assert_allclose(store.trajectory("o2").forces.values, store.trajectory("o").forces.values, rtol=1e-12)
    with pytest.raises(InteropError, match="force_unit"):
        export_h5md(store, "o", tmp_path / "x.h5md", force_unit="Ry Bohr-1")
    with pytest.raises(InteropError, match="exists"):
        export_h5md(store, "o", path)


def _foreign(path, *, edges=True, step_len=None, unit="nm", time_unit="fs", fixed_box=True, scalar_time=True):
    """An H5MD file as another engine writes it: nm, fs, kJ/mol/nm, species labels 1/2, fixed box."""
    n, N = 10, 4
    rng = np.random.default_rng(2)
    pos_nm = rng.random((n, N, 3)) * 1.2
    f_kj_nm = rng.normal(size=(n, N, 3)) * 50
    with h5py.File(path, "w") as f:
        f.create_group("h5md").attrs["version"] = [1, 1]
        f["h5md"].create_group("creator").attrs["name"] = "some-engine"
        part = f.create_group("particles/atoms")
        box = part.create_group("box")
        box.attrs["dimension"] = 3
        box.attrs["boundary"] = np.array([b"periodic"] * 3)
        if edges:
            if fixed_box:
                box.create_dataset("edges", data=[1.2, 1.2, 1.2]).attrs["unit"] = "nm"
            else:
                g = box.create_group("edges")
                g["value"] = np.tile([1.2, 1.2, 1.2], (n, 1))
                g["value"].attrs["unit"] = "nm"
                g["step"] = np.arange(n) * 10
                g["time"] = np.arange(n) * 20.0
                g["time"].attrs["unit"] = "fs"
        p = part.create_group("position")
        p["value"] = pos_nm
        p["value"].attrs["unit"] = unit
        if scalar_time:
            p["step"] = 10
            p["time"] = 20.0
            p["time"].attrs["offset"] = 100.0
        else:
            p["step"] = np.arange(step_len or n) * 10
            p["time"] = np.arange(n) * 20.0
        p["time"].attrs["unit"] = time_unit
        fg = part.create_group("force")
        fg["value"] = f_kj_nm
        fg["value"].attrs["unit"] = "kJ mol-1 nm-1"
        fg["step"], fg["time"] = p["step"], p["time"]
        part["species"] = np.array([1, 2, 1, 2])
    return pos_nm, f_kj_nm


def test_import_of_a_foreign_file_converts_units_and_reads_the_time_step(store_dir, tmp_path):
    store = open_store(store_dir)
    pos_nm, f_kj_nm = _foreign(tmp_path / "f.h5")
    with pytest.raises(H5MDError, match="species_map"):
        import_h5md(store, tmp_path / "f.h5", "f")
    assert import_h5md(store, tmp_path / "f.h5", "f", species_map={1: "Ag", 2: "I"}) == 10
    ds = store.trajectory("f").compute()
    assert list(ds.symbol.values) == ["Ag", "I", "Ag", "I"]
    assert ds.attrs["timestep_ps"] == pytest.approx(0.020)   # 20 fs
    assert ds.attrs["time_origin_ps"] == pytest.approx(0.1)  # offset 100 fs
    np.testing.assert_allclose(ds.time.values, 0.1 + 0.02 * np.arange(10))
    np.testing.assert_allclose(ds.positions.values, pos_nm * 10.0)
    np.testing.assert_allclose(ds.forces.values, f_kj_nm / 10.0 / EV_A_IN_KJ_MOL_A, rtol=1e-9)
    np.testing.assert_allclose(ds.cell.values[0], np.eye(3) * 12.0)
    assert ds.positions.attrs["units"] == UNITS["positions"]
    _foreign(tmp_path / "g.h5", fixed_box=False, scalar_time=False)
    import_h5md(store, tmp_path / "g.h5", "g", species_map={1: "Ag", 2: "I"})
    np.testing.assert_allclose(store.trajectory("g").cell.values, np.broadcast_to(np.eye(3) * 12.0, (10, 3, 3)))


@pytest.mark.parametrize("kwargs, message", [
    ({"edges": False}, "no 'edges'"),
    ({"scalar_time": False, "step_len": 7}, "mismatched step/time"),
    ({"unit": "furlong"}, "unknown length unit 'furlong'"),
    ({"time_unit": "jiffy"}, "unknown time unit 'jiffy'"),
])
def test_files_that_break_the_specification_are_refused_before_anything_is_written(store_dir, tmp_path, kwargs,
                                                                                   message):
    store = open_store(store_dir)
    _foreign(tmp_path / "bad.h5", **kwargs)
    with pytest.raises(H5MDError, match=message):
        import_h5md(store, tmp_path / "bad.h5", "bad", species_map={1: "Ag", 2: "I"})
    assert "bad" not in store


def test_missing_box_uneven_time_and_missing_unit_are_clear_errors(store_dir, tmp_path):
    store = open_store(store_dir)
    path = tmp_path / "b.h5"
    _foreign(path, scalar_time=False)
    with h5py.File(path, "r+") as f:
        del f["particles/atoms/box"]
    with pytest.raises(H5MDError, match="no 'box' group"):
        import_h5md(store, path, "b", species_map="atomic_numbers")
    _foreign(path, scalar_time=False)
    with h5py.File(path, "r+") as f:
        f["particles/atoms/position/time"][3] = 61.0
    with pytest.raises(H5MDError, match="unevenly spaced"):
        import_h5md(store, path, "b", species_map="atomic_numbers")
    _foreign(path)
    with h5py.File(path, "r+") as f:
        del f["particles/atoms/position/value"].attrs["unit"]
    with pytest.raises(H5MDError, match="no 'unit' attribute"):
        import_h5md(store, path, "b", species_map="atomic_numbers")
    path.write_bytes(b"not hdf5")
    with pytest.raises(H5MDError, match="cannot open"):
        import_h5md(store, path, "b")
    assert store.run_ids() == []


def test_export_streams_1e5_frames_in_bounded_memory(store_dir, tmp_path):
    """10^5 frames (≈ 21 MB of arrays) go out with a peak of a few blocks, not the whole run."""
    store = open_store(store_dir)
    n, N = 100_000, 4
    rng = np.random.default_rng(0)
    with store.create_run("long", ["Ag", "I"] * 2, np.eye(3) * 6.0, 0.01, chunk_frames=4096) as w:
        x = rng.random((n, N, 3), dtype=np.float32) * 6
        w.append(x, velocities=x, forces=x)
    del x
    total = 3 * n * N * 3 * 4 + n * 9 * 8
    export_h5md(store, "long", tmp_path / "warm.h5md")  # first use: imports and caches, not per-frame memory
    tracemalloc.start()
    export_h5md(store, "long", tmp_path / "long.h5md")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < total / 5, f"peak {peak / 2**20:.1f} MiB for {total / 2**20:.1f} MiB of data"
    with h5py.File(tmp_path / "long.h5md") as f:
        assert f["particles/all/position/value"].shape == (n, N, 3)
        np.testing.assert_array_equal(f["particles/all/position/value"][-1], store.trajectory("long").positions[-1])
